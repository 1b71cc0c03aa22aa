"""The one error type of repo-file fetching."""

from ..errors import UserFacingError


class RepoFileError(UserFacingError):
    """The file could not be fetched, for a reason other than "it does not exist".

    The message is for the person launching: which host, what happened and
    what to do. Fields (``host``, ``repo``, ``commit``, ``path``, ``status``)
    go to the log. Neither ever contains a token.
    """
