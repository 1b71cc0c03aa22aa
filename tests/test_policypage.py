"""The hub's published resource policy (hubext.policypage): a real JupyterHub
serves it without login, and `hubext check --policy-url` checks a repository
against it, reading the file the hub reads."""

import json

import pytest
from tornado.httpclient import AsyncHTTPClient
from traitlets.config import Config

from hubext import policypage
from hubext.resources import ResourcePolicy
from hubext.spawner import HubextSpawner
from tests.test_repocheck import hubext, make_repo

POLICY = {
    "defaults": {"cpur": 0.5, "cpul": 4, "memr": 2, "meml": 8},
    "maxima": {"gpu": 1, "cpur": 16, "cpul": 16, "memr": 64, "meml": 128},
    "max_file_bytes": 2048,
}
HUB_CONFIG = f"""
from hubext import policypage
c.JupyterHub.spawner_class = "hubext"
c.HubextSpawner.resource_policy = {POLICY!r}
c.HubextSpawner.resources_file = ".binder/.resources"
policypage.configure(c)
policypage.configure(c)  # twice, as a config loaded again: one page
"""


@pytest.fixture
async def policy_hub(hub_factory):
    return await hub_factory(HUB_CONFIG)


@pytest.mark.hub
@pytest.mark.hub_version
async def test_the_hub_publishes_its_policy_without_login(policy_hub):
    url = policy_hub.url + "/hub/hubext/policy"
    response = await AsyncHTTPClient().fetch(url, follow_redirects=False)
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "max-age=300" in response.headers["Cache-Control"]
    document = json.loads(response.body)
    assert document == {
        **ResourcePolicy.from_dict(POLICY).as_dict(),
        "resources_file": ".binder/.resources",
    }
    assert document["maxima"]["cpul"] == 16 and document["defaults"]["gpu"] == 0


@pytest.mark.hub
@pytest.mark.hub_version
async def test_check_against_the_hubs_published_policy(policy_hub, tmp_path):
    url = policy_hub.url + "/hub/hubext/policy"
    too_big = make_repo(tmp_path / "big", {".binder/.resources": "cpul=20\n"})
    run = hubext("check", "--policy-url", url, cwd=too_big)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.startswith(
        ".binder/.resources:1: error: cpul=20: above this hub's maximum of 16 cores"
    ), run.stdout
    fits = make_repo(tmp_path / "fits", {".binder/.resources": "cpul=16\ngpu=1\n"})
    run = hubext("check", "--policy-url", url, cwd=fits)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        ".binder/.resources: info: valid: the server gets CPU 0.5 (limit 16),"
        " RAM 2–8 GB, 1 GPU" in run.stdout
    )
    # --resources-file still wins over the hub's file name
    root = make_repo(tmp_path / "root", {".resources": "cpul=20\n"})
    run = hubext(
        "check", "--policy-url", url, "--resources-file", ".resources", cwd=root
    )
    assert run.returncode == 1 and run.stdout.startswith(".resources:1: error: cpul=20")


def test_the_most_specific_class_config_wins():
    class SiteSpawner(HubextSpawner):
        pass

    config = Config()
    config.HubextSpawner.resource_policy = {"maxima": {"gpu": 1}}
    config.HubextSpawner.resources_file = "a/.resources"
    config.SiteSpawner.resource_policy = {"maxima": {"gpu": 4}}
    document = policypage.published_policy(config, SiteSpawner)
    assert document["maxima"]["gpu"] == 4
    assert document["resources_file"] == "a/.resources"
    # nothing configured: the spawner's defaults
    plain = policypage.published_policy(Config(), HubextSpawner)
    assert plain == {**ResourcePolicy().as_dict(), "resources_file": ".resources"}


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "", 7, "a/../../b"], ids=repr
)
def test_a_policy_cannot_point_the_check_outside_the_repository(tmp_path, name):
    repo = make_repo(tmp_path, {".resources": "cpul=2\n"})
    (repo / "site.json").write_text(json.dumps({"resources_file": name}))
    run = hubext("check", "--policy", "site.json", cwd=repo)
    assert run.returncode == 2
    assert "resources_file must be a file name inside the repository" in run.stderr
