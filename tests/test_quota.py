"""The project quota policy, its message and the spawner guard, without a hub.

The guard is checked on JupyterHub's own `User` over a real (in-memory
sqlite) hub database, so it sees servers the way the spawner does.
"""

from urllib.parse import urlparse

import pytest
from jupyterhub import orm
from jupyterhub.user import User
from traitlets import TraitError
from traitlets.config import Config

from hubext.errors import UserFacingError
from hubext.quota import (
    QuotaExceeded,
    QuotaPolicy,
    check_spawn,
    control_panel_url_from_hub_url,
    control_panel_url_from_settings,
    count_projects,
    quota_message,
)

POLICY = dict(
    default_limit=5,
    user_limits={"alice": 10, "mallory": 2, "root": 0},
    group_limits={"teaching-staff": 10, "research": 20, "gpu-lab": 0, "tiny": 1},
)


@pytest.mark.parametrize(
    "username, groups, expected",
    [
        ("bob", [], 5),  # default
        ("bob", ["students"], 5),  # unlisted group: default
        ("alice", [], 10),  # per-user
        ("carol", ["teaching-staff"], 10),  # per-group
        ("carol", ["teaching-staff", "research"], 20),  # highest group
        ("carol", ["research", "teaching-staff"], 20),  # order does not matter
        ("carol", ["tiny"], 1),  # a group may also be stricter than default
        ("carol", ["teaching-staff", "gpu-lab"], 0),  # 0 = unlimited is highest
        ("mallory", ["research"], 2),  # per-user wins over groups, even lower
        ("root", ["tiny"], 0),  # per-user unlimited
    ],
)
def test_limit_for(username, groups, expected):
    assert QuotaPolicy(**POLICY).limit_for(username, groups) == expected


def test_default_zero_means_unlimited_and_config_is_read():
    c = Config()
    c.QuotaPolicy.default_limit = 0
    c.QuotaPolicy.group_limits = {"staff": 3}
    policy = QuotaPolicy(config=c)
    assert policy.limit_for("anyone", []) == 0
    assert policy.limit_for("anyone", ["staff"]) == 3


def test_default_limit_is_five():
    assert QuotaPolicy().limit_for("bob", []) == 5


@pytest.mark.parametrize("trait", ["user_limits", "group_limits"])
def test_negative_override_names_the_setting(trait):
    with pytest.raises(ValueError, match=rf"c\.QuotaPolicy\.{trait}\['x'\] = -1"):
        QuotaPolicy(**{trait: {"x": -1}})


def test_negative_default_refused():
    with pytest.raises(TraitError):
        QuotaPolicy(default_limit=-1)


@pytest.mark.parametrize(
    "names, expected",
    [
        ([], 0),
        ([""], 0),  # the default server is not a project
        (["", "a", "b"], 2),
        (["a", "a", "b"], 2),
        ({"p1": {}, "p2": {}, "": {}}, 2),  # a REST `servers` model
    ],
)
def test_count_projects(names, expected):
    assert count_projects(names) == expected


def test_message_and_fields():
    url = "https://hub.example.org/hub/home"
    err = QuotaExceeded(quota=5, used=5, control_panel_url=url)
    assert isinstance(err, UserFacingError)
    assert str(err) == (
        "You have 5 of 5 projects. To launch another, open the control panel "
        "(https://hub.example.org/hub/home), stop a project you no longer need, "
        "then delete it."
    )
    assert (err.quota, err.used) == (5, 5)
    assert err.fields == {"quota": 5, "used": 5, "control_panel_url": url}
    assert quota_message(1, 1, "/hub/home").startswith("You have 1 of 1 project.")


def test_configured_url_wins_over_derived():
    policy = QuotaPolicy(control_panel_url="https://panel.example.org/")
    assert "(https://panel.example.org/)" in policy.exceeded(5, 5, "/hub/home").message
    assert "(/hub/home)" in QuotaPolicy().exceeded(5, 5, "/hub/home").message


class _Hub:
    base_url = "/jh/hub/"


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({}, "/hub/home"),
        ({"base_url": "/jh/"}, "/jh/hub/home"),
        ({"hub": _Hub(), "public_url": ""}, "/jh/hub/home"),
        (
            {"hub": _Hub(), "public_url": urlparse("https://hub.example.org/jh/")},
            "https://hub.example.org/jh/hub/home",
        ),
    ],
)
def test_control_panel_url_from_settings(settings, expected):
    assert control_panel_url_from_settings(settings) == expected


@pytest.mark.parametrize(
    "hub_url, expected",
    [
        ("https://hub.example.org/", "https://hub.example.org/hub/home"),
        ("https://example.org/jh", "https://example.org/jh/hub/home"),
        ("", "/hub/home"),
    ],
)
def test_control_panel_url_from_hub_url(hub_url, expected):
    assert control_panel_url_from_hub_url(hub_url) == expected


@pytest.fixture
def hub_db():
    db = orm.new_session_factory("sqlite:///:memory:")()
    yield db
    db.close()


def _hub_user(db, name, servers, groups=()):
    """A JupyterHub `User` with named servers recorded in the hub database."""
    orm_user = orm.User(name=name)
    db.add(orm_user)
    for group_name in groups:
        group = orm.Group.find(db, group_name) or orm.Group(name=group_name)
        orm_user.groups.append(group)
    for server in servers:
        db.add(orm.Spawner(name=server, user=orm_user))
    db.commit()
    return User(orm_user, settings={"base_url": "/"}, db=db)


@pytest.mark.parametrize(
    "held, starting, groups, refused",
    [
        (["a", "b", "c", "d"], "e", (), False),  # the 5th, being created
        (["a", "b", "c", "d", "e"], "e", (), False),  # restart one of five
        (["a", "b", "c", "d", "e"], "f", (), True),  # a 6th got past creation
        (["a", "b", "c", "d", "e", "f"], "a", (), True),  # limit lowered
        (["a", "b", "c", "d", "e"], "f", ("staff",), False),  # group override
        (["a", "b", "c", "d", "e"], "", (), False),  # default server
    ],
)
def test_check_spawn(hub_db, held, starting, groups, refused):
    user = _hub_user(hub_db, "bob", ["", *held], groups)
    policy = QuotaPolicy(group_limits={"staff": 10})
    if not refused:
        check_spawn(user, starting, policy)
        return
    with pytest.raises(QuotaExceeded) as info:
        check_spawn(user, starting, policy)
    # the message counts the projects held besides the one being started
    used = count_projects(name for name in held if name != starting)
    assert (info.value.quota, info.value.used) == (5, used)
    assert info.value.message == quota_message(used, 5, "/hub/home")
