"""A real git server on loopback: bare repositories behind ``git http-backend``.

BinderHub's generic git provider resolves refs with ``git ls-remote`` and
hubext's RepoFileFetcher reads `.resources` with a filtered fetch, so both
need a git host that speaks git's smart HTTP protocol. `GitCGI` bridges
tornado to ``git http-backend`` (git's own CGI program) for each request, as
a web server would; `serve()` listens on 127.0.0.1.

Layout under `GitServer.root`: `work/`, a working clone to commit in, and
`serve/<name>.git`, the bare repositories served as `<url>/<name>.git`.

`python -m devstack up` serves `make_sample_repository()`'s repository; the
tests serve their own (tests/fixtures/githosts.py) through the same classes.
"""

import asyncio
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

LOOPBACK = "127.0.0.1"

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "hubext tests",
    "GIT_AUTHOR_EMAIL": "tests@hubext.invalid",
    "GIT_COMMITTER_NAME": "hubext tests",
    "GIT_COMMITTER_EMAIL": "tests@hubext.invalid",
    "LC_ALL": "C",
}

SAMPLE_REPO = "sample.git"
#: the sample project's `.resources` (hubext.resources: GB and cores, no units)
SAMPLE_RESOURCES = b"""\
# what this sample project asks for
cpur=0.5
cpul=1
memr=0.5
meml=1
"""
SAMPLE_NOTEBOOK = b"""\
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# hubext sample project\\n", "\\n",
              "Launched from the local stack's git server."]
  },
  {
   "cell_type": "code",
   "execution_count": null,
   "metadata": {},
   "outputs": [],
   "source": ["import os\\n", "print(os.cpu_count(), 'CPUs visible')"]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                              "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
"""
SAMPLE_README = b"""\
# hubext sample project

A notebook and a `.resources` file, served by `python -m devstack up`.
"""


def git(cwd, *args) -> str:
    """Run git in `cwd` with no user or system configuration; its stdout."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), **GIT_ENV}
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def commit(work, files: dict, message: str) -> str:
    """Write (or, for None, remove) `files` in `work`, commit; the new sha."""
    for name, data in files.items():
        target = work / name
        if data is None:
            git(work, "rm", "-q", name)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        git(work, "add", name)
    git(work, "commit", "-q", "--allow-empty", "-m", message)
    return git(work, "rev-parse", "HEAD")


def publish(root: Path, names) -> None:
    """Clone `root/work` bare as each of `names` under `root/serve`, with the
    upload-pack options the RepoFileFetcher's filtered fetch needs."""
    serve = root / "serve"
    serve.mkdir(exist_ok=True)
    for name in names:
        git(root, "clone", "-q", "--bare", str(root / "work"), str(serve / name))
        git(serve / name, "config", "uploadpack.allowFilter", "true")
        git(serve / name, "config", "uploadpack.allowAnySHA1InWant", "true")


@dataclass
class GitServer:
    """A served repository: its URL, its commits and the requests it saw."""

    root: object
    url: str = ""
    commits: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)  # (method, path, headers)
    private: dict = field(default_factory=dict)  # repo dir -> basic credentials
    status: int | None = None  # answer every request with this status
    bytes_served: int = 0  # response bodies, as sent to the clients

    def repo_url(self, name="project.git") -> str:
        return f"{self.url}/{name}"

    def add_commit(self, branch: str, files: dict, repo="project.git") -> str:
        """Commit ``files`` on a new branch off main and publish it in ``repo``."""
        work = self.root / "work"
        git(work, "checkout", "-q", "-b", branch, "main")
        sha = commit(work, files, branch)
        git(work, "checkout", "-q", "main")
        target = str(self.root / "serve" / repo)
        git(work, "push", "-q", target, f"{branch}:refs/heads/{branch}")
        self.commits[branch] = sha
        return sha

    def configure(self, key: str, value: str, repo="project.git") -> None:
        """Set a git config value of a served repository (e.g. its filters)."""
        git(self.root / "serve" / repo, "config", key, value)

    def fetches(self) -> int:
        """How many git fetch negotiations (upload-pack POSTs) were made."""
        return sum(1 for m, p, _ in self.requests if m == "POST")


def make_sample_repository(root: Path) -> dict:
    """The local stack's sample project: a notebook and a `.resources` file,
    served as `sample.git`. Returns its commits by name (`main`); a kept
    workdir's sample repository is served again as it is."""
    work = root / "work"
    if (root / "serve" / SAMPLE_REPO).is_dir():
        return {"main": git(work, "rev-parse", "main")}
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    files = {
        ".resources": SAMPLE_RESOURCES,
        "README.md": SAMPLE_README,
        "sample.ipynb": SAMPLE_NOTEBOOK,
    }
    commits = {"main": commit(work, files, "a sample project for hubext")}
    publish(root, [SAMPLE_REPO])
    return commits


class GitCGI(web.RequestHandler):
    """Runs ``git http-backend`` for each request, as a web server would."""

    def initialize(self, server: GitServer):
        self.server = server

    async def get(self, path):
        await self.serve(path)

    async def post(self, path):
        await self.serve(path)

    async def serve(self, path):
        self.server.requests.append(
            (self.request.method, path, dict(self.request.headers))
        )
        if self.server.status:
            return self.send_error(self.server.status)
        repo = path.split("/", 1)[0]
        if repo == "moved.git":
            return self.redirect(f"/project.git/{path.split('/', 1)[1]}", status=301)
        expected = self.server.private.get(repo)
        if expected and self.request.headers.get("Authorization") != expected:
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Basic realm="git"')
            return self.finish("authentication required\n")
        status, headers, body = await self.run_backend(path)
        self.set_status(status)
        for name, value in headers:
            self.set_header(name, value)
        self.server.bytes_served += len(body)
        self.finish(body)

    async def run_backend(self, path):
        head = self.request.headers
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.server.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_PROJECT_ROOT": str(self.server.root / "serve"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.request.method,
            "PATH_INFO": "/" + path,
            "QUERY_STRING": self.request.query,
            "CONTENT_TYPE": head.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(self.request.body)),
            "REMOTE_ADDR": self.request.remote_ip,
            "GIT_PROTOCOL": head.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": head.get("Content-Encoding", ""),
        }
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(self.request.body)
        raw_head, _, body = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in raw_head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        return status, headers, body


def serve(state: GitServer, port: int = 0) -> HTTPServer:
    """Serve `state`'s repositories on 127.0.0.1:`port` (0: any free port)
    in the running event loop; sets `state.url`. Stop with `.stop()`."""
    sockets = bind_sockets(port, LOOPBACK)
    server = HTTPServer(web.Application([(r"/(.+)", GitCGI, {"server": state})]))
    server.add_sockets(sockets)
    state.url = f"http://{LOOPBACK}:{sockets[0].getsockname()[1]}"
    return server
