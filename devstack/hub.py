"""The hub of the local stack: JupyterHub with hubext, on loopback.

It runs the repository's top-level `jupyterhub_config.py` unchanged, in a
state directory of its own, pointed at the local control plane through
environment variables that the config reads.
"""

import asyncio
import os
import signal
import sys
from pathlib import Path

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .net import free_port, port_is_free
from .proc import Service

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG = REPO_ROOT / "jupyterhub_config.py"
NAMESPACE = "hubext-dev"
PUBLIC_PORT = 8000
#: what `python -m devstack up` adds to the hub's config (BinderHub as its
#: service), a file `jupyterhub_config.py` loads when this names one
EXTRA_CONFIG_ENV = "HUBEXT_EXTRA_CONFIG"


def _port(preferred: int) -> int:
    return preferred if port_is_free("127.0.0.1", preferred) else free_port()


def hub_environment(kubeconfig: Path, state: Path, extra: dict | None = None) -> dict:
    """What `jupyterhub_config.py` reads to run against the local stack;
    then `extra`."""
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
    env.update(extra or {})
    return env


async def ensure_namespace(api) -> None:
    try:
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as e:
        if e.status != 409:
            raise


class Hub(Service):
    """One JupyterHub process; `start()` returns once its API answers."""

    what = "JupyterHub"

    def __init__(self, kubeconfig: Path, state: Path, extra: dict | None = None):
        super().__init__(
            state, "jupyterhub.log", hub_environment(kubeconfig, state, extra)
        )
        self.url = self.env["HUBEXT_HUB_URL"]

    @property
    def api_url(self) -> str:
        return f"{self.url}/hub/api"

    def start(self, timeout: float = 60) -> None:
        argv = [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)]
        self.spawn(argv, self.api_url, timeout)

    def stop(self, grace: float = 45) -> None:
        """Stop the hub; it stops the user servers and its proxy first, which
        can take half a minute. The proxy runs in a session of its own, so a
        hub that had to be killed leaves it: it is stopped by its pid file."""
        super().stop(grace)
        try:
            pid = int((self.state / "jupyterhub-proxy.pid").read_text())
            if b"configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass  # the hub stopped it, as it should


async def start(api, kubeconfig: Path, state: Path, extra: dict | None = None) -> Hub:
    """Create the hub's namespace and start the hub (`extra`: more env)."""
    await ensure_namespace(api)
    hub = Hub(kubeconfig, state, extra)
    await asyncio.to_thread(hub.start)
    return hub
