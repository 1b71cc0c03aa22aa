"""Generic git hosts: read one file with the real ``git`` client.

One ``git fetch`` of the launched commit brings only what the lookup needs
and nothing above the size cap: ``--filter=blob:limit`` makes the *server*
leave out every blob larger than ``max_bytes``, and ``--filter=tree:<n>``
stops the fetch at the file's depth (for ``.resources``: the top-level tree
and its small files). A file that is not there after the fetch although its
tree names it is therefore too large, and is refused without one byte of it
crossing the network. Git cannot tell a blob's size without sending it
(``cat-file -s`` on a missing blob downloads it), so presence is checked
among the local objects only.

Every ``git`` runs with no user or system configuration, no credential
helpers, no prompts, no redirects and only the http(s) transports; the
access token reaches git through
``GIT_CONFIG_*`` environment variables of that process alone, so it never
appears in a command line, a config file or a log.
"""

import asyncio
import base64
import os
import re
import signal
import tempfile
import time
from urllib.parse import urlsplit

from traitlets import Unicode

from .launch import LaunchRef
from .providers import RepoHost, short

_STDERR_LIMIT = 4000

#: The server accepts size filters but not tree depth (or not this deep).
_TREE_FILTER_REFUSED = re.compile(
    r"filter '(tree|combine)[^']*' not supported|tree filter allows max depth"
)


class GitFailed(Exception):
    """A git command exited non-zero; carries its (scrubbed) stderr."""

    def __init__(self, stderr: str):
        super().__init__(stderr)
        self.stderr = stderr


class GitTimeout(Exception):
    """The deadline passed; the git process group was killed."""


async def _kill(proc) -> None:
    """End git and its children (git-remote-https runs as a child)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    await proc.wait()


class GitHost(RepoHost):
    """Any git server over HTTP(S), read with ``git fetch`` and ``git cat-file``."""

    kind = "git"

    username = Unicode(
        "x-access-token",
        help="User name sent with the token (HTTP basic auth); most hosts ignore it.",
    )

    def git_settings(self) -> list[tuple[str, str]]:
        """Settings given to every git process through its environment."""
        settings = [
            ("http.followRedirects", "false"),
            ("credential.helper", ""),
            ("protocol.allow", "never"),
            ("protocol.https.allow", "always"),
            ("fetch.recurseSubmodules", "false"),
            ("gc.auto", "0"),
            ("maintenance.auto", "false"),
        ]
        if self.allow_http:
            settings.append(("protocol.http.allow", "always"))
        if self.token:
            pair = f"{self.username}:{self.token}".encode()
            header = "Authorization: Basic " + base64.b64encode(pair).decode()
            settings.append(("http.extraHeader", header))
        return settings

    def environment(self, home: str) -> dict:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
        }
        settings = self.git_settings()
        env["GIT_CONFIG_COUNT"] = str(len(settings))
        for i, (key, value) in enumerate(settings):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def scrub(self, text: str) -> str:
        """``text`` with the token, in any form git might echo, removed."""
        if self.token:
            pair = f"{self.username}:{self.token}".encode()
            for secret in (base64.b64encode(pair).decode(), self.token):
                text = text.replace(secret, "***")
        return text

    async def git(self, repo_dir, env, deadline, *args) -> bytes:
        """Run one git command before ``deadline``; its stdout, or an exception."""
        proc = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            repo_dir,
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            remaining = max(deadline - time.monotonic(), 0.001)
            out, err = await asyncio.wait_for(proc.communicate(), remaining)
        except asyncio.TimeoutError:
            await _kill(proc)
            raise GitTimeout() from None
        except asyncio.CancelledError:
            await _kill(proc)
            raise
        if proc.returncode:
            text = err.decode("utf-8", "replace")[-_STDERR_LIMIT:]
            raise GitFailed(self.scrub(text))
        return out

    async def fetch_file(self, ref: LaunchRef, path: str) -> bytes | None:
        scheme = urlsplit(ref.repo).scheme
        if scheme != "https" and not (scheme == "http" and self.allow_http):
            raise self.error(
                f"{ref.repo} is not an https:// URL, and {self.host} is not "
                "allowed plain http. Launch the https:// URL of the repository, "
                f"or hub admins: set allow_http for {self.host} in "
                "c.RepoFileFetcher.hosts.",
                ref,
                path,
            )
        deadline = time.monotonic() + self.timeout
        with tempfile.TemporaryDirectory(prefix="hubext-git-") as tmp:
            env = self.environment(tmp)
            repo_dir = os.path.join(tmp, "repo.git")
            try:
                return await self._read(ref, path, env, repo_dir, deadline)
            except GitTimeout:
                raise self.error(
                    f"{self.host} did not answer within {self.timeout:g} seconds "
                    f"while reading {self.where(ref, path)}. Try launching again "
                    "in a few minutes.",
                    ref,
                    path,
                ) from None
            except GitFailed as e:
                raise self.fetch_error(e.stderr, ref, path) from None

    async def _read(self, ref, path, env, repo_dir, deadline) -> bytes | None:
        """The git steps: init, fetch the commit's small files, look up, read."""
        os.mkdir(repo_dir)
        await self.git(repo_dir, env, deadline, "init", "-q", "--bare")
        await self.git(repo_dir, env, deadline, "remote", "add", "origin", ref.repo)
        await self._fetch_small(ref, path, env, repo_dir, deadline)
        listing = await self.git(
            repo_dir, env, deadline, "ls-tree", "-z", ref.commit, "--", path
        )
        if not listing:
            return None
        meta, _, _name = listing.rstrip(b"\0").decode().partition("\t")
        mode, kind, oid = meta.split()
        if kind != "blob" or mode == "120000":
            raise self.not_a_file(ref, path)
        size = await self._local_size(repo_dir, env, deadline, oid)
        if size is None or size > self.max_bytes:
            # Left out by the server's size filter (or a server that
            # ignores filters sent it anyway): either way, not read.
            raise self.too_large(ref, path, size)
        return await self.git(repo_dir, env, deadline, "cat-file", "blob", oid)

    async def _fetch_small(self, ref, path, env, repo_dir, deadline) -> None:
        """Fetch the commit with the trees down to ``path`` and small blobs only.

        A path of n parts needs trees and blobs down to depth n, so
        ``tree:<n+1>``. Hosts that refuse tree filters get a second try
        with the size filter alone: every small file of the commit, still
        nothing above the cap.
        """
        fetch = ("fetch", "-q", "--no-tags", "--depth=1")
        size = f"--filter=blob:limit={self.max_bytes + 1}"  # leaves out >= limit
        depth = f"--filter=tree:{path.count('/') + 2}"
        try:
            await self.git(
                repo_dir, env, deadline, *fetch, size, depth, "origin", ref.commit
            )
        except GitFailed as e:
            if not _TREE_FILTER_REFUSED.search(e.stderr):
                raise
            await self.git(repo_dir, env, deadline, *fetch, size, "origin", ref.commit)

    async def _local_size(self, repo_dir, env, deadline, oid) -> int | None:
        """The size of ``oid`` if it was fetched, else None; never asks the host.

        ``cat-file -s`` would download a missing blob from the promisor
        remote; ``--batch-all-objects`` lists only what is here.
        """
        listing = await self.git(
            repo_dir,
            env,
            deadline,
            *("cat-file", "--batch-all-objects", "--unordered"),
            "--batch-check=%(objectname) %(objectsize)",
        )
        for line in listing.decode().splitlines():
            name, _, size = line.partition(" ")
            if name == oid:
                return int(size)
        return None

    def fetch_error(self, stderr: str, ref: LaunchRef, path: str):
        """A message for a failed git command, from git's own words."""
        low = stderr.lower()
        where = self.where(ref, path)
        if re.search(r"terminal prompts disabled|authentication failed|\b401\b", low):
            text = f"{self.host} asks for credentials to read {where}, {self.private_hint()}."
        elif re.search(r"not our ref|couldn't find remote ref|unadvertised", low):
            text = (
                f"{self.host} has no commit {short(ref.commit)} in {ref.repo}. "
                "If the commit was force-pushed away, launch the branch again."
            )
        elif re.search(r"filter '[^']*' not supported", low):
            text = (
                f"{self.host} does not allow the partial fetch hubext uses to "
                f"refuse a large {path} without downloading it. Hub admins: "
                "allow partial clone on the git server (uploadpack.allowFilter, "
                "with the blob:limit filter), or read this host through its API "
                "(provider github or gitlab in c.RepoFileFetcher.hosts)."
            )
        elif re.search(r"\b30[1278]\b|redirect", low):
            text = (
                f"{self.host} redirected the request for {where}; hubext does "
                "not follow redirects for git. Launch the repository's final "
                "URL instead."
            )
        elif re.search(r"not found|\b404\b|does not appear to be a git", low):
            text = f"{self.host} has no repository {ref.repo}, {self.private_hint()}."
        elif re.search(r"\b50\d\b", low):
            text = (
                f"{self.host} had an internal error while reading {where}. "
                "Try launching again in a few minutes."
            )
        else:
            last = stderr.strip().splitlines()[-1:] or ["no message"]
            text = f"git could not read {where}: {last[0]}"
        return self.error(text, ref, path, stderr=stderr)
