"""Child processes that never outlive the stack that started them."""

import ctypes
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for Popen: the kernel kills the child when we die.

    `atexit` handlers cover normal exits; this covers a test run that is
    killed outright, so no apiserver or single-user server is left behind.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass  # not Linux: the atexit handlers still clean up


class ServiceError(RuntimeError):
    """A service did not come up; the message ends with its log."""


class Service:
    """One server process of the stack, in a session of its own (so stopping
    it also stops what it started, e.g. the hub's proxy), its output in
    `log_path`; `spawn()` returns once `ready_url` answers."""

    what = "service"

    def __init__(self, state: Path, log_name: str, env: dict):
        self.state = state
        self.env = env
        self.log_path = state / log_name
        self.proc: subprocess.Popen | None = None

    def spawn(self, argv: list, ready_url: str, timeout: float = 60) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.state,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"{self.what} exited; its log:\n{self.tail()}")
            try:
                urllib.request.urlopen(ready_url, timeout=2)
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise ServiceError(
            f"{self.what} did not answer at {ready_url} in {timeout}s:\n{self.tail()}"
        )

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 15) -> None:
        """SIGTERM to its session, `grace` seconds to exit, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
