"""The project quota against a real JupyterHub (subprocess, real proxy).

Every path that can create a project is tried at the limit: the REST API as
admin and as the user (what the control panel does), create-without-start,
``/hub/spawn``, BinderHub's request, and BinderHub's own
``binderhub.launcher.Launcher`` with the ``pre_launch_hook`` (one attempt;
the whole BinderHub app, with its retries and page, is in
tests/test_binderhub_*.py).
"""

import asyncio
import json
import random
import secrets
import string

import jupyterhub
import pytest
from binderhub.launcher import Launcher
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets.config import Config

from hubext.binderhub import make_pre_launch_hook, pre_launch_hook
from hubext.quota import quota_message
from tests.helpers.session import login, page

JUPYTERHUB_MAJOR = int(jupyterhub.__version__.split(".")[0])


pytestmark = [pytest.mark.hub, pytest.mark.hub_version, pytest.mark.slow]

HUB_CONFIG = """
from hubext.quota import named_server_limit
c.JupyterHub.named_server_limit_per_user = named_server_limit
c.QuotaPolicy.group_limits = {"teaching-staff": 10}
"""
PANEL = "/hub/home"  # the hub has no public_url: the message uses its path
REPO_URL = "https://github.com/org/repo"
IMAGE = "registry.example.org/binder-org-repo:0123456789abcdef"


def launcher_for(hub, hook=pre_launch_hook, token=None):
    """BinderHub's own Launcher, as its app builds it with auth_enabled and
    named servers, with our hook and config."""
    config = Config()
    config.QuotaPolicy.group_limits = {"teaching-staff": 10}
    return Launcher(
        config=config,
        hub_url=hub.url + "/",
        hub_api_token=token or hub.admin_token,
        create_user=False,
        allow_named_servers=True,
        pre_launch_hook=hook,
        retry_delay=1,
    )


def binder_server_name():
    """A name shaped like BinderHub's: repo slug, dash, 8 random chars."""
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    return f"org-repo-{suffix}"


async def binderhub_launch(hub, launcher, username):
    """One attempt of BinderHub's launch for an authenticated user:
    `Launcher.launch` (its hook, the POST with the user_options body, the
    progress stream). Returns (status, what the launch page would show)."""
    try:
        info = await launcher.launch(
            image=IMAGE,
            username=username,
            server_name=binder_server_name(),
            repo_url=REPO_URL,
            extra_args={
                "binder_ref_url": REPO_URL + "/tree/0123456789abcdef",
                "binder_launch_host": "https://binder.example.org/",
                "binder_request": "v2/gh/org/repo/HEAD",
                "binder_persistent_request": "v2/gh/org/repo/0123456789abcdef",
                "binder_client_ip": "127.0.0.1",
            },
        )
    except web.HTTPError as e:
        # what BinderHub's BuildHandler puts on the launch page
        return e.status_code, e.log_message % e.args
    return 200, info


async def add_user(hub, name, servers=(), stopped=(), groups=()):
    assert (await hub.api("POST", f"/users/{name}"))[0] == 201
    for group in groups:
        await hub.api("POST", f"/groups/{group}")
        code, _ = await hub.api("POST", f"/groups/{group}/users", {"users": [name]})
        assert code == 200
    for server in servers:
        code, body = await hub.api("POST", f"/users/{name}/servers/{server}")
        assert code in (201, 202), body
    for server in stopped:
        code, body = await hub.api("DELETE", f"/users/{name}/servers/{server}")
        assert code in (202, 204), body
    await wait_stopped(hub, name, stopped)


async def wait_stopped(hub, name, servers):
    for _ in range(100):
        model = await user_model(hub, name)
        servers_now = model["servers"]
        if not any(
            servers_now[s]["ready"] or servers_now[s]["pending"] for s in servers
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{servers} of {name} did not stop")


async def user_model(hub, name):
    code, model = await hub.api("GET", f"/users/{name}?include_stopped_servers=1")
    assert code == 200, model
    return model


async def projects(hub, name):
    """The user's named servers, running and stopped, as the hub lists them."""
    return sorted(s for s in (await user_model(hub, name))["servers"] if s)


async def test_sixth_refused_on_every_path_until_one_is_deleted(hub_factory):
    hub = await hub_factory(HUB_CONFIG)
    held = ["p1", "p2", "p3", "p4", "p5"]
    await add_user(hub, "alice", servers=held, stopped=["p4", "p5"])
    model = await user_model(hub, "alice")
    assert await projects(hub, "alice") == held
    assert [s for s in held if model["servers"][s]["ready"]] == ["p1", "p2", "p3"]
    message = quota_message(5, 5, PANEL)

    # REST as admin, create-and-start and create-only
    assert await hub.api("POST", "/users/alice/servers/p6") == (
        400,
        {"status": 400, "message": message},
    )
    if JUPYTERHUB_MAJOR >= 6:  # create-only (PUT) exists from JupyterHub 6 on
        code, body = await hub.api("PUT", "/users/alice/servers/p6")
        assert (code, body["message"]) == (400, message)
    # REST with the user's own token, as the control panel's "Add" does
    code, token = await hub.api("POST", "/users/alice/tokens", {"expires_in": 600})
    assert code == 201
    code, body = await hub.api("POST", "/users/alice/servers/p6", token=token["token"])
    assert (code, body["message"]) == (400, message)
    # BinderHub's request shape, straight to the hub
    code, body = await hub.api(
        "POST", "/users/alice/servers/org-repo-abcd1234", {"image": IMAGE}
    )
    assert (code, body["message"]) == (400, message)
    # the pre_launch_hook, called as BinderHub calls it: a 409 with the message
    code, shown = await binderhub_launch(hub, launcher_for(hub), "alice")
    assert (code, shown) == (409, quota_message(5, 5, hub.url + PANEL))
    # the browser: the spawn page refuses, the control panel still renders
    cookie = await login(hub, "alice")
    code, html = await page(hub, "/hub/spawn/alice/p6", cookie)
    assert code == 400 and message in html
    code, html = await page(hub, "/hub/home", cookie)
    assert code == 200 and "p5" in html
    # restarting a stopped project is not a new one
    assert (await hub.api("POST", "/users/alice/servers/p4"))[0] in (201, 202)
    assert await projects(hub, "alice") == held

    # delete one (stop first, as the control panel requires), then launch
    code, _ = await hub.api("DELETE", "/users/alice/servers/p5", {"remove": True})
    assert code in (202, 204)
    code, _ = await binderhub_launch(hub, launcher_for(hub), "alice")
    assert code == 200
    assert len(await projects(hub, "alice")) == 5
    assert (await hub.api("POST", "/users/alice/servers/p7"))[0] == 400


async def test_fifty_concurrent_launches_leave_exactly_five(hub_factory):
    hub = await hub_factory(HUB_CONFIG)
    await add_user(hub, "bob", servers=["a", "b", "c", "d"], stopped=["d"])
    await add_user(hub, "erin", servers=["a", "b", "c", "d"])
    client = AsyncHTTPClient(force_instance=True, max_clients=100)

    async def rest(i):
        req = HTTPRequest(
            f"{hub.api_url}/users/bob/servers/c{i}",
            method="POST",
            body="{}",
            headers={"Authorization": f"token {hub.admin_token}"},
            request_timeout=60,
        )
        resp = await client.fetch(req, raise_error=False)
        return resp.code, json.loads(resp.body) if resp.body else None

    results = await asyncio.gather(*(rest(i) for i in range(50)))
    codes = sorted(code for code, _ in results)
    assert codes == [201] * 1 + [400] * 49 or codes == [202] + [400] * 49, codes
    refused = {body["message"] for code, body in results if code == 400}
    assert refused == {quota_message(5, 5, PANEL)}
    assert len(await projects(hub, "bob")) == 5

    # the same burst through BinderHub: hook and hub together hold the line
    launcher = launcher_for(hub)
    results = await asyncio.gather(
        *(binderhub_launch(hub, launcher, "erin") for _ in range(50))
    )
    codes = [code for code, _ in results]
    assert codes.count(200) == 1, codes
    # refused by the hook (409, the quota message), or by the hub's creation
    # check, which BinderHub turns into "Failed to launch image" (500)
    assert set(codes) <= {200, 409, 500}, codes
    shown = {text for code, text in results if code != 200}
    assert shown <= {
        quota_message(5, 5, hub.url + PANEL),
        f"Failed to launch image {IMAGE}",
    }
    assert len(await projects(hub, "erin")) == 5
    client.close()


async def test_group_override_applies_to_members_only(hub_factory):
    hub = await hub_factory(HUB_CONFIG)
    five = [f"p{i}" for i in range(1, 6)]
    await add_user(hub, "carol", servers=five, groups=["teaching-staff"])
    await add_user(hub, "dave", servers=five, groups=["students"])
    launcher = launcher_for(hub)

    assert (await hub.api("POST", "/users/carol/servers/p6"))[0] in (201, 202)
    code, _ = await binderhub_launch(hub, launcher, "carol")
    assert code == 200  # the 7th of carol's 10
    code, body = await hub.api("POST", "/users/dave/servers/p6")
    assert (code, body["message"]) == (400, quota_message(5, 5, PANEL))
    code, shown = await binderhub_launch(hub, launcher, "dave")
    assert (code, shown) == (409, quota_message(5, 5, hub.url + PANEL))


async def test_hook_built_in_code_and_hub_trouble(hub_factory, caplog):
    # a BinderHub whose hub role lacks read:users:groups (servers only)
    narrow = secrets.token_hex(32)
    hub = await hub_factory(
        HUB_CONFIG
        + f"""
c.JupyterHub.services.append({{"name": "binder-narrow", "api_token": "{narrow}"}})
c.JupyterHub.load_roles.append(
    {{"name": "narrow", "services": ["binder-narrow"], "scopes": ["servers"]}}
)
"""
    )
    await add_user(hub, "frank", servers=["p1", "p2"], stopped=["p2"])
    hook = make_pre_launch_hook(
        default_limit=2, control_panel_url="https://hub.example.org/hub/home"
    )
    code, shown = await binderhub_launch(hub, launcher_for(hub, hook), "frank")
    assert (code, shown) == (
        409,
        quota_message(2, 2, "https://hub.example.org/hub/home"),
    )
    # a hub that cannot be asked: logged for the admin, the hub's check decides
    weak = launcher_for(hub, make_pre_launch_hook(default_limit=2), token=narrow)
    code, _ = await binderhub_launch(hub, weak, "frank")
    assert code == 200  # the hub's own limit for frank is 5
    assert "Project quota: the hub did not return groups for frank" in caplog.text
