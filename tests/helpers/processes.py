"""Subprocesses the tests start and talk to: a JupyterHub, a BinderHub.

One way to start one (its own session, output to a log file), to wait until
it answers, and to stop it with all it started, so that the hub and
BinderHub fixtures fail, time out and clean up alike.
"""

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_BIN = REPO / "node_modules" / ".bin"
START_TIMEOUT = 60


def child_env(extra: dict | None = None) -> dict:
    """This environment for a child: the repository's node tools (the proxy)
    and package importable, no JupyterHub token of ours; then `extra`."""
    env = dict(os.environ)
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH")) if p
    )
    env.pop("JUPYTERHUB_API_TOKEN", None)
    env.update(extra or {})
    return env


def spawn_logged(argv: list, cwd: Path, env: dict, log_path: Path) -> subprocess.Popen:
    """Start `argv` with its output appended to `log_path`, in a session of
    its own: `stop_process` then also ends whatever it started."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_tail(log_path: Path) -> str:
    return Path(log_path).read_text(errors="replace")[-4000:]


async def wait_answering(
    proc: subprocess.Popen,
    answers: Callable[[], Awaitable[bool]],
    *,
    what: str,
    where: str,
    log_path: Path,
    stop: Callable[[], Awaitable[None]],
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll `answers()` until it is true. A process that exits fails at once
    with its log; one still silent after `timeout` is `stop`ped first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {proc.returncode}; log "
                f"{log_path}:\n{log_tail(log_path)}"
            )
        if await answers():
            return
        await asyncio.sleep(0.2)
    await stop()
    raise TimeoutError(
        f"{what} did not answer at {where} within {timeout}s; log "
        f"{log_path}:\n{log_tail(log_path)}"
    )


async def stop_process(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, up to `grace` seconds to exit, then SIGKILL to its session:
    what it started (the hub's proxy) shares that session and goes too."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        for _ in range(round(grace * 10)):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class AnsweringProcess:
    """A mixin for a dataclass with `dir`, `env`, `log_path`, `proc`, an
    async `_answers()` and `stop()`: started in `dir`, ready once it answers."""

    async def _start_answering(self, argv: list, what: str, where: str) -> None:
        # `proc` is set before the wait: a failed start is still stopped
        self.proc = spawn_logged(
            argv, cwd=self.dir, env=self.env, log_path=self.log_path
        )
        await wait_answering(
            self.proc,
            self._answers,
            what=what,
            where=where,
            log_path=self.log_path,
            stop=self.stop,
            **({"timeout": self.start_timeout} if self.start_timeout else {}),
        )

    #: Seconds to wait for it to answer; None: `wait_answering`'s default.
    start_timeout = None


async def start_kept(process, kept: list):
    """Start `process`, kept in a fixture's `kept` first: `stop_all` then
    stops it at the test's end even when its start failed."""
    kept.append(process)
    await process.start()
    return process


async def stop_all(kept: list) -> None:
    for process in kept:
        await process.stop()
