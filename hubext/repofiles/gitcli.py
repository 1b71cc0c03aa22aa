"""Generic git hosts: read one file with the real ``git`` client.

Only the launched commit and its trees are fetched (``--depth=1
--filter=blob:none``); the one blob asked for is then fetched on demand and
its size checked before it is read. Every ``git`` runs with no user or
system configuration, no credential helpers, no prompts, no redirects and
only the http(s) transports; the access token reaches git through
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
        """The git steps: init, fetch the commit's trees, look up, read the blob."""
        os.mkdir(repo_dir)
        await self.git(repo_dir, env, deadline, "init", "-q", "--bare")
        await self.git(repo_dir, env, deadline, "remote", "add", "origin", ref.repo)
        await self.git(
            repo_dir,
            env,
            deadline,
            *("fetch", "-q", "--no-tags", "--depth=1", "--filter=blob:none"),
            *("origin", ref.commit),
        )
        listing = await self.git(
            repo_dir, env, deadline, "ls-tree", "-z", ref.commit, "--", path
        )
        if not listing:
            return None
        meta, _, _name = listing.rstrip(b"\0").decode().partition("\t")
        mode, kind, oid = meta.split()
        if kind != "blob" or mode == "120000":
            raise self.error(
                f"{self.where(ref, path)} is not a regular file (a directory, "
                f"link or submodule). Make {path} a plain text file.",
                ref,
                path,
            )
        size = int(await self.git(repo_dir, env, deadline, "cat-file", "-s", oid))
        if size > self.max_bytes:
            raise self.too_large(ref, path, size)
        return await self.git(repo_dir, env, deadline, "cat-file", "blob", oid)

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
