"""The control panel's data and template, without a running hub.

Data comes from JupyterHub's own `User` over a real (in-memory sqlite) hub
database, as on `/hub/home`. The template is rendered by a Jinja environment
set up the way JupyterHub sets up its own, over the installed hub templates.
"""

import logging
import os
from datetime import datetime, timedelta

import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub import orm
from jupyterhub._data import DATA_FILES_PATH
from jupyterhub.user import User
from traitlets.config import Config

from hubext import controlpanel
from hubext.controlpanel import (
    ControlPanel,
    Panel,
    configure,
    panel_vars,
    resources_text,
    safe_href,
    timeout_from_services,
)
from hubext.quota import QuotaPolicy

NOW = datetime(2025, 3, 1, 12, 0)  # the hub stores naive UTC
SHA = "0123456789abcdef0123456789abcdef01234567"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEexampleEXAMPLE hubext:alice"
RESOURCES = {"gpu": 1, "cpur": 2.0, "cpul": 4.0, "memr": 4.0, "meml": 8.0}
DAY = 86400


def record(repo="https://github.com/physics/wave-lab", sha=SHA, key=KEY, **extra):
    return {
        "repo_url": repo,
        "commit": sha,
        "ref_url": f"{repo}/tree/{sha}",
        "resources": RESOURCES,
        "ssh_public_key": key,
        **extra,
    }


@pytest.fixture
def hub_db():
    db = orm.new_session_factory("sqlite:///:memory:")()
    yield db
    db.close()


def hub_user(db, servers, name="alice", groups=(), config=None, last_activity=None):
    """A JupyterHub `User` whose servers are rows of the hub database.

    `servers` maps a server name to the orm.Spawner columns to set; a
    `running` key gives the server a hub Server row, as a running one has.
    """
    orm_user = orm.User(name=name, last_activity=last_activity)
    db.add(orm_user)
    for group_name in groups:
        group = orm.Group.find(db, group_name) or orm.Group(name=group_name)
        orm_user.groups.append(group)
    for server, columns in servers.items():
        columns = dict(columns)
        running = columns.pop("running", False)
        orm_spawner = orm.Spawner(name=server, user=orm_user, **columns)
        if running:
            orm_spawner.server = orm.Server()
        db.add(orm_spawner)
    db.commit()
    settings = {"base_url": "/", "config": config or Config()}
    return User(orm_user, settings=settings, db=db)


def panel_of(user, timeout=7 * DAY, **policy):
    return ControlPanel(idle_timeout=timeout).panel(user, QuotaPolicy(**policy))


def test_servers_become_rows(hub_db):
    user = hub_user(
        hub_db,
        {
            "": {"last_activity": NOW},  # the default server is no project
            "wave-lab-1a2b3c4d": {
                "state": {"hubext": record()},
                "last_activity": NOW,
            },
            "old-9f8e7d6c": {  # launched before hubext: only BinderHub's options
                "user_options": {"repo_url": "https://gitlab.example.org/g/p"},
                "started": NOW - timedelta(days=2),
            },
            "blank": {},  # made with "Add New Server": nothing known
        },
        last_activity=NOW - timedelta(days=3),
    )
    rows = {p.name: p for p in panel_of(user).projects}
    assert sorted(rows) == ["blank", "old-9f8e7d6c", "wave-lab-1a2b3c4d"]

    wave = rows["wave-lab-1a2b3c4d"]
    assert (wave.repo_url, wave.repo_href) == (
        "https://github.com/physics/wave-lab",
        "https://github.com/physics/wave-lab",
    )
    assert (wave.commit, wave.short_commit) == (SHA, "0123456")
    assert wave.ref_href == f"https://github.com/physics/wave-lab/tree/{SHA}"
    assert wave.resources == "CPU 2 (limit 4), RAM 4–8 GB, 1 GPU"
    assert wave.last_activity == "2025-03-01T12:00:00Z"
    assert wave.remove_at == "2025-03-08T12:00:00Z"
    assert wave.remove_at_text == "2025-03-08 12:00 UTC"
    assert wave.url == "/user/alice/wave-lab-1a2b3c4d/"
    assert wave.status == "stopped" and not wave.active

    old = rows["old-9f8e7d6c"]
    assert (old.repo_url, old.commit, old.resources) == (
        "https://gitlab.example.org/g/p",
        "",
        "—",
    )
    # no activity of its own: its start counts, as for the idle service
    assert old.remove_at == "2025-03-06T12:00:00Z"

    blank = rows["blank"]
    assert (blank.repo_url, blank.repo_href) == ("—", "")
    # nothing on the server: the user's own activity counts
    assert blank.last_activity == "2025-02-26T12:00:00Z"


def test_running_server_status(hub_db):
    user = hub_user(hub_db, {"p": {"running": True, "state": {"hubext": record()}}})
    spawner = user.spawners["p"]  # what the hub holds for a server it runs
    assert spawner.ready
    [row] = panel_of(user).projects
    assert (row.status, row.active, row.ready) == ("running", True, True)


def test_a_record_in_memory_wins_over_the_saved_state(hub_db):
    """A launch in progress has its record on the spawner before the state."""
    user = hub_user(hub_db, {"p": {"state": {"hubext": record()}}})
    user.spawners["p"].launch_record = record(repo="https://github.com/new/one")
    [row] = panel_of(user).projects
    assert row.repo_url == "https://github.com/new/one"


@pytest.mark.parametrize(
    "used, groups, policy, text, at_limit",
    [
        (3, (), {}, "3 of 5 projects", False),
        (5, (), {}, "5 of 5 projects", True),
        (0, (), {}, "0 of 5 projects", False),
        (5, ("staff",), {"group_limits": {"staff": 10}}, "5 of 10 projects", False),
        (1, (), {"user_limits": {"alice": 1}}, "1 of 1 project", True),
        (2, (), {"default_limit": 0}, "2 projects (no limit)", False),
        (1, (), {"default_limit": 0}, "1 project (no limit)", False),
    ],
)
def test_quota_line(hub_db, used, groups, policy, text, at_limit):
    servers = {"": {}} | {f"p{i}": {} for i in range(used)}
    user = hub_user(hub_db, servers, groups=groups)
    panel = panel_of(user, **policy)
    assert (panel.used, panel.quota_text, panel.at_limit) == (used, text, at_limit)


@pytest.mark.parametrize(
    "columns, timeout, remove_at",
    [
        ({"last_activity": NOW}, 7 * DAY, "2025-03-08T12:00:00Z"),
        ({"last_activity": NOW}, 3600, "2025-03-01T13:00:00Z"),
        (
            {"last_activity": NOW, "started": NOW - timedelta(days=9)},
            DAY,
            "2025-03-02T12:00:00Z",
        ),
        ({"started": NOW}, DAY, "2025-03-02T12:00:00Z"),
        ({}, DAY, ""),  # nothing known: the idle service keeps it, no date
        ({"last_activity": NOW}, 0, ""),  # no idle service
    ],
)
def test_removal_date(hub_db, columns, timeout, remove_at):
    user = hub_user(hub_db, {"p": columns})
    [row] = panel_of(user, timeout=timeout).projects
    assert row.remove_at == remove_at


def test_removal_date_agrees_with_the_idle_service(hub_db):
    """The date shown is the one the idle service's own rule computes."""
    from hubext.idle.policy import Action, decide

    user = hub_user(hub_db, {"p": {"last_activity": NOW}})
    [row] = panel_of(user, timeout=2 * DAY).projects
    model = {"name": "p", "ready": False, "last_activity": row.last_activity}
    due = datetime.fromisoformat(row.remove_at.replace("Z", "+00:00"))
    timeout = timedelta(days=2)
    before = decide({}, model, due - timedelta(seconds=1), timeout=timeout)
    at = decide({}, model, due, timeout=timeout)
    assert (before.action, at.action) == (Action.KEEP, Action.REMOVE)


def service(*args):
    return [{"name": "hubext-idle", "command": ["/usr/bin/python3", *args]}]


@pytest.mark.parametrize(
    "setup, expected",
    [
        ({}, 7 * DAY),  # hubext-idle's default
        ({"IdleService": {"timeout": 3600}}, 3600),
        ({"services": service("-m", "hubext.idle", "--timeout=7200")}, 7200),
        ({"services": service("-m", "hubext.idle", "--timeout", "60")}, 60),
        ({"services": [{"name": "x", "command": "hubext-idle --timeout=90"}]}, 90),
        ({"services": service("-m", "other", "--timeout=5")}, 7 * DAY),
        ({"ControlPanel": {"idle_timeout": 10}, "IdleService": {"timeout": 20}}, 10),
    ],
)
def test_idle_timeout_has_one_source(setup, expected):
    c = Config()
    if "services" in setup:
        c.JupyterHub.services = setup["services"]
    for section in ("IdleService", "ControlPanel"):
        for key, value in setup.get(section, {}).items():
            c[section][key] = value
    assert ControlPanel(config=c).idle_timeout == expected


def test_idle_default_is_the_services_default():
    from hubext.idle.app import IdleService

    assert ControlPanel().idle_timeout == IdleService().timeout


def test_timeout_from_services_ignores_non_hubext():
    assert timeout_from_services([{"name": "culler", "url": "http://x"}]) is None
    assert timeout_from_services(None) is None


def test_public_key_from_the_newest_launch(hub_db):
    other = KEY.replace("EXAMPLE hubext", "NEWER hubext")
    user = hub_user(
        hub_db,
        {
            "a": {"state": {"hubext": record()}, "started": NOW - timedelta(days=1)},
            "b": {"state": {"hubext": record(key=other)}, "started": NOW},
            "c": {},
        },
    )
    assert panel_of(user).ssh_public_key == other


@pytest.mark.parametrize(
    "key",
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n",
        "<script>alert(1)</script>",
        KEY + "\nssh-rsa AAAA second",
        "",
        None,
    ],
)
def test_only_a_public_key_line_is_shown(hub_db, key):
    user = hub_user(hub_db, {"a": {"state": {"hubext": record(key=key)}}})
    assert panel_of(user).ssh_public_key == ""


def test_key_hidden_when_turned_off(hub_db):
    user = hub_user(hub_db, {"a": {"state": {"hubext": record()}}})
    panel = ControlPanel(show_ssh_key=False).panel(user, QuotaPolicy())
    assert panel.ssh_public_key == ""


@pytest.mark.parametrize(
    "url, href",
    [
        ("https://github.com/a/b", "https://github.com/a/b"),
        ("http://git.example.org/a.git", "http://git.example.org/a.git"),
        ("javascript:alert(1)", ""),
        ("JavaScript:alert(1)//https://x", ""),
        ("data:text/html,<script>alert(1)</script>", ""),
        ("git@github.com:a/b.git", ""),
        ("https://", ""),
        ('https://github.com/a/b"><script>x</script>', ""),
        ("https://github.com/a/b c", ""),
        ("https://github.com/a/b\n", "https://github.com/a/b"),
        ("", ""),
        (None, ""),
    ],
)
def test_safe_href(url, href):
    assert safe_href(url) == href


@pytest.mark.parametrize(
    "resources, text",
    [
        (RESOURCES, "CPU 2 (limit 4), RAM 4–8 GB, 1 GPU"),
        (
            {"gpu": 0, "cpur": 1.0, "cpul": 8.0, "memr": 1.0, "meml": 16.0},
            "CPU 1 (limit 8), RAM 1–16 GB, no GPU",
        ),
        (
            {"gpu": 2, "cpur": 0.5, "cpul": 1, "memr": 0.5, "meml": 2},
            "CPU 0.5 (limit 1), RAM 0.5–2 GB, 2 GPUs",
        ),
        ({"cpur": 1}, "—"),
        (None, "—"),
        ("cpur=2", "—"),
    ],
)
def test_resources_text(resources, text):
    assert resources_text(resources) == text


@pytest.mark.parametrize(
    "days, text",
    [(7, "7 days"), (1, "1 day"), (0.5, "12 hours"), (0, "")],
)
def test_idle_timeout_text(days, text):
    assert Panel(idle_timeout_days=days).idle_timeout_text == text


def test_configure_keeps_what_is_there():
    def motd(user):
        return "hello"

    c = Config()
    c.JupyterHub.template_paths = ["/srv/templates"]
    c.JupyterHub.template_vars = {"motd": motd}
    configure(c)
    configure(c)  # twice changes nothing
    assert c.JupyterHub.template_paths == [controlpanel.TEMPLATES_DIR, "/srv/templates"]
    assert c.JupyterHub.template_vars == {"motd": motd, "hubext_panel": panel_vars}
    assert os.path.isfile(os.path.join(controlpanel.TEMPLATES_DIR, "home.html"))


def test_panel_vars_uses_the_hubs_config(hub_db):
    c = Config()
    c.QuotaPolicy.default_limit = 3
    c.IdleService.timeout = 3600
    user = hub_user(hub_db, {"p": {"last_activity": NOW}}, config=c)
    panel = panel_vars(user)
    assert panel.quota_text == "1 of 3 projects"
    assert panel.projects[0].remove_at == "2025-03-01T13:00:00Z"
    assert panel_vars(None) is None


def test_panel_vars_never_breaks_a_page(hub_db, caplog):
    user = hub_user(hub_db, {"p": {}})
    user.orm_spawners["p"].last_activity = "not a date"  # a broken row
    with caplog.at_level(logging.ERROR, logger="hubext.controlpanel"):
        assert panel_vars(user) is None
    assert "control panel for alice failed" in caplog.text


# --- the template, rendered as JupyterHub renders it ---------------------------


def hub_env() -> Environment:
    """Jinja set up like the hub's: autoescape, `templates/` prefix for its own."""
    base = os.path.join(DATA_FILES_PATH, "templates")
    loader = ChoiceLoader(
        [
            PrefixLoader({"templates": FileSystemLoader([base])}, "/"),
            FileSystemLoader([controlpanel.TEMPLATES_DIR, base]),
        ]
    )
    return Environment(loader=loader, autoescape=True)


def render_home(user, panel) -> str:
    return (
        hub_env()
        .get_template("home.html")
        .render(
            user=user,
            hubext_panel=panel,
            allow_named_servers=True,
            named_server_limit_per_user=5,
            default_server=user.spawner,
            url="/hub/spawn/alice",
            base_url="/hub/",
            prefix="/",
            static_url=lambda path, **kw: "/hub/static/" + path,
            parsed_scopes={},
            expanded_scopes=set(),
            services=[],
            xsrf="x",
        )
    )


def test_template_shows_the_panel(hub_db):
    user = hub_user(
        hub_db,
        {"wave-lab-1a2b3c4d": {"state": {"hubext": record()}, "last_activity": NOW}}
        | {f"p{i}": {} for i in range(4)},
    )
    html = render_home(user, panel_of(user))
    assert "5 of 5 projects" in html
    assert 'id="hubext-limit-hint"\n           class="alert alert-warning"' in html
    assert f'href="https://github.com/physics/wave-lab/tree/{SHA}"' in html
    assert "CPU 2 (limit 4), RAM 4–8 GB, 1 GPU" in html
    assert "removed after" in html and "2025-03-08 12:00 UTC" in html
    assert KEY in html
    # the classes JupyterHub's home.js drives, on every project row
    for cls in ("home-server-row", "stop-server", "start-server", "delete-server"):
        assert html.count(cls) >= 5, cls
    assert 'data-server-name="wave-lab-1a2b3c4d"' in html


def test_template_escapes_what_users_send(hub_db):
    evil = "https://github.com/a/b\"><script>alert('x')</script>"
    user = hub_user(
        hub_db,
        {
            "p": {"user_options": {"repo_url": evil}},
            "q": {"user_options": {"repo_url": "javascript:alert(1)"}},
            # stored by a hub from before launch options were checked
            "r": {"user_options": {"repo_url": {"valueFrom": {"secretKeyRef": {}}}}},
        },
    )
    panel = panel_of(user)
    assert [p.repo_url for p in panel.projects][2] == "—"
    html = render_home(user, panel)
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html
    assert 'href="javascript:' not in html
    assert "javascript:alert(1)" in html  # shown as text only


def test_template_without_the_panel_is_jupyterhubs(hub_db):
    user = hub_user(hub_db, {"p": {}})
    html = render_home(user, None)
    assert "hubext-quota" not in html
    assert "Named Servers" in html  # JupyterHub's own page


def test_template_keep_start_and_launch(hub_db):
    user = hub_user(hub_db, {"thesis": {"last_activity": NOW}})
    panel = ControlPanel(
        idle_timeout=7 * DAY, binderhub_url="https://binder.example.edu/"
    ).panel(user, QuotaPolicy())
    html = render_home(user, panel)
    assert 'id="project-thesis"' in html  # the email's link lands here
    assert 'id="keep-thesis"' in html and 'id="start-thesis"' in html
    assert 'id="hubext-launch"' in html
    assert 'href="https://binder.example.edu/"' in html
    assert 'data-now="' + panel.now + '"' in html and panel.now.endswith("Z")
    # without an idle service there is nothing to keep, and no link without a URL
    html = render_home(user, panel_of(user, timeout=0))
    assert 'id="keep-thesis"' not in html and 'id="hubext-launch"' not in html


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "binder.example.edu", 'https://x/"><b>']
)
def test_binderhub_url_must_be_http(url):
    with pytest.raises(Exception, match="binderhub_url must be an http"):
        ControlPanel(binderhub_url=url)
