"""The one error type of repo-file fetching."""

from ..errors import UserFacingError


class RepoFileError(UserFacingError):
    """The file could not be fetched, for a reason other than "it does not exist".

    The message is for the person launching: which host, what happened and
    what to do. Fields (``host``, ``repo``, ``commit``, ``path``, ``status``)
    go to the log. Neither ever contains a token.

    ``permanent`` marks a refusal that the same launch always gets: one that
    follows from the commit's content alone (too large, not a regular file;
    a commit never changes, so the fetcher caches it like an answer and a
    retried launch asks no host again), from the launch request itself, or
    from the hub's configuration (a host it may not read from). BinderHub's
    check before the build refuses these only. Everything else (timeouts,
    server errors, access) may pass.
    """

    def __init__(self, message: str, *, permanent: bool = False, **fields):
        super().__init__(message, **fields)
        self.permanent = permanent
