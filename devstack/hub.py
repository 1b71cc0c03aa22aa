"""The hub of the local stack: JupyterHub with hubext, on loopback.

It runs the repository's top-level `jupyterhub_config.py` unchanged, in a
state directory of its own, pointed at the local control plane through
environment variables that the config reads.
"""

import asyncio
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .net import free_port, port_is_free
from .proc import die_with_parent

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG = REPO_ROOT / "jupyterhub_config.py"
NAMESPACE = "hubext-dev"
PUBLIC_PORT = 8000


class HubError(RuntimeError):
    """The hub did not come up; the message ends with its log."""


def _port(preferred: int) -> int:
    return preferred if port_is_free("127.0.0.1", preferred) else free_port()


def hub_environment(kubeconfig: Path, state: Path) -> dict:
    """What `jupyterhub_config.py` reads to run against the local stack."""
    env = dict(os.environ)
    env.update(
        KUBECONFIG=str(kubeconfig),
        HUBEXT_NAMESPACE=NAMESPACE,
        HUBEXT_HUB_URL=f"http://127.0.0.1:{_port(PUBLIC_PORT)}",
        HUBEXT_HUB_PORT=str(_port(8081)),
        HUBEXT_PROXY_API_URL=f"http://127.0.0.1:{_port(8001)}",
        HUBEXT_DB_URL=f"sqlite:///{state / 'jupyterhub.sqlite'}",
        HUBEXT_COOKIE_SECRET_FILE=str(state / "jupyterhub_cookie_secret"),
        PATH=os.pathsep.join(
            [str(Path(sys.executable).parent), str(REPO_ROOT / "node_modules" / ".bin")]
            + [env.get("PATH", "")]
        ),
    )
    return env


async def ensure_namespace(api) -> None:
    try:
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as e:
        if e.status != 409:
            raise


class Hub:
    """One JupyterHub process; `start()` returns once its API answers."""

    def __init__(self, kubeconfig: Path, state: Path):
        self.state = state
        self.env = hub_environment(kubeconfig, state)
        self.url = self.env["HUBEXT_HUB_URL"]
        self.log_path = state / "jupyterhub.log"
        self.proc = None

    def start(self, timeout: float = 60) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)],
                cwd=self.state,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HubError(f"JupyterHub exited; its log:\n{self._tail()}")
            try:
                urllib.request.urlopen(f"{self.url}/hub/api", timeout=2)
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise HubError(f"JupyterHub did not answer in {timeout}s:\n{self._tail()}")

    def _tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


async def start(api, kubeconfig: Path, state: Path) -> Hub:
    """Create the hub's namespace and start the hub."""
    await ensure_namespace(api)
    hub = Hub(kubeconfig, state)
    await asyncio.to_thread(hub.start)
    return hub
