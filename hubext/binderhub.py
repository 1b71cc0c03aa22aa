"""The project quota on BinderHub's launch page.

BinderHub turns any hub refusal of its launch request into "Failed to launch
image …", so the hub's own quota message never reaches the person waiting on
the launch page. A ``tornado.web.HTTPError`` raised from BinderHub's
``pre_launch_hook`` is shown as is, so the same check runs there first.

In BinderHub's config (the hook must be the function itself: the trait
takes no import string; the ``c.QuotaPolicy`` values may also come from the
chart's ``config:`` values, which the chart copies section by section)::

    from hubext.binderhub import pre_launch_hook
    c.Launcher.pre_launch_hook = pre_launch_hook
    c.QuotaPolicy.default_limit = 5
    c.QuotaPolicy.group_limits = {"teaching-staff": 10}

or, with the values in code, ``make_pre_launch_hook(default_limit=5, ...)``.

This check is advisory and not atomic; the hub's creation check
(`hubext.quota.named_server_limit`) is the one that holds under concurrent
launches. When the hub cannot be asked, the hook logs why and lets the
launch go on to that check.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.log import app_log

from .quota import QuotaPolicy, control_panel_url_from_hub_url, count_projects

REQUEST_TIMEOUT = 20
NEEDED_SCOPES = "read:servers and read:users:groups"


def hub_api_url(launcher) -> str:
    """Where BinderHub itself sends hub API requests."""
    url = os.environ.get("JUPYTERHUB_API_URL", "")
    if not url:
        base = getattr(launcher, "hub_url_local", "") or launcher.hub_url
        url = base.rstrip("/") + "/hub/api"
    return url.rstrip("/") + "/"


def hub_request(
    launcher, path: str, username: str, query: str = "", **kwargs
) -> HTTPRequest:
    """A hub API request with BinderHub's token, to `path` + the quoted
    `username` + `query`; `kwargs` go to `HTTPRequest` (method, body, ...)."""
    url = hub_api_url(launcher) + path + quote(username, safe="@~") + query
    headers = {"Authorization": f"token {launcher.hub_api_token}"}
    if "body" in kwargs:
        headers["Content-Type"] = "application/json"
    return HTTPRequest(url, headers=headers, request_timeout=REQUEST_TIMEOUT, **kwargs)


async def fetch_user(launcher, username: str) -> dict | None:
    """The user's hub model with stopped servers and groups; None on failure."""
    log = getattr(launcher, "log", app_log)
    request = hub_request(launcher, "users/", username, "?include_stopped_servers=1")
    url = request.url
    try:
        response = await AsyncHTTPClient().fetch(request)
    except (HTTPClientError, OSError) as e:
        log.error(
            "Project quota: could not read %s from the hub at %s (%s); "
            "leaving the check to the hub",
            username,
            url,
            e,
        )
        return None
    model = json.loads(response.body)
    missing = [key for key in ("servers", "groups") if key not in model]
    if missing:
        log.error(
            "Project quota: the hub did not return %s for %s: give BinderHub's "
            "hub token the scopes %s; leaving the check to the hub",
            " and ".join(missing),
            username,
            NEEDED_SCOPES,
        )
        return None
    return model


async def project_refusal(launcher, username: str, policy: QuotaPolicy):
    """The quota refusal for a new project of ``username``, or None.

    None also when the hub cannot be asked: the hub's own check decides then.
    """
    model = await fetch_user(launcher, username)
    if model is None:
        return None
    quota = policy.limit_for(username, model["groups"])
    used = count_projects(model["servers"])
    if not quota or used < quota:
        return None
    getattr(launcher, "log", app_log).info(
        "Project quota: refused a launch for %s (%d of %d)", username, used, quota
    )
    fallback = control_panel_url_from_hub_url(getattr(launcher, "hub_url", ""))
    return policy.exceeded(used, quota, fallback)


async def check_launch(
    launcher, username: str, server_name: str, policy: QuotaPolicy
) -> None:
    """Raise a 409 with the quota message when the user is at the limit."""
    if not server_name:
        return  # the default server is not a project
    refusal = await project_refusal(launcher, username, policy)
    if refusal is not None:
        # "%s" keeps a "%" in the URL from breaking BinderHub's formatting
        raise web.HTTPError(409, "%s", refusal.message)


def make_pre_launch_hook(
    default_limit: int = 5,
    user_limits: dict | None = None,
    group_limits: dict | None = None,
    control_panel_url: str = "",
):
    """A ``pre_launch_hook`` with the policy given here rather than in config."""
    policy = QuotaPolicy(
        default_limit=default_limit,
        user_limits=dict(user_limits or {}),
        group_limits=dict(group_limits or {}),
        control_panel_url=control_panel_url,
    )

    async def hook(launcher, image, username, server_name, repo_url):
        await check_launch(launcher, username, server_name, policy)

    return hook


async def pre_launch_hook(launcher, image, username, server_name, repo_url):
    """BinderHub's hook, called as ``hook(launcher, image, username,
    server_name, repo_url)``; the policy is ``c.QuotaPolicy`` from
    BinderHub's own config."""
    policy = QuotaPolicy(config=getattr(launcher, "config", None))
    await check_launch(launcher, username, server_name, policy)
