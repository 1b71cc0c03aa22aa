"""A lightweight, real JupyterHub spawner for tests.

`InstantSpawner` is a genuine `jupyterhub.spawner.Spawner` subclass: the hub
starts, polls, stops and deletes it through its normal code paths. It runs no
process. Every server it "starts" is answered by one small HTTP server living
inside the hub process on a free 127.0.0.1 port, so the hub's readiness check
(`GET {server}/api`) and the proxy route both reach something real.

Why: service tests (idle removal, quota, control plane) need a hub with many
servers in every state, in milliseconds and without Kubernetes.

Per-server knobs come from `user_options` (what BinderHub would send):

- `start_delay` (seconds): stay *pending* that long before being ready;
- `stop_delay` (seconds): stay pending-stop that long.

The running flag is kept in the spawner state, so a restarted hub (with
`c.JupyterHub.cleanup_servers = False`) finds its servers still running.
"""

import asyncio
import json

from jupyterhub import __version__ as hub_version
from jupyterhub.spawner import Spawner
from tornado import httpserver, netutil, web
from traitlets import Float

_shared = {"port": None, "lock": None}


class _AnyPath(web.RequestHandler):
    """Answers every request of every fake single-user server."""

    def _reply(self):
        self.set_header("X-JupyterHub-Version", hub_version)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"path": self.request.path}))

    def get(self, *args):
        self._reply()

    def head(self, *args):
        self.set_header("X-JupyterHub-Version", hub_version)
        self.finish()


async def _ensure_server() -> int:
    """Start the in-hub HTTP server once; return its port."""
    if _shared["lock"] is None:
        _shared["lock"] = asyncio.Lock()
    async with _shared["lock"]:
        if _shared["port"] is None:
            sockets = netutil.bind_sockets(0, address="127.0.0.1")
            server = httpserver.HTTPServer(web.Application([(r"/(.*)", _AnyPath)]))
            server.add_sockets(sockets)
            _shared["port"] = sockets[0].getsockname()[1]
    return _shared["port"]


class InstantSpawner(Spawner):
    """A spawner whose servers start at once and need no process."""

    start_delay = Float(
        0,
        config=True,
        help="""Seconds every server stays pending before it is ready.

        Default 0. A `start_delay` in `user_options` overrides it per server.
        Example: `c.InstantSpawner.start_delay = 2.5`
        """,
    )

    stop_delay = Float(
        0,
        config=True,
        help="""Seconds every stop takes.

        Default 0. A `stop_delay` in `user_options` overrides it per server.
        Example: `c.InstantSpawner.stop_delay = 1`
        """,
    )

    _running = False

    def _option(self, name: str) -> float:
        value = (self.user_options or {}).get(name, getattr(self, name))
        return float(value)

    def load_state(self, state):
        super().load_state(state)
        self._running = bool(state.get("instant_running"))

    def get_state(self):
        state = super().get_state()
        if self._running:
            state["instant_running"] = True
        return state

    def clear_state(self):
        super().clear_state()
        self._running = False

    async def _url(self) -> str:
        port = await _ensure_server()
        return f"http://127.0.0.1:{port}"

    async def start(self):
        delay = self._option("start_delay")
        if delay:
            await asyncio.sleep(delay)
        self._running = True
        return await self._url()

    async def stop(self, now=False):
        delay = self._option("stop_delay")
        if delay and not now:
            await asyncio.sleep(delay)
        self._running = False

    async def poll(self):
        if self._running:
            await _ensure_server()
            return None
        return 0

    async def get_url(self):
        """After a hub restart the shared server has a new port: report it."""
        base = await self._url()
        return base + self.server.base_url
