"""hubext-idle: the pure policy, and passes against a real JupyterHub.

The hub runs in a subprocess (`hub_factory`) with `InstantSpawner`; the
service runs in-process with the minimal role the docs give, its clock
(`hubext.idle.clock.utcnow`) moved a week forward, since the hub only lets
activity move forward (and at most an hour into the future).
"""

import asyncio
import json
import logging
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jupyterhub
import pytest
from tornado import httpserver, netutil, web
from traitlets.config import Config

from hubext.idle import IdleService, clock
from hubext.idle.activity import NoReport, activity_from_reports
from hubext.idle.policy import Action, decide
from tests.helpers.httpproxy import CountingProxy

NODE_BIN = Path(__file__).resolve().parents[1] / "node_modules" / ".bin"
JUPYTERHUB_MAJOR = int(jupyterhub.__version__.split(".")[0])

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
WEEK = timedelta(days=7)
DAY = timedelta(days=1)
IDLE_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
SERVICE_TOKEN = "idle-" + "0" * 40


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def server(name="p1", *, ready=True, stopped=False, pending=None, activity=None):
    return {
        "name": name,
        "ready": ready and not stopped,
        "stopped": stopped,
        "pending": pending,
        "last_activity": iso(activity),
        "started": None,
    }


USER = {"name": "alice", "last_activity": iso(NOW - 30 * DAY)}


@pytest.mark.parametrize(
    "model, action",
    [
        (server(activity=NOW - 8 * DAY), Action.REMOVE),
        (server(stopped=True, activity=NOW - 8 * DAY), Action.REMOVE),
        (server(activity=NOW - WEEK), Action.REMOVE),
        (server(activity=NOW - 6 * DAY - timedelta(hours=1)), Action.NOTIFY),
        (server(activity=NOW - 2 * DAY), Action.KEEP),
        (server(stopped=True, activity=NOW - DAY), Action.KEEP),
        (server(pending="spawn", activity=NOW - 30 * DAY), Action.KEEP),
        (server(pending="stop", activity=NOW - 30 * DAY), Action.KEEP),
        (server("", activity=NOW - 8 * DAY), Action.STOP),
        (server("", activity=NOW - 6.5 * DAY), Action.KEEP),
        (server("", stopped=True, activity=NOW - 30 * DAY), Action.KEEP),
        # no server activity: falls back to the user's (30 days ago)
        (server(activity=None), Action.REMOVE),
    ],
)
def test_policy_table(model, action):
    decision = decide(USER, model, NOW, timeout=WEEK, notice_before=DAY)
    assert decision.action is action, decision.reason


def test_policy_started_beats_user_and_unknown_age_keeps():
    model = server(activity=None)
    model["started"] = iso(NOW - DAY)
    assert decide(USER, model, NOW, timeout=WEEK).action is Action.KEEP
    nobody = {"name": "x", "last_activity": None}
    assert decide(nobody, server(activity=None), NOW, timeout=WEEK).action is (
        Action.KEEP
    )


def test_policy_server_reported_activity_keeps():
    model = server(activity=NOW - 8 * DAY)
    assert (
        decide(USER, model, NOW, timeout=WEEK, server_activity=NOW - DAY).action
        is Action.KEEP
    )


@pytest.mark.parametrize(
    "status, kernels, expected",
    [
        ({"last_activity": iso(NOW - 9 * DAY)}, [], NOW - 9 * DAY),
        ({"last_activity": iso(NOW - 9 * DAY), "connections": 1}, [], NOW),
        (
            {"last_activity": iso(NOW - 9 * DAY)},
            [{"execution_state": "busy", "last_activity": iso(NOW - 8 * DAY)}],
            NOW,
        ),
        (
            {"last_activity": iso(NOW - 9 * DAY)},
            [{"execution_state": "idle", "connections": 2}],
            NOW,
        ),
        (
            {"last_activity": iso(NOW - 9 * DAY)},
            [{"execution_state": "idle", "last_activity": iso(NOW - 3 * DAY)}],
            NOW - 3 * DAY,
        ),
        ({}, [], None),
        # a server's clock (or a lie) ahead of ours counts as now
        ({"last_activity": iso(NOW + 9 * DAY)}, [], NOW),
    ],
)
def test_activity_from_reports(status, kernels, expected):
    assert activity_from_reports(status, kernels, NOW) == expected


@pytest.mark.parametrize(
    "status, kernels",
    [({}, ["junk"]), ({"connections": True}, []), ({"last_activity": "Z"}, [])],
)
def test_activity_from_odd_reports_is_no_report(status, kernels):
    with pytest.raises(NoReport):
        activity_from_reports(status, kernels, NOW)


# ---------------------------------------------------------------- real hub


def idle_config(scopes=IDLE_SCOPES):
    return f"""
c.JupyterHub.services.append({{"name": "hubext-idle", "api_token": "{SERVICE_TOKEN}"}})
c.JupyterHub.load_roles.append(
    {{"name": "hubext-idle", "scopes": {scopes!r}, "services": ["hubext-idle"]}}
)
"""


def service(url, tmp_path, *args, **traits):
    """A fresh in-process service, as the hub would run it."""
    config = Config()
    config.IdleService.update(
        api_token=SERVICE_TOKEN,
        retry_backoff=0.2,
        retry_backoff_max=2,
        api_retries=20,
    )
    config.IdleService.update(traits)
    app = IdleService(config=config)
    app.initialize(
        [
            f"--url={url}",
            f"--config={tmp_path / 'none.py'}",
            f"--state-file={tmp_path / 'state.json'}",
            *args,
        ]
    )
    return app


@pytest.fixture
def week_later(monkeypatch):
    """Move the service's clock: `week_later(hours)` = now + 7 days + hours."""
    real = datetime.now(timezone.utc)

    def set_offset(hours=0.5):
        monkeypatch.setattr(
            clock, "utcnow", lambda: real + WEEK + timedelta(hours=hours)
        )

    set_offset()
    return set_offset


async def add_server(hub, user, name, **options):
    code, _ = await hub.api("POST", f"/users/{user}")
    assert code in (201, 409)
    path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
    code, body = await hub.api("POST", path, body=options or None)
    assert code in (201, 202), body


async def servers_of(hub, user):
    code, model = await hub.api("GET", f"/users/{user}?include_stopped_servers=1")
    assert code == 200, model
    return model["servers"]


async def touch(hub, user, name, minutes=59):
    """Report activity `minutes` in the future: the most the hub accepts."""
    when = iso(datetime.now(timezone.utc) + timedelta(minutes=minutes))
    code, body = await hub.api(
        "POST",
        f"/users/{user}/activity",
        body={"servers": {name: {"last_activity": when}}},
    )
    assert code == 200, body


async def populate(hub):
    await add_server(hub, "alice", "running-idle")
    await add_server(hub, "alice", "stopped-idle")
    assert (await hub.api("DELETE", "/users/alice/servers/stopped-idle"))[0] == 204
    await add_server(hub, "alice", "active")
    await touch(hub, "alice", "active")
    await add_server(hub, "alice", "pending", start_delay=120)
    await add_server(hub, "bob", "")  # default server, idle


@pytest.mark.hub
@pytest.mark.hub_version
async def test_pass_removes_idle_named_servers_only(hub_factory, tmp_path, week_later):
    hub = await hub_factory(idle_config())
    await populate(hub)
    before = await servers_of(hub, "alice")
    assert before["stopped-idle"]["stopped"] and before["pending"]["pending"]

    dry = await service(hub.api_url, tmp_path, "--dry-run").run_pass()
    assert sorted(dry.removed) == ["alice/running-idle", "alice/stopped-idle"]
    assert sorted(dry.stopped) == ["alice/running-idle", "bob/"]
    assert await servers_of(hub, "alice") == before, "dry run changed the hub"
    assert not (tmp_path / "state.json").exists()

    app = service(hub.api_url, tmp_path)
    report = await app.run_pass()
    assert report.errors == 0, hub.log_text()[-3000:]
    assert sorted(report.removed) == ["alice/running-idle", "alice/stopped-idle"]
    after = await servers_of(hub, "alice")
    # the hub also lists the user's never-started default server ("")
    assert sorted(after) == ["", "active", "pending"]
    assert after["active"]["ready"] and after["pending"]["pending"] == "spawn"
    bob = await servers_of(hub, "bob")
    assert bob[""]["stopped"] is True, "default server must be stopped"
    code, users = await hub.api("GET", "/users")
    assert {u["name"] for u in users} >= {"alice", "bob"}, "users must stay"
    assert app.metrics.removed._value.get() == 2
    assert app.metrics.stopped._value.get() == 2

    # a second pass finds nothing more to do: the default server stays
    again = await service(hub.api_url, tmp_path).run_pass()
    assert (again.removed, again.stopped) == ([], [])
    assert "" in await servers_of(hub, "bob")


class Webhook:
    """A loopback endpoint collecting notice POSTs."""

    def __init__(self):
        self.received = []
        hook = self

        class Handler(web.RequestHandler):
            def post(self):
                hook.received.append(json.loads(self.request.body))

        sockets = netutil.bind_sockets(0, address="127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/notice"
        self.server = httpserver.HTTPServer(web.Application([(r"/notice", Handler)]))
        self.server.add_sockets(sockets)


@pytest.mark.hub
@pytest.mark.hub_version
async def test_notice_once_across_restarts(hub_factory, tmp_path, week_later):
    hub = await hub_factory(idle_config())
    await add_server(hub, "carol", "thesis")
    out = tmp_path / "notices.jsonl"
    script = (
        "import os, sys; "
        f"open({str(out)!r}, 'a').write(sys.stdin.read().strip() + ' ' "
        "+ os.environ['HUBEXT_IDLE_SERVER'] + '\\n')"
    )
    hook = Webhook()
    args = [f"--notice-url={hook.url}"]
    command = [sys.executable, "-c", script]
    week_later(-12)  # inside the last day before removal
    for _ in range(2):
        report = await service(
            hub.api_url, tmp_path, *args, notice_command=command
        ).run_pass()
        assert report.errors == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 1, lines
    payload = json.loads(lines[0].rsplit(" ", 1)[0])
    assert payload["user"] == "carol" and payload["server"] == "thesis"
    assert lines[0].endswith(" thesis")
    assert [h["server"] for h in hook.received] == ["thesis"]
    assert "thesis" in await servers_of(hub, "carol")

    week_later(1)  # past the deadline: removed, no second notice
    report = await service(
        hub.api_url, tmp_path, *args, notice_command=command
    ).run_pass()
    assert report.removed == ["carol/thesis"] and report.notified == []
    assert len(out.read_text().splitlines()) == 1
    assert json.loads((tmp_path / "state.json").read_text()) == {"notified": {}}


@pytest.mark.hub
@pytest.mark.hub_version
async def test_failing_notice_hook_is_retried_and_blocks_nothing(
    hub_factory, tmp_path, week_later
):
    hub = await hub_factory(idle_config())
    await add_server(hub, "dave", "p1")
    week_later(-12)
    app = service(hub.api_url, tmp_path, notice_command=["false"])
    report = await app.run_pass()
    assert report.errors == 1 and report.notified == []
    assert not (tmp_path / "state.json").exists(), "a failed notice is not recorded"


@pytest.mark.hub
@pytest.mark.hub_version
async def test_503s_during_a_pass_are_retried(hub_factory, tmp_path, week_later):
    hub = await hub_factory(idle_config())
    for i in range(3):
        await add_server(hub, f"u{i}", "p")
    proxy = CountingProxy(hub.url)
    proxy.fail_first(3, "GET", "/hub/api/users?")
    app = service(proxy.url + "/hub/api", tmp_path, "--page-size=1")
    report = await app.run_pass()
    assert proxy.failed == 3
    assert report.errors == 0
    assert sorted(report.removed) == ["u0/p", "u1/p", "u2/p"]

    # DELETEs failing for longer than the retries: logged, counted, no crash
    await add_server(hub, "u9", "p")
    proxy.fail_first(1000, "DELETE")
    app = service(proxy.url + "/hub/api", tmp_path, api_retries=2)
    report = await app.run_pass()
    assert report.errors == 1 and report.removed == []
    assert app.metrics.errors._value.get() == 1
    assert "u9" in {u["name"] for u in (await hub.api("GET", "/users"))[1]}
    proxy.fail = None
    assert (await app.run_pass()).removed == ["u9/p"]
    proxy.close()


@pytest.mark.hub
@pytest.mark.hub_version
async def test_hub_restart_during_a_pass(hub_factory, tmp_path, week_later):
    hub = await hub_factory(idle_config())
    names = [f"r{i}" for i in range(8)]
    for name in names:
        await add_server(hub, name, "p")
    proxy = CountingProxy(hub.url)
    proxy.delay = 0.25  # a pass of ~4 s: time to restart the hub inside it
    app = service(proxy.url + "/hub/api", tmp_path, "--page-size=2", "--concurrency=1")
    app.once = False
    app.interval = 0.5
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    app.log.addHandler(handler)
    serving = asyncio.ensure_future(app.serve())
    while proxy.counts["DELETE"] < 2:
        await asyncio.sleep(0.05)
    await hub.stop()
    await asyncio.sleep(1)
    await hub.start()
    while app.metrics.removed._value.get() < len(names):
        assert not serving.done(), serving.exception()
        await asyncio.sleep(0.2)
    assert not serving.done(), "the service must keep running"
    serving.cancel()
    for name in names:
        assert list(await servers_of(hub, name)) in ([], [""])
    assert any("Connection refused" in m and "retry" in m for m in seen), seen
    assert app.metrics.errors._value.get() == 0
    proxy.close()


def token_for(scope):
    return f"idle-without-{scope.replace(':', '-')}-" + "0" * 20


@pytest.mark.hub
@pytest.mark.hub_version
@pytest.mark.skipif(
    JUPYTERHUB_MAJOR < 6,
    reason="needs a server created without starting (PUT), new in JupyterHub 6",
)
async def test_every_documented_scope_is_needed(hub_factory, tmp_path, week_later):
    """One service per scope left out: each loses part of the job."""
    config = idle_config()
    for scope in IDLE_SCOPES:
        name = token_for(scope)[:-21]
        rest = [s for s in IDLE_SCOPES if s != scope]
        config += f"""
c.JupyterHub.services.append({{"name": "{name}", "api_token": "{token_for(scope)}"}})
c.JupyterHub.load_roles.append({{"name": "{name}", "scopes": {rest!r}, "services": ["{name}"]}})
"""
    hub = await hub_factory(config)
    await hub.api("POST", "/users/erin")
    code, _ = await hub.api(
        "POST",
        "/users/erin/activity",
        body={"last_activity": iso(datetime.now(timezone.utc))},
    )
    assert code == 200
    # created, never started: no server activity, only the user's
    code, model = await hub.api("PUT", "/users/erin/servers/never-started")
    assert code == 201 and model["last_activity"] is None, model

    reports = {}
    for scope in IDLE_SCOPES:
        app = service(hub.api_url, tmp_path, api_token=token_for(scope))
        reports[scope] = await app.run_pass()
    assert reports["list:users"].errors == 1 and reports["list:users"].seen == 0
    assert reports["read:servers"].seen == 0
    assert reports["delete:servers"].errors == 1
    assert reports["read:users:activity"].removed == []
    assert "never-started" in await servers_of(hub, "erin")
    # with all four scopes the same server goes
    full = await service(hub.api_url, tmp_path).run_pass()
    assert full.removed == ["erin/never-started"], full


async def test_a_proxy_404_is_not_read_as_server_gone(tmp_path):
    """While the hub restarts its proxy answers with its own 404 page; that
    must be retried, never taken for "the server is already gone"."""
    import subprocess

    from hubext.idle.hubapi import HubAPI, HubAPIError
    from tests.fixtures.hubproc import free_port

    port, api_port = free_port(), free_port()
    chp = shutil.which(
        "configurable-http-proxy",
        path=os.pathsep.join([str(NODE_BIN), os.environ.get("PATH", "")]),
    )
    proxy = subprocess.Popen(
        [chp, "--ip", "127.0.0.1", "--port", str(port)]
        + ["--api-ip", "127.0.0.1", "--api-port", str(api_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = HubAPI(f"http://127.0.0.1:{port}/hub/api", "t", retries=2, backoff=0.1)
        for _ in range(100):  # until the proxy listens
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
            else:
                writer.close()
                break
        with pytest.raises(HubAPIError) as failure:
            await api.get_server("alice", "p")
        assert failure.value.code == 404
        with pytest.raises(HubAPIError):
            await api.delete_server("alice", "p", remove=True)
    finally:
        proxy.terminate()
        proxy.wait()


@pytest.mark.hub
@pytest.mark.hub_version
async def test_a_slow_stop_is_waited_for(hub_factory, tmp_path, week_later):
    """A stop answered 202 (still stopping): the service waits for it to end,
    with what both JupyterHub 5 and 6 offer."""
    config = (
        idle_config() + '\nc.JupyterHub.tornado_settings = {"slow_stop_timeout": 0.2}\n'
    )
    hub = await hub_factory(config)
    await add_server(hub, "alice", "slow", stop_delay=2)
    await add_server(hub, "bob", "", stop_delay=2)  # default server: stopped only

    app = service(hub.api_url, tmp_path)
    errors = []

    def keep(record):
        if record.levelno >= logging.ERROR:
            errors.append(record.getMessage())
        return True

    app.log.addFilter(keep)
    report = await app.run_pass()
    assert report.errors == 0, errors
    log = hub.log_text()
    assert "202 DELETE /hub/api/users/alice/servers/slow" in log
    assert "202 DELETE /hub/api/users/bob/server" in log
    assert report.removed == ["alice/slow"]
    assert sorted(report.stopped) == ["alice/slow", "bob/"]
    assert "slow" not in await servers_of(hub, "alice")
    assert (await servers_of(hub, "bob"))[""]["stopped"] is True
