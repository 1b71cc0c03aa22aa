"""What hubext-idle sends to a user's server, against a hostile one.

A user controls their server: whatever token it receives, it keeps. Here
the "server" of some projects is a small loopback HTTP server in the test
(`HostileServer`, registered as that server's URL through the hub's own
spawner and proxy). It records every Authorization header it gets and, as
an attacker would, tries each token on the hub API at once, before
answering. The hub is real (`hub_factory`); the service runs in-process with
`--confirm-with-server`.
"""

import json
from datetime import datetime, timedelta, timezone

import pytest
from tornado import httpserver, netutil, web

from hubext.idle import clock
from hubext.idle.clock import parse_iso
from tests.test_idle import SERVICE_TOKEN, WEEK, add_server, servers_of, service

pytestmark = [pytest.mark.hub, pytest.mark.hub_version]

#: the role the docs give a service that confirms with the server
CONFIRM_SCOPES = [
    "list:users",
    "read:users:activity",
    "read:servers",
    "delete:servers",
    "tokens",
]

# A spawner that reports the URL the test asks for as the server's: the
# hub then checks it, routes the proxy to it and lists it as ready.
TARGET_SPAWNER = """
from tests.helpers.spawners import InstantSpawner


class TargetSpawner(InstantSpawner):
    async def start(self):
        url = await super().start()
        return (self.user_options or {}).get("target") or url


c.JupyterHub.spawner_class = TargetSpawner
# every use of a token counts, so a use that would be the user's shows
c.JupyterHub.activity_resolution = 0
"""


def hub_config(scopes=CONFIRM_SCOPES):
    return (
        TARGET_SPAWNER
        + f"""
c.JupyterHub.services.append({{"name": "hubext-idle", "api_token": "{SERVICE_TOKEN}"}})
c.JupyterHub.load_roles.append(
    {{"name": "hubext-idle", "scopes": {scopes!r}, "services": ["hubext-idle"]}}
)
"""
    )


@pytest.fixture
def week_later(monkeypatch):
    """The service's clock a week and a half hour ahead: every server is due."""
    later = datetime.now(timezone.utc) + WEEK + timedelta(minutes=30)
    monkeypatch.setattr(clock, "utcnow", lambda: later)


def old(days=30):
    stamp = datetime.now(timezone.utc) - timedelta(days=days)
    return stamp.isoformat().replace("+00:00", "Z")


class HostileServer:
    """A user's server that keeps every token and tries it on the hub.

    `answers` maps a server path (`/user/alice/p1/`) to what its
    `/api/status` and `/api/kernels` say: `{"status": body, "kernels":
    body}`, each a JSON-able value or raw `bytes`; by default, idle for a
    month.
    """

    def __init__(self, hub, answers=None, attack=True):
        self.hub = hub
        self.answers = answers or {}
        self.attack = attack
        self.received = []  # (path, Authorization header or None)
        self.tried = {}  # token -> what it could do on the hub
        server = self

        class Handler(web.RequestHandler):
            async def get(self, path):
                await server.serve(self)

        sockets = netutil.bind_sockets(0, address="127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self.http = httpserver.HTTPServer(web.Application([(r"(/.*)", Handler)]))
        self.http.add_sockets(sockets)

    async def serve(self, handler):
        path = handler.request.path
        auth = handler.request.headers.get("Authorization")
        self.received.append((path, auth))
        handler.set_header("X-JupyterHub-Version", "5.0.0")
        if self.attack and auth and auth.split()[-1] not in self.tried:
            token = auth.split()[-1]
            self.tried[token] = None  # once per token, even if asked twice
            self.tried[token] = await self.try_token(token, path)
        prefix, _, what = path.partition("/api/")
        answer = self.answers.get(prefix + "/", {})
        if what and "redirect" in answer:
            handler.redirect(answer["redirect"] + path)
            return
        if what == "status":
            body = answer.get(
                "status",
                {"started": old(), "last_activity": old(), "connections": 0},
            )
        elif what == "kernels":
            body = answer.get("kernels", [])
        else:  # the hub's check that the server is up
            body = {"path": path}
        if not isinstance(body, bytes):
            handler.set_header("Content-Type", "application/json")
            body = json.dumps(body).encode()
        handler.finish(body)

    async def try_token(self, token, path):
        """Everything a hostile server would try with a token it got."""
        parts = path.split("/api/")[0].strip("/").split("/")
        user, name = parts[1], (parts[2:] or [""])[0]
        hub = self.hub
        tried = {}
        code, me = await hub.api("GET", "/user", token=token)
        tried["whoami"] = (code, me)
        tried["own user"] = await hub.api("GET", f"/users/{user}", token=token)
        for what, method, target, body in [
            ("list users", "GET", "/users", None),
            ("read another user", "GET", "/users/bob", None),
            ("stop own server", "DELETE", f"/users/{user}/servers/{name}", None),
            ("delete other's server", "DELETE", "/users/bob/servers/b1", None),
            ("mint a token", "POST", f"/users/{user}/tokens", {}),
            ("report activity", "POST", f"/users/{user}/activity", {}),
            ("start a server", "POST", f"/users/{user}/servers/new", {}),
        ]:
            code, _ = await hub.api(method, target, body=body, token=token)
            tried[what] = code
        # the hub's own view of the token (asked with the test's admin token)
        token_id = me.get("token_id") if isinstance(me, dict) else None
        code, model = await hub.api("GET", f"/users/{user}/tokens/{token_id}")
        tried["model"] = model if code == 200 else None
        # and whether all that counted as the user's activity
        code, model = await hub.api("GET", f"/users/{user}")
        tried["user's activity"] = model["last_activity"]
        return tried

    def tokens(self):
        return {auth for _, auth in self.received if auth}

    def close(self):
        self.http.stop()


async def start_hostile(hub, hostile, user, name):
    await add_server(hub, user, name, target=hostile.url)
    model = (await servers_of(hub, user))[name]
    assert model["ready"], model


async def test_only_a_token_for_that_server_reaches_it(
    hub_factory, tmp_path, week_later
):
    """The service's token never leaves for a user's server; the one that
    does can only identify its owner, and is gone after the pass."""
    hub = await hub_factory(hub_config())
    hostile = HostileServer(hub)
    await start_hostile(hub, hostile, "alice", "p1")
    await start_hostile(hub, hostile, "carol", "")  # a default server
    await add_server(hub, "bob", "b1")  # an ordinary server, also idle
    seen = {}
    for user in ("alice", "carol"):
        seen[user] = (await hub.api("GET", f"/users/{user}"))[1]["last_activity"]

    report = await service(hub.api_url, tmp_path, "--confirm-with-server").run_pass()
    assert report.errors == 0, hub.log_text()[-3000:]
    assert sorted(report.removed) == ["alice/p1", "bob/b1"]
    assert report.stopped.count("carol/") == 1

    received = hostile.tokens()
    assert all(SERVICE_TOKEN not in auth for auth in received), (
        "the service's own token reached a user's server"
    )
    assert len(received) == 2, hostile.received  # one token per server asked
    for token, tried in hostile.tried.items():
        code, me = tried.pop("whoami")
        assert code == 200 and me["kind"] == "user", me
        user = me["name"]
        own = {"alice": "alice/p1", "carol": "carol/"}[user]
        # every token may read its owner's name and groups
        identify = {f"read:users:{f}!user={user}" for f in ("name", "groups")}
        assert set(me["scopes"]) - identify == {f"access:servers!server={own}"}, me
        # using the token is not the user's activity (the server's own
        # token is not counted either)
        assert tried.pop("user's activity") == seen[user]
        model = tried.pop("model")
        lifetime = parse_iso(model["expires_at"]) - parse_iso(model["created"])
        assert lifetime <= timedelta(minutes=10), model
        assert "hubext-idle" in model["note"], model
        code, model = tried.pop("own user")
        assert code == 200, model  # its name, but nothing about its servers
        assert not {"servers", "last_activity", "roles", "auth_state"} & set(model)
        allowed = {what: code for what, code in tried.items() if code not in (403, 404)}
        assert allowed == {}, f"{user}'s token could do more: {allowed}"
        # after the pass the token is deleted, not just left to expire
        code, _ = await hub.api("GET", "/user", token=token)
        assert code == 403, f"{me['name']}'s token still works after the pass"
        code, tokens = await hub.api("GET", f"/users/{me['name']}/tokens")
        assert me["token_id"] not in {t["id"] for t in tokens["api_tokens"]}
    hostile.close()


async def confirming_pass(hub, tmp_path):
    """One pass of the service with --confirm-with-server: its report and
    every line it logged."""
    app = service(hub.api_url, tmp_path, "--confirm-with-server")
    lines = []
    app.log.addFilter(lambda record: lines.append(record.getMessage()) or True)
    return await app.run_pass(), lines


async def test_a_role_without_tokens_falls_back_and_says_so(
    hub_factory, tmp_path, week_later
):
    """No `tokens` scope: nothing is sent to the server, the hub decides."""
    scopes = [s for s in CONFIRM_SCOPES if s != "tokens"] + ["access:servers"]
    hub = await hub_factory(hub_config(scopes))
    hostile = HostileServer(hub)
    await start_hostile(hub, hostile, "alice", "p1")

    report, lines = await confirming_pass(hub, tmp_path)
    assert report.removed == ["alice/p1"] and report.errors == 0
    assert hostile.tokens() == set(), "a token was sent without being minted"
    said = [m for m in lines if m.startswith("No activity report from")]
    assert said and "`tokens` scope" in said[0], lines
    hostile.close()


#: answers no jupyter_server gives, each from its own server
MALFORMED = {
    "words": {"status": {"last_activity": "yesterday"}},
    "number-time": {"status": {"last_activity": 1700000000}},
    "out-of-range": {"status": {"last_activity": "0001-01-01T00:00:00+01:00"}},
    "string-count": {"status": {"last_activity": old(), "connections": "many"}},
    "float-count": {"status": {"last_activity": old(), "connections": 1.5}},
    "huge-count": {"status": {"last_activity": old(), "connections": 10**40}},
    "infinite-count": {"status": b'{"connections": 1e999}'},
    "negative-count": {"status": {"last_activity": old(), "connections": -1}},
    "status-list": {"status": [old()]},
    "status-null": {"status": None},
    "kernels-object": {"kernels": {"k1": {"execution_state": "busy"}}},
    "kernel-list": {"kernels": [["busy"]]},
    "kernel-time": {"kernels": [{"execution_state": "idle", "last_activity": "soon"}]},
    "kernel-state": {"kernels": [{"execution_state": ["busy"], "connections": 0}]},
    "not-json": {"status": b"<html>it works</html>"},
    "deep-json": {"status": b"[" * 100000 + b"]" * 100000},
    "huge-answer": {"status": b" " * (5 * 2**20) + b"{}"},
}


async def test_malformed_answers_count_as_no_report(hub_factory, tmp_path, week_later):
    """Each odd answer: no report, the hub's record decides, the pass goes on."""
    hub = await hub_factory(hub_config())
    answers = {f"/user/alice/{name}/": answer for name, answer in MALFORMED.items()}
    hostile = HostileServer(hub, answers, attack=False)
    for name in MALFORMED:
        await start_hostile(hub, hostile, "alice", name)
    await add_server(hub, "bob", "b1")

    report, lines = await confirming_pass(hub, tmp_path)
    assert report.errors == 0, lines
    expected = [f"alice/{name}" for name in MALFORMED] + ["bob/b1"]
    assert sorted(report.removed) == sorted(expected), lines
    for name in MALFORMED:
        said = [m for m in lines if f"/user/alice/{name}/api/" in m]
        assert any("No activity report" in m for m in said), (name, said)
    # the tokens went away however the question ended
    for auth in hostile.tokens():
        code, _ = await hub.api("GET", "/user", token=auth.split()[-1])
        assert code == 403
    hostile.close()


async def test_a_redirect_is_not_followed(hub_factory, tmp_path, week_later):
    """A server answering with a redirect elsewhere gets no second request
    there, so the token it was sent goes nowhere else."""
    hub = await hub_factory(hub_config())
    elsewhere = HostileServer(hub, attack=False)
    hostile = HostileServer(hub, {"/user/alice/p1/": {"redirect": elsewhere.url}})
    await start_hostile(hub, hostile, "alice", "p1")

    report, lines = await confirming_pass(hub, tmp_path)
    assert report.removed == ["alice/p1"] and report.errors == 0
    assert len(hostile.tokens()) == 1
    assert elsewhere.received == [], "the question followed the redirect"
    assert any("HTTP 302" in m for m in lines), lines
    elsewhere.close()
    hostile.close()
