"""The control panel: what `/hub/home` shows a user about their projects.

JupyterHub renders `home.html` with the current user; hubext adds one
template variable, `hubext_panel`, computed here from the hub's `User`:

- every project (named server, running or stopped) with the repository,
  commit and resources it was launched with, its last activity and the date
  after which the idle service removes it;
- "N of M projects", from the same `QuotaPolicy` the hub enforces;
- the user's SSH public key, as the spawner recorded it. The private key
  never reaches the hub, so it cannot reach this page;
- a link to the site's BinderHub (`binderhub_url`).

The page's script adds two buttons, both plain calls of the hub's REST API
with the user's own session (JupyterHub's `jhapi`, with its XSRF token), so
the hub's scopes decide who may use them: **Keep** reports activity for the
project (`POST /hub/api/users/<me>/activity`, scope `users:activity`), which
moves its removal date a full idle timeout forward; **Start** starts a
stopped project with an empty body (`POST /hub/api/users/<me>/servers/<name>`),
so the hub starts it with the launch options it stored at the project's
launch, which the spawner checks again (`launchoptions`). The browser sends
no options.

`configure(c)` in `jupyterhub_config.py` installs the variable and the
templates. Everything here only reads what the hub already holds in memory
and in its database; nothing is written and nothing is fetched.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

from traitlets import Bool, Float, Unicode, default, validate
from traitlets.config import Configurable

from . import quota
from .idle.app import IdleService
from .resources import KEYS, Resources

log = logging.getLogger(__name__)

#: Where the templates extending JupyterHub's live.
TEMPLATES_DIR = str(Path(__file__).parent / "templates")

#: The template variable the templates read.
TEMPLATE_VAR = "hubext_panel"

#: The key under which HubextSpawner keeps its launch record in the state.
STATE_KEY = "hubext"

NO_VALUE = "—"

_SERVICE_MODULES = ("hubext.idle", "hubext-idle")


def timeout_from_services(services) -> float | None:
    """The `--timeout` a hub-managed hubext-idle service is started with.

    Reads `c.JupyterHub.services`, so the timeout is written once, in the
    service's command, and the panel shows the dates the service acts on.
    """
    for service in services or ():
        command = service.get("command") or []
        if isinstance(command, str):
            command = shlex.split(command)
        command = [str(arg) for arg in command]
        if not any(Path(arg).name in _SERVICE_MODULES for arg in command):
            continue
        for i, arg in enumerate(command):
            if arg.startswith("--timeout="):
                return float(arg.split("=", 1)[1])
            if arg == "--timeout" and i + 1 < len(command):
                return float(command[i + 1])
            if arg.startswith("--IdleService.timeout="):
                return float(arg.split("=", 1)[1])
    return None


class ControlPanel(Configurable):
    """What the control panel shows, and the settings it shares."""

    idle_timeout = Float(
        config=True,
        help="""Seconds of inactivity after which a project is removed.

        The panel shows "removed after <date> if idle" = last activity + this.
        It must equal the idle service's `IdleService.timeout`; by default it
        is read from there: `c.IdleService.timeout` if set in the hub's
        config, else the `--timeout` of a hubext-idle service in
        `c.JupyterHub.services`, else hubext-idle's default, 604800 (7 days).
        0 hides removal dates (no idle service). Example::

            c.ControlPanel.idle_timeout = 7 * 24 * 3600
        """,
    )

    @default("idle_timeout")
    def _default_idle_timeout(self):
        own = self.config.get("IdleService", {})
        if "timeout" in own:
            return float(own["timeout"])
        services = self.config.get("JupyterHub", {}).get("services", [])
        found = timeout_from_services(services)
        if found is not None:
            return found
        return IdleService.timeout.default_value

    show_ssh_key = Bool(
        True,
        config=True,
        help="""Show the user's SSH public key with a copy button.

        Turn off when the spawner's SSH identity is off. Default: True.
        Example: `c.ControlPanel.show_ssh_key = False`
        """,
    )

    date_format = Unicode(
        "%Y-%m-%d %H:%M UTC",
        config=True,
        help="""strftime format of removal dates, always in UTC.

        Default: "%Y-%m-%d %H:%M UTC". Example::

            c.ControlPanel.date_format = "%d %B %Y, %H:%M UTC"
        """,
    )

    binderhub_url = Unicode(
        "",
        config=True,
        help="""The site's BinderHub, linked as "Launch a repository" on the panel.

        An http(s) address; empty hides the link. On the Helm chart:
        `controlPanel.binderhubUrl`. Default: empty. Example::

            c.ControlPanel.binderhub_url = "https://binder.example.edu/"
        """,
    )

    @validate("binderhub_url")
    def _check_binderhub_url(self, proposal):
        value = proposal.value.strip()
        if value and not safe_href(value):
            raise ValueError(
                "ControlPanel.binderhub_url must be an http(s) address such as "
                f"https://binder.example.edu/, got {proposal.value!r}"
            )
        return value

    def panel(self, user, policy: quota.QuotaPolicy) -> Panel:
        """Everything `/hub/home` shows about `user`'s projects."""
        projects = [
            self._project(user, orm_spawner)
            for name, orm_spawner in sorted(user.orm_spawners.items())
            if name
        ]
        limit = policy.limit_for(user.name, [g.name for g in user.groups])
        return Panel(
            projects=projects,
            used=len(projects),
            limit=limit,
            ssh_public_key=public_key(user) if self.show_ssh_key else "",
            idle_timeout_days=self.idle_timeout / 86400,
            binderhub_url=self.binderhub_url,
            now=iso(datetime.now(timezone.utc)),
        )

    def _project(self, user, orm_spawner) -> Project:
        spawner = dict.get(user.spawners, orm_spawner.name)  # never creates one
        record = launch_record(orm_spawner, spawner)
        options = orm_spawner.user_options or {}
        if spawner is not None and getattr(spawner, "user_options", None):
            options = spawner.user_options
        given = options.get("repo_url")  # a hub's database may predate the checks
        repo_url = record.get("repo_url") or (given if isinstance(given, str) else "")
        seen = last_activity(user, orm_spawner)
        remove_at = None
        if seen is not None and self.idle_timeout > 0:
            remove_at = seen + timedelta(seconds=self.idle_timeout)
        return Project(
            name=orm_spawner.name,
            display_name=getattr(orm_spawner, "display_name", None) or orm_spawner.name,
            url=user.server_url(orm_spawner.name),
            status=status_of(spawner),
            repo_url=repo_url or NO_VALUE,
            repo_href=safe_href(repo_url),
            commit=record.get("commit") or "",
            ref_href=safe_href(record.get("ref_url") or ""),
            resources=resources_text(record.get("resources")),
            last_activity=iso(seen),
            remove_at=iso(remove_at),
            remove_at_text=remove_at.strftime(self.date_format) if remove_at else "",
        )


@dataclass(frozen=True)
class Project:
    """One row of the panel; every string is shown escaped."""

    name: str
    display_name: str
    url: str
    status: str  # "running", "starting", "stopping" or "stopped"
    repo_url: str
    repo_href: str  # "" when the URL is not http(s): shown as text only
    commit: str
    ref_href: str
    resources: str
    last_activity: str  # ISO 8601 with Z, "" when never active
    remove_at: str
    remove_at_text: str

    @property
    def short_commit(self) -> str:
        return self.commit[:7]

    @property
    def active(self) -> bool:
        return self.status != "stopped"

    @property
    def ready(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class Panel:
    """The user's projects, quota and key, as `hubext_panel` in templates."""

    projects: list = field(default_factory=list)
    used: int = 0
    limit: int = 0  # 0 = unlimited
    ssh_public_key: str = ""
    idle_timeout_days: float = 0
    binderhub_url: str = ""  # "" hides the launch link
    now: str = ""  # the hub's clock when the page was made, for Keep

    @property
    def at_limit(self) -> bool:
        return bool(self.limit) and self.used >= self.limit

    @property
    def quota_text(self) -> str:
        """ "3 of 5 projects", or "3 projects (no limit)"."""
        if not self.limit:
            noun = "project" if self.used == 1 else "projects"
            return f"{self.used} {noun} (no limit)"
        noun = "project" if self.limit == 1 else "projects"
        return f"{self.used} of {self.limit} {noun}"

    @property
    def idle_timeout_text(self) -> str:
        days = self.idle_timeout_days
        if days <= 0:
            return ""
        if days == int(days):
            return "1 day" if days == 1 else f"{int(days)} days"
        return f"{days * 24:g} hours"


def launch_record(orm_spawner, spawner=None) -> dict:
    """HubextSpawner's record of a launch, from memory or the saved state."""
    record = getattr(spawner, "launch_record", None) if spawner else None
    if not record:
        record = (orm_spawner.state or {}).get(STATE_KEY)
    return record if isinstance(record, dict) else {}


def status_of(spawner) -> str:
    """Running, starting, stopping or stopped, as JupyterHub sees it."""
    if spawner is None:
        return "stopped"
    pending = getattr(spawner, "pending", None)
    if pending == "stop":
        return "stopping"
    if pending:
        return "starting"
    if getattr(spawner, "ready", False):
        return "running"
    return "stopped"


def last_activity(user, orm_spawner) -> datetime | None:
    """The idle service's rule: the server's activity, else its start, else
    the user's activity. Aware UTC, or None when nothing is known."""
    for value in (orm_spawner.last_activity, orm_spawner.started, user.last_activity):
        if value is not None:
            if value.tzinfo is None:  # the hub stores naive UTC
                value = value.replace(tzinfo=timezone.utc)
            return value.astimezone(timezone.utc)
    return None


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


_NOT_IN_URLS = re.compile(r"[\s\"'<>`\\\x00-\x1f\x7f]")


def safe_href(url: str) -> str:
    """`url` if it may be a link target: http(s) only, so a launch cannot
    plant a `javascript:` link in the panel, and nothing a real repository
    URL never holds (quotes, angle brackets, spaces): such a URL is text."""
    if not isinstance(url, str) or not url or _NOT_IN_URLS.search(url.strip()):
        return ""
    try:
        parsed = urlparse(url.strip())
    except ValueError:
        return ""
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return url.strip()
    return ""


def resources_text(resources) -> str:
    """ "CPU 2 (limit 4), RAM 4–8 GB, 1 GPU" from a launch record's
    resources: the words of the launch page's resources line."""
    if not isinstance(resources, dict):
        return NO_VALUE
    try:
        values = {key: resources[key] for key in KEYS if key != "gpu"}
        return Resources(gpu=resources.get("gpu", 0), **values).summary()
    except (KeyError, TypeError, ValueError):
        return NO_VALUE


_PUBLIC_KEY = re.compile(
    r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+) [A-Za-z0-9+/=]+( .*)?$"
)


def public_key(user) -> str:
    """The user's SSH public key, from their most recent launch record.

    Only a value shaped like an OpenSSH public key line is returned, so a
    record that somehow held anything else is never shown.
    """
    candidates = []
    for name, orm_spawner in user.orm_spawners.items():
        record = launch_record(orm_spawner, dict.get(user.spawners, name))
        key = (record.get("ssh_public_key") or "").strip()
        if key and _PUBLIC_KEY.match(key) and "\n" not in key:
            started = orm_spawner.started or datetime.min
            candidates.append((started.replace(tzinfo=None), key))
    if not candidates:
        return ""
    return max(candidates)[1]


def panel_from_settings(settings: dict) -> ControlPanel:
    """The hub process's ControlPanel, built once from the hub's config."""
    panel = settings.get("hubext_control_panel")
    if panel is None:
        panel = ControlPanel(config=settings.get("config"))
        settings["hubext_control_panel"] = panel
    return panel


def panel_vars(user) -> Panel | None:
    """`c.JupyterHub.template_vars` callable: the panel of the page's user.

    JupyterHub calls it for every page it renders, with the logged-in user or
    None. A failure here must not break the hub's pages: it is logged and
    the templates fall back to JupyterHub's own home page.
    """
    if user is None or not hasattr(user, "orm_spawners"):
        return None
    try:
        settings = user.settings
        return panel_from_settings(settings).panel(
            user, quota.policy_from_settings(settings)
        )
    except Exception:
        log.exception("hubext control panel for %s failed", user.name)
        return None


def configure(c) -> None:
    """Install the control panel in a hub's config: `configure(c)`.

    Puts hubext's templates first in `c.JupyterHub.template_paths` and adds
    `hubext_panel` to `c.JupyterHub.template_vars`, keeping what is there.
    """
    paths = list(c.JupyterHub.get("template_paths", []))
    if TEMPLATES_DIR not in paths:
        paths.insert(0, TEMPLATES_DIR)
    c.JupyterHub.template_paths = paths
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars[TEMPLATE_VAR] = panel_vars
    c.JupyterHub.template_vars = template_vars
