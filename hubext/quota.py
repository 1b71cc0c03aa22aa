"""Project quota: how many named servers ("projects") a user may hold.

One policy, enforced in three places so that a user can never get past it
and always reads the same message:

- the hub's creation check, through `named_server_limit` as
  `c.JupyterHub.named_server_limit_per_user` (REST API, control panel,
  ``/hub/spawn``);
- the spawner, through `check_spawn`, for anything that got past creation;
- BinderHub, through `hubext.binderhub.pre_launch_hook`, because BinderHub
  shows a hub refusal only as "Failed to launch image …".

Projects are counted running *and* stopped, the way JupyterHub counts them:
a stopped project still holds its name and its place in the control panel
until the user deletes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlparse

from tornado import web
from traitlets import Dict, Integer, Unicode, validate
from traitlets.config import Configurable

from .errors import UserFacingError


def quota_message(used: int, quota: int, control_panel_url: str) -> str:
    """The one sentence a user reads at the limit, on every path."""
    noun = "project" if quota == 1 else "projects"
    return (
        f"You have {used} of {quota} {noun}. To launch another, open the "
        f"control panel ({control_panel_url}), stop a project you no longer "
        "need, then delete it."
    )


class QuotaExceeded(UserFacingError):
    """The user already holds as many projects as the policy allows."""

    def __init__(self, *, quota: int, used: int, control_panel_url: str):
        super().__init__(
            quota_message(used, quota, control_panel_url),
            quota=quota,
            used=used,
            control_panel_url=control_panel_url,
        )
        self.quota = quota
        self.used = used


def count_projects(server_names: Iterable[str]) -> int:
    """Count named servers; the default server ("") is not a project.

    Pass any iterable of server names: a hub user's ``orm_spawners`` (running
    and stopped) or the ``servers`` of a REST user model fetched with
    ``include_stopped_servers``.
    """
    return len({name for name in server_names if name})


def _non_negative_limits(proposal, setting: str) -> dict:
    """Reject a negative or non-integer limit, naming the setting."""
    limits = proposal["value"]
    for key, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f"{setting}[{key!r}] = {value!r} is not a valid project limit: "
                "use a whole number, 0 for unlimited."
            )
    return limits


class QuotaPolicy(Configurable):
    """How many projects each user may hold.

    Resolution, first match wins: a per-user value (`user_limits`), else the
    highest value among the user's groups (`group_limits`, where 0 =
    unlimited beats every number), else `default_limit`. A per-user value
    wins over groups even when it is lower, so an admin can restrict one
    person in a generous group.
    """

    default_limit = Integer(
        5,
        min=0,
        config=True,
        help="""Projects (named servers, running or stopped) each user may hold.

        0 means unlimited. Default: 5. Example::

            c.QuotaPolicy.default_limit = 5
        """,
    )

    user_limits = Dict(
        value_trait=Integer(),
        key_trait=Unicode(),
        config=True,
        help="""Per-user limits, by JupyterHub username; they win over groups.

        0 means unlimited. Default: none. Example::

            c.QuotaPolicy.user_limits = {"alice": 10, "bob": 0}
        """,
    )

    @validate("user_limits")
    def _validate_user_limits(self, proposal):
        return _non_negative_limits(proposal, "c.QuotaPolicy.user_limits")

    group_limits = Dict(
        value_trait=Integer(),
        key_trait=Unicode(),
        config=True,
        help="""Per-group limits, by JupyterHub group name.

        A user in several listed groups gets the highest of them (0, unlimited,
        is the highest). A per-user limit still wins. Default: none. Example::

            c.QuotaPolicy.group_limits = {"teaching-staff": 10}
        """,
    )

    @validate("group_limits")
    def _validate_group_limits(self, proposal):
        return _non_negative_limits(proposal, "c.QuotaPolicy.group_limits")

    control_panel_url = Unicode(
        "",
        config=True,
        help="""Address of the control panel named in the quota message.

        Default: empty, meaning derived from where the check runs: the hub's
        ``public_url`` (or its ``/hub/home`` path when that is unset), or
        BinderHub's ``hub_url``. Example::

            c.QuotaPolicy.control_panel_url = "https://hub.example.org/hub/home"
        """,
    )

    def limit_for(self, username: str, groups: Iterable[str] = ()) -> int:
        """The user's limit; 0 means unlimited."""
        if username in self.user_limits:
            return self.user_limits[username]
        found = [self.group_limits[g] for g in groups if g in self.group_limits]
        if not found:
            return self.default_limit
        if 0 in found:
            return 0
        return max(found)

    def exceeded(
        self, used: int, quota: int, fallback_url: str = "/hub/home"
    ) -> QuotaExceeded:
        """Build the refusal, with the configured or the derived address."""
        url = self.control_panel_url or fallback_url
        return QuotaExceeded(quota=quota, used=used, control_panel_url=url)


def control_panel_url_from_settings(settings: dict) -> str:
    """The control panel address as the hub itself knows it.

    ``settings`` is the hub's tornado settings (``handler.settings`` or
    ``user.settings``): absolute when ``c.JupyterHub.public_url`` is set,
    otherwise the hub-relative path.
    """
    hub = settings.get("hub")
    if hub is not None:
        home = hub.base_url.rstrip("/") + "/home"
    else:
        home = settings.get("base_url", "/").rstrip("/") + "/hub/home"
    public = settings.get("public_url")
    if public:
        if isinstance(public, str):
            public = urlparse(public)
        return f"{public.scheme}://{public.netloc}{home}"
    return home


def control_panel_url_from_hub_url(hub_url: str) -> str:
    """The control panel under a hub's public URL, e.g. BinderHub's hub_url."""
    if not hub_url:
        return "/hub/home"
    return hub_url.rstrip("/") + "/hub/home"


def policy_from_settings(settings: dict) -> QuotaPolicy:
    """The hub process's policy, built once from the hub's own config."""
    policy = settings.get("hubext_quota_policy")
    if policy is None:
        policy = QuotaPolicy(config=settings.get("config"))
        settings["hubext_quota_policy"] = policy
    return policy


def _group_names(user) -> list[str]:
    return [group.name for group in user.groups]


def check_spawn(user, server_name: str, policy: QuotaPolicy) -> None:
    """Refuse a start that would leave the user over the limit.

    The spawner's guard, for any path that got past the hub's creation
    check. ``user`` is the hub's ``User`` (``spawner.user``); the server being
    started is counted whether or not it is already recorded.
    """
    if not server_name:
        return
    quota = policy.limit_for(user.name, _group_names(user))
    if quota == 0:
        return
    others = count_projects(n for n in user.orm_spawners if n != server_name)
    if others >= quota:
        # the message counts the projects the user already holds
        raise policy.exceeded(
            others, quota, control_panel_url_from_settings(user.settings)
        )


def _creating(handler, user, server_name: str) -> bool:
    """Whether this request is about to create a new named server.

    JupyterHub also calls the limit callable to render the control panel and
    the admin page; only the creation paths may be refused.
    """
    from jupyterhub.apihandlers.users import UserServerAPIHandler
    from jupyterhub.handlers.pages import SpawnHandler

    if not server_name or server_name in user.orm_spawners:
        return False
    method = handler.request.method
    if isinstance(handler, UserServerAPIHandler):
        return method in ("POST", "PUT")
    if isinstance(handler, SpawnHandler):
        return method in ("GET", "POST")
    return False


def _target(handler):
    """The user and server a request is about: from the URL, else the caller."""
    args = list(handler.path_args or [])
    if args:
        user = handler.find_user(args[0])
        return user, (args[1] if len(args) > 1 else "")
    user = handler.current_user
    return (user if hasattr(user, "orm_spawners") else None), ""


def named_server_limit(handler) -> int:
    """`c.JupyterHub.named_server_limit_per_user`, from the hubext policy.

    JupyterHub calls it as ``fn(handler)``: to create a named server (REST
    ``POST``/``PUT /users/{u}/servers/{name}``, ``/hub/spawn/{u}/{name}``) and
    to render the control panel. On a creation at the limit it refuses with
    hubext's message instead of the hub's fixed text. It never awaits, so the
    count and the hub's creation of the server happen in one step of the
    event loop: concurrent requests cannot both pass.
    """
    policy = policy_from_settings(handler.settings)
    user, server_name = _target(handler)
    if user is None:
        return policy.default_limit
    quota = policy.limit_for(user.name, _group_names(user))
    if quota and _creating(handler, user, server_name):
        used = count_projects(user.orm_spawners)
        if used >= quota:
            refusal = policy.exceeded(
                used, quota, control_panel_url_from_settings(handler.settings)
            )
            handler.log.info(
                "Project quota: refused %s for %s (%d of %d)",
                server_name,
                user.name,
                used,
                quota,
            )
            raise web.HTTPError(400, "%s", refusal.message)
    return quota
