"""Fetch one file from the launched repository at the launched commit.

The spawner calls::

    fetcher = RepoFileFetcher(parent=spawner)
    data = await fetcher.fetch(spawner.user_options, ".resources")
    # bytes, or None when the commit has no such file (use the defaults);
    # RepoFileError (a UserFacingError) for anything else

`parse_launch` turns BinderHub's ``user_options`` into a `LaunchRef`.
"""

from .errors import RepoFileError
from .fetcher import NOT_CACHED, RepoFileFetcher
from .gitcli import GitHost
from .launch import LaunchRef, parse_launch
from .providers import GitHubHost, GitLabHost, HTTPRepoHost, RepoHost

__all__ = [
    "GitHost",
    "GitHubHost",
    "GitLabHost",
    "HTTPRepoHost",
    "LaunchRef",
    "NOT_CACHED",
    "RepoFileError",
    "RepoFileFetcher",
    "RepoHost",
    "parse_launch",
]
