"""Errors meant for people.

Every failure a user can fix on their own (a bad `.resources` file, a repo
host that cannot be reached, a full project quota) is a `UserFacingError`:
its `message` is written for the person launching, and the spawner shows it
on the BinderHub launch page as it is. Structured fields carry the detail
that goes to the log.
"""


class UserFacingError(Exception):
    """A failure with a message written for the user who caused it."""

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.message = message
        self.fields = fields

    def __str__(self) -> str:
        return self.message
