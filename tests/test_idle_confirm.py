"""hubext-idle's `--confirm-with-server` against real single-user servers.

The hub (`hub_factory`) runs `SimpleLocalProcessSpawner`: every server is a
real `jupyterhub-singleuser` process on 127.0.0.1 with real ipykernel
kernels. The test drives kernels over their websocket channel, talking to
the server directly (its proxy target) so that the test's own traffic does
not count as activity in the hub's record; the service asks through the
proxy, as in production.

Timestamps: the hub and the servers stamp real time, and the hub only lets
activity move forward. So the hub's record stays at the server's start, and
the service's clock (`hubext.idle.clock.utcnow`) is placed relative to the
real timestamps read back from the hub and the server.
"""

import asyncio
import json
import logging
import os
import signal
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from hubext.idle import clock
from hubext.idle.clock import parse_iso
from hubext.idle.serverapi import server_api_url
from tests.test_idle import IDLE_SCOPES, SERVICE_TOKEN, WEEK, add_server, service

pytestmark = [pytest.mark.hub]

CONFIRM_SCOPES = [*IDLE_SCOPES, "tokens"]
NO_ACCESS_TOKEN = "idle-no-access-" + "0" * 30


def hub_config(activity_interval=3600):
    """Real single-user servers; the hub pulls proxy activity as asked."""
    return f"""
import os, sys
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(
    os.getcwd(), "home", "{{username}}"
)
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
# the server reports its own activity to the hub only hourly here
c.Spawner.environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "3600"}}
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.JupyterHub.last_activity_interval = {activity_interval}
c.JupyterHub.services.append({{"name": "hubext-idle", "api_token": "{SERVICE_TOKEN}"}})
c.JupyterHub.load_roles.append(
    {{"name": "hubext-idle", "scopes": {CONFIRM_SCOPES!r}, "services": ["hubext-idle"]}}
)
c.JupyterHub.services.append({{"name": "no-access", "api_token": "{NO_ACCESS_TOKEN}"}})
c.JupyterHub.load_roles.append(
    {{"name": "no-access", "scopes": {IDLE_SCOPES!r}, "services": ["no-access"]}}
)
"""


async def stop_all(hub):
    """Stop every server the test started; kill what the hub leaves behind."""
    code, users = await hub.api("GET", "/users?include_stopped_servers=1")
    pids = []
    for user in users if code == 200 else []:
        for name, model in user["servers"].items():
            pids.append((model.get("state") or {}).get("pid"))
            if not model.get("stopped"):
                await hub.api("DELETE", f"/users/{user['name']}/servers/{name}")
    for pid in filter(None, pids):
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)


@pytest_asyncio.fixture
async def real_hub(hub_factory):
    """`real_hub(activity_interval=3600)` → a hub with real servers."""
    hubs = []

    async def start(activity_interval=3600):
        hub = await hub_factory(hub_config(activity_interval))
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        await stop_all(hub)


class Server:
    """A running single-user server, reached directly (not via the proxy)."""

    def __init__(self, hub, user, name, target, model):
        self.hub, self.user, self.name = hub, user, name
        self.direct = target.rstrip("/") + model["url"] + "api/"
        self.model = model
        self.headers = {"Authorization": f"token {hub.admin_token}"}

    async def call(self, method, path, body=None):
        req = HTTPRequest(
            self.direct + path,
            method=method,
            headers=self.headers,
            body=None if body is None else json.dumps(body),
            request_timeout=60,
        )
        resp = await AsyncHTTPClient().fetch(req)
        return json.loads(resp.body) if resp.body else None

    async def status(self):
        return await self.call("GET", "status")

    async def kernels(self):
        return {k["id"]: k for k in await self.call("GET", "kernels")}

    async def hub_activity(self):
        code, model = await self.hub.api("GET", f"/users/{self.user}")
        assert code == 200, model
        return parse_iso(model["servers"][self.name]["last_activity"])

    async def start_kernel(self):
        kernel = await self.call("POST", "kernels", {"name": "python3"})
        return Kernel(self, kernel["id"])

    async def wait_kernel(self, kernel_id, **expected):
        """Wait until the server reports the kernel with `expected` fields."""
        for _ in range(300):
            kernel = (await self.kernels())[kernel_id]
            if all(kernel[k] == v for k, v in expected.items()):
                return kernel
            await asyncio.sleep(0.1)
        raise AssertionError(f"kernel never reached {expected}: {kernel}")


class Kernel:
    """One kernel's websocket channel: send code, watch its status."""

    def __init__(self, server, kernel_id):
        self.server, self.id = server, kernel_id
        self.ws = None

    async def connect(self):
        url = server_ws(self.server.direct + f"kernels/{self.id}/channels")
        self.ws = await websocket_connect(HTTPRequest(url, headers=self.server.headers))
        await self.server.wait_kernel(self.id, connections=1)

    async def close(self):
        self.ws.close()
        self.ws = None
        await self.server.wait_kernel(self.id, connections=0)

    async def execute(self, code, until="idle"):
        """Run `code`; return once the kernel reports `until` for it."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "date": datetime.now(timezone.utc).isoformat(),
            "version": "5.3",
        }
        content = {"code": code, "silent": False, "store_history": False}
        content.update(user_expressions={}, allow_stdin=False, stop_on_error=True)
        message = {"header": header, "parent_header": {}, "metadata": {}}
        message.update(content=content, channel="shell", buffers=[])
        await self.ws.write_message(json.dumps(message))
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), 60)
            assert raw is not None, "kernel channel closed"
            msg = json.loads(raw)
            parent = msg.get("parent_header", {}).get("msg_id")
            if parent == msg_id and msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == until:
                    return


def server_ws(url):
    return "ws" + url[len("http") :]


async def start_server(hub, user, name):
    """Start a real server; return it with its direct address."""
    await add_server(hub, user, name)
    for _ in range(300):
        code, model = await hub.api("GET", f"/users/{user}")
        if model["servers"].get(name, {}).get("ready"):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"{user}/{name} never ready:\n{hub.log_text()[-3000:]}")
    code, routes = await hub.api("GET", "/proxy")
    assert code == 200, routes
    route = routes[f"/user/{user}/{name}/"]
    return Server(hub, user, name, route["target"], model["servers"][name])


def set_clock(monkeypatch, when):
    monkeypatch.setattr(clock, "utcnow", lambda: when)


def week_after_now(hours=1):
    return datetime.now(timezone.utc) + WEEK + timedelta(hours=hours)


class Captured(logging.Handler):
    """The service's log lines, to check what it said."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


async def passes(hub, tmp_path, *args, token=SERVICE_TOKEN):
    """A dry run on the hub's record alone, then a real confirming pass."""
    hub_only = await service(hub.api_url, tmp_path, "--dry-run").run_pass()
    app = service(
        hub.api_url, tmp_path, "--confirm-with-server", *args, api_token=token
    )
    log = Captured()
    app.log.addHandler(log)
    report = await app.run_pass()
    app.log.removeHandler(log)
    return hub_only, report, log.lines


async def test_busy_kernel_keeps_server(real_hub, tmp_path, monkeypatch):
    """A kernel computing with nobody connected: the hub sees nothing."""
    hub = await real_hub()
    server = await start_server(hub, "alice", "sim")
    kernel = await server.start_kernel()
    await kernel.connect()
    await kernel.execute("import time; time.sleep(600)", until="busy")
    await kernel.close()
    await server.wait_kernel(kernel.id, execution_state="busy")

    set_clock(monkeypatch, week_after_now())
    hub_only, report, _ = await passes(hub, tmp_path)
    assert hub_only.removed == ["alice/sim"], "the hub's record alone says idle"
    assert report.removed == [] and report.errors == 0
    assert (await server.kernels())[kernel.id]["execution_state"] == "busy"
    await server.call("POST", f"kernels/{kernel.id}/interrupt", {})


async def test_recent_kernel_activity_keeps_server(real_hub, tmp_path, monkeypatch):
    """Code run after the hub's last record, then silence: kept by its time."""
    hub = await real_hub()
    server = await start_server(hub, "bob", "fit")
    kernel = await server.start_kernel()
    await kernel.connect()
    await asyncio.sleep(2)
    await kernel.execute("x = sum(range(10))")
    await kernel.close()
    ran = parse_iso((await server.kernels())[kernel.id]["last_activity"])
    recorded = await server.hub_activity()
    gap = ran - recorded
    assert gap > timedelta(seconds=1), (ran, recorded)

    # a week after the hub's record, but not yet a week after the code ran
    set_clock(monkeypatch, recorded + WEEK + gap / 2)
    hub_only, report, _ = await passes(hub, tmp_path)
    assert hub_only.removed == ["bob/fit"]
    assert report.removed == [] and report.errors == 0

    # once a week has passed since the code ran, it goes
    set_clock(monkeypatch, ran + WEEK + timedelta(seconds=1))
    _, report, _ = await passes(hub, tmp_path)
    assert report.removed == ["bob/fit"], hub.log_text()[-2000:]


async def test_open_connection_keeps_server_until_closed(
    real_hub, tmp_path, monkeypatch
):
    """An idle kernel with a browser tab attached; then the tab closes."""
    hub = await real_hub()
    server = await start_server(hub, "carol", "tab")
    kernel = await server.start_kernel()
    await kernel.connect()
    await kernel.execute("y = 1")
    await server.wait_kernel(kernel.id, execution_state="idle")
    before = (await server.status())["last_activity"]

    set_clock(monkeypatch, week_after_now())
    hub_only, report, _ = await passes(hub, tmp_path)
    assert hub_only.removed == ["carol/tab"]
    assert report.removed == [] and report.errors == 0
    # asking is not activity: the server's own record did not move
    assert (await server.status())["last_activity"] == before

    await kernel.close()
    _, report, _ = await passes(hub, tmp_path)
    assert report.removed == ["carol/tab"] and report.errors == 0
    code, model = await hub.api("GET", "/users/carol?include_stopped_servers=1")
    assert "tab" not in model["servers"]


async def test_unreachable_server_falls_back_to_hub_record(
    real_hub, tmp_path, monkeypatch
):
    """The process died behind the hub's back: decide on the hub's record."""
    hub = await real_hub()
    server = await start_server(hub, "dave", "gone")
    pid = server.model["state"]["pid"]
    os.kill(pid, signal.SIGKILL)  # its port closes with it

    set_clock(monkeypatch, week_after_now())
    _, report, lines = await passes(hub, tmp_path)
    assert report.removed == ["dave/gone"] and report.errors == 0
    said = [m for m in lines if m.startswith("No activity report from")]
    assert said and "/user/dave/gone/api/" in said[0], lines
    assert "the hub's record decides" in said[0]


async def test_without_tokens_scope_falls_back_and_says_so(
    real_hub, tmp_path, monkeypatch
):
    """A role missing `tokens`: logged with the fix, hub record used."""
    hub = await real_hub()
    server = await start_server(hub, "erin", "busy")
    kernel = await server.start_kernel()
    await kernel.connect()  # an open connection the service cannot see

    set_clock(monkeypatch, week_after_now())
    _, report, lines = await passes(hub, tmp_path, token=NO_ACCESS_TOKEN)
    assert report.removed == ["erin/busy"] and report.errors == 0
    said = [m for m in lines if m.startswith("No activity report from")]
    assert said and "HTTP 403" in said[0] and "`tokens` scope" in said[0], lines


async def test_notice_window_does_not_ask_the_server(real_hub, tmp_path, monkeypatch):
    """Asking goes through the proxy and would refresh the hub's record."""
    hub = await real_hub(activity_interval=1)
    server = await start_server(hub, "fred", "thesis")
    await asyncio.sleep(3)  # the proxy's first record (the new route) is in
    recorded = await server.hub_activity()

    set_clock(monkeypatch, recorded + WEEK - timedelta(hours=12))
    app = service(hub.api_url, tmp_path, "--confirm-with-server")
    report = await app.run_pass()
    assert report.notified == ["fred/thesis"] and report.removed == []
    await asyncio.sleep(3)  # the hub has pulled the proxy's activity since
    assert await server.hub_activity() == recorded, "the notice pass was traffic"

    set_clock(monkeypatch, recorded + WEEK + timedelta(minutes=1))
    report = await service(hub.api_url, tmp_path, "--confirm-with-server").run_pass()
    assert report.removed == ["fred/thesis"] and report.errors == 0


@pytest.mark.parametrize(
    "full_url, public_url, expected",
    [
        (None, "", "http://127.0.0.1:8000/user/a/p/api/"),
        ("https://hub.example/user/a/p/", "", "https://hub.example/user/a/p/api/"),
        (
            "https://hub.example/user/a/p/",
            "http://proxy-public/",
            "http://proxy-public/user/a/p/api/",
        ),
    ],
)
def test_server_api_url(full_url, public_url, expected):
    model = {"url": "/user/a/p/", "full_url": full_url}
    api = "http://127.0.0.1:8000/hub/api"
    assert server_api_url(model, public_url, api) == expected
