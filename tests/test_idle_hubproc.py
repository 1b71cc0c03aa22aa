"""The shared hub fixture and its lightweight spawner, against a real hub."""

import json

import pytest
from tornado.httpclient import AsyncHTTPClient

pytestmark = [pytest.mark.hub, pytest.mark.hub_version]


async def _server(hub, user, name):
    code, model = await hub.api("GET", f"/users/{user}?include_stopped_servers=1")
    assert code == 200, model
    return model["servers"].get(name)


async def test_hub_runs_servers_and_survives_restart(hub_factory):
    hub = await hub_factory()
    assert (await hub.api("POST", "/users/alice"))[0] == 201
    code, _ = await hub.api("POST", "/users/alice/servers/p1")
    assert code == 201
    assert (await _server(hub, "alice", "p1"))["ready"] is True

    # the real proxy routes the server's prefix to the spawner's HTTP server
    resp = await AsyncHTTPClient().fetch(hub.url + "/user/alice/p1/api/status")
    assert json.loads(resp.body)["path"] == "/user/alice/p1/api/status"

    await hub.stop()
    await hub.start()
    model = await _server(hub, "alice", "p1")
    assert model["ready"] is True, hub.log_text()[-3000:]


async def test_start_delay_keeps_server_pending(hub_factory):
    hub = await hub_factory()
    await hub.api("POST", "/users/bob")
    code, _ = await hub.api("POST", "/users/bob/servers/slow", body={"start_delay": 30})
    assert code == 202
    model = await _server(hub, "bob", "slow")
    assert model["pending"] == "spawn"
    code, _ = await hub.api("POST", "/users/bob/servers/fast")
    assert code == 201
