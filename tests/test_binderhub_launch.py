"""Launches through the real BinderHub, as its launch page makes them.

BinderHub's web app is the hub's authenticated service (`binderhub`
fixture); each launch is the page's own request: signed in at the hub, OAuth
to BinderHub, the launch page for its build token, then the event stream
read until ``ready`` or ``failed``. The pods are read back from the API
server. What the page shows is recorded for the scenario table.
"""

import asyncio
import time

import pytest
from kubernetes_asyncio import client

from hubext.quota import quota_message
from hubext.resources import ResourceFileError, ResourcePolicy, parse_resources
from tests.fixtures.binderhub import launch, record, signed_in
from tests.fixtures.hubext_hub import POLICY
from tests.helpers.launch import wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.hub,
    pytest.mark.hub_version,
    pytest.mark.slow,
]

GiB = 1024**3


@pytest.fixture
def core(kube_api):
    return client.CoreV1Api(kube_api)


async def pod_of(core, namespace, user, server):
    pods = (await core.list_namespaced_pod(namespace)).items
    [pod] = [
        p
        for p in pods
        if p.metadata.annotations.get("hub.jupyter.org/username") == user
        and p.metadata.annotations.get("hub.jupyter.org/servername") == server
    ]
    return pod


def notebook(pod):
    return next(c for c in pod.spec.containers if c.name == "notebook")


async def test_resources_at_a_branch_head_and_a_sha(
    binderhub, git_server, core, k8s_namespace
):
    lab = git_server.add_commit(
        "lab", {".resources": b"# lab\ncpur=2\ncpul=4\nmemr=2\nmeml=4\n"}
    )
    binder = await binderhub()
    alice = await signed_in(binder, "alice")
    commits = git_server.commits
    head, launched, none = commits["head"], commits["launched"], commits["none"]
    cases = [
        # ref, the commit it resolves to, the requests of .resources there,
        # and the line the page shows about them
        (
            "lab",
            lab,
            {"cpu": "2", "memory": str(2 * GiB)},
            "branch",
            f"Resources from .resources at {lab[:7]}: "
            "CPU 2 (limit 4), RAM 2–4 GB, no GPU",
        ),
        (
            "HEAD",
            head,
            {"cpu": "1", "memory": str(8 * GiB)},
            "HEAD",
            f"Resources from .resources at {head[:7]}: "
            "CPU 1 (limit 8), RAM 8–16 GB, no GPU",
        ),
        (
            launched,
            launched,
            {"cpu": "1", "memory": str(4 * GiB)},
            "sha",
            f"Resources from .resources at {launched[:7]}: "
            "CPU 1 (limit 8), RAM 4–16 GB, no GPU",
        ),
        (
            "none",
            none,
            {"cpu": "1", "memory": str(1 * GiB)},
            "a commit without .resources",
            f"Resources: site defaults, no .resources in the repository at "
            f"{none[:7]}: CPU 1 (limit 8), RAM 1–16 GB, no GPU",
        ),
    ]
    # four tabs at once: each ref resolved by BinderHub, each pod on its own
    results = await asyncio.gather(
        *(launch(alice, binder.spec(ref)) for ref, *_ in cases)
    )
    # BinderHub's check before each build posted the launch to the hub,
    # which read .resources there; BinderHub read nothing itself
    prepared = binder.hub.log_text().count("200 POST /hub/api/hubext/prepare/alice")
    assert prepared >= len(cases), binder.hub.log_text()[-3000:]
    assert ".resources in" not in binder.log_text(), binder.log_text()[-3000:]
    for (ref, sha, requests, what, line), result in zip(cases, results, strict=True):
        record(f"launch at {what} ({ref[:12]})", result)
        # once, as the page shows it, before the server's own progress
        assert result.text.count(line + "\n") == 1, result.text
        assert result.ready, f"{result.text}\n{binder.hub.log_text()[-3000:]}"
        assert result.phases[:3] == ["waiting", "built", "launching"], result.phases
        assert result.final["url"].startswith(
            f"{binder.hub.url}/user/alice/project-"
        ), result.final
        assert result.final["binder_persistent_request"] == f"v2/{binder.spec(sha)}"
        pod = await pod_of(core, k8s_namespace, "alice", result.server_name)
        assert notebook(pod).resources.requests == requests, ref
        assert pod.metadata.labels["hubext/commit"] == sha
        assert notebook(pod).image.endswith(f":{sha}")


async def projects(hub, user):
    """The user's named servers, running and stopped."""
    code, model = await hub.api("GET", f"/users/{user}?include_stopped_servers=1")
    assert code == 200, model
    return {name: s for name, s in model["servers"].items() if name}


async def stop(hub, user, name):
    code, body = await hub.api("DELETE", f"/users/{user}/servers/{name}")
    assert code in (202, 204), body
    await wait_for(lambda: _stopped(hub, user, name), 60, f"{user}/{name} stopped")


async def _stopped(hub, user, name):
    server = (await projects(hub, user))[name]
    return not (server["ready"] or server["pending"])


WITHOUT_AHEAD = """
from hubext.ahead import PREPARE_PATH
c.JupyterHub.extra_handlers = [
    h for h in c.JupyterHub.extra_handlers if h[0] != PREPARE_PATH
]
"""


@pytest.mark.parametrize(
    "hub_config, who_reads",
    [("", "the hub"), (WITHOUT_AHEAD, "BinderHub")],
    ids=["asked of the hub", "hub without hubext.ahead"],
)
async def test_refused_resources_fail_before_the_build(
    binderhub, git_server, hub_config, who_reads
):
    git_server.add_commit("units", {".resources": b"cpur=1\nmemr=4G\n"})
    git_server.add_commit("greedy", {".resources": b"cpul=32\n"})
    binder = await binderhub(hub_config=hub_config)
    bob = await signed_in(binder, "bob")
    policy = ResourcePolicy.from_dict(POLICY)
    cases = [
        ("units", b"cpur=1\nmemr=4G\n", "bad .resources (memr=4G at line 2)"),
        ("greedy", b"cpul=32\n", "cpul=32 above the site maximum (16)"),
    ]
    for ref, content, scenario in cases:
        with pytest.raises(ResourceFileError) as parsed:
            parse_resources(content, policy)
        started = time.monotonic()
        result = await launch(bob, binder.spec(ref))
        seconds = time.monotonic() - started
        record(f"{scenario}, {seconds:.1f} s", result)
        assert result.failed, result.text
        # the hub's own message, once, from BinderHub's check before the
        # build: no image built, no launch, no retries, no server made
        assert result.final["message"] == parsed.value.message + "\n"
        assert result.text.count(parsed.value.reason) == 1, result.text
        assert "built" not in result.phases and "launching" not in result.phases
        assert seconds < 10, result.text
        assert await _no_projects(binder.hub, "bob")
    # where the file was read: by the hub when it has the endpoint, else by
    # BinderHub itself (a hub whose config lacks hubext.ahead)
    refused_by_hub = "refused ahead of the build" in binder.hub.log_text()
    assert refused_by_hub == (who_reads == "the hub"), binder.log_text()[-3000:]


async def test_a_refusal_from_the_hub_reaches_the_page(binderhub, git_server):
    # BinderHub configured without hubext's check before the build: the
    # hub's refusal at spawn is what the page shows, after BinderHub's retries
    git_server.add_commit("units", {".resources": b"cpur=1\nmemr=4G\n"})
    binder = await binderhub(
        binder_config="c.BinderHub.launch_quota_class = 'binderhub.quota.LaunchQuota'\n"
    )
    bob = await signed_in(binder, "bob")
    with pytest.raises(ResourceFileError) as parsed:
        parse_resources(b"cpur=1\nmemr=4G\n", ResourcePolicy.from_dict(POLICY))

    result = await launch(bob, binder.spec("units"))
    record("bad .resources, refused by the hub (no check before the build)", result)
    assert result.failed, result.text
    expected = f"Spawn failed: {parsed.value.message}"
    assert result.final["message"] == expected + "\n"
    # BinderHub retried (each attempt a new server) and said so on the page
    assert result.text.count("failed, retrying...") == 3, result.text
    # every refused attempt is gone again: nothing counts against the quota
    await wait_for(
        lambda: _no_projects(binder.hub, "bob"), 30, "refused servers removed"
    )


async def _no_projects(hub, user):
    return not await projects(hub, user)


async def test_quota_concurrent_launches_at_four_of_five_then_the_sixth(binderhub):
    binder = await binderhub(limit=5)
    hub = binder.hub
    dave = await signed_in(binder, "dave")
    held = await asyncio.gather(*(launch(dave, binder.spec("HEAD")) for _ in range(4)))
    assert all(r.ready for r in held), [r.text for r in held]
    message = quota_message(5, 5, f"{hub.url}/hub/home")

    # 4 of 5: six of dave's browsers launch at once, exactly one gets through
    tabs = [await signed_in(binder, "dave") for _ in range(6)]
    results = await asyncio.gather(*(launch(tab, binder.spec("HEAD")) for tab in tabs))
    ready = [r for r in results if r.ready]
    refused = [r for r in results if not r.ready]
    assert len(ready) == 1, [r.text for r in results]
    assert {r.final["message"] for r in refused} == {message + "\n"}, [
        r.text for r in refused
    ]
    record("6 concurrent launches at 4/5: the one that succeeded", ready[0])
    record("6 concurrent launches at 4/5: a refused one", refused[0])
    names = sorted(await projects(hub, "dave"))
    assert len(names) == 5

    # 5 of 5, two of them stopped (stopped projects count too): the 6th
    for name in names[:2]:
        await stop(hub, "dave", name)
    started = time.monotonic()
    sixth = await launch(dave, binder.spec("HEAD"))
    seconds = time.monotonic() - started
    record(f"6th project (5 held, 2 of them stopped), {seconds:.1f} s", sixth)
    assert sixth.failed, sixth.text
    assert sixth.final["message"] == message + "\n"
    # refused before the build, once: no launch attempt, no retries
    assert "launching" not in sixth.phases, sixth.text
    assert sixth.text.count(message) == 1, sixth.text
    assert seconds < 10, sixth.text
    assert sorted(await projects(hub, "dave")) == names


async def test_overlay_config_shows_hubext_message_over_binderhubs_own_limit(
    binderhub,
):
    # BinderHub configured as the chart overlay configures it (hubext's
    # values through hubext.z2jh.configure_binderhub), with an admin's own
    # namedServerLimitPerUser: 2 reaching BinderHub, whose check counts only
    # running servers and would answer first with its own message
    binder = await binderhub(
        limit=2, named_server_limit=2, settings={"quota": {"defaultLimit": 2}}
    )
    erin = await signed_in(binder, "erin")
    held = await asyncio.gather(*(launch(erin, binder.spec("HEAD")) for _ in range(2)))
    assert all(r.ready for r in held), [r.text for r in held]

    third = await launch(erin, binder.spec("HEAD"))
    record("3rd project at 2 of 2, BinderHub's own limit 2 (overlay config)", third)
    assert third.failed, third.text
    assert third.final["message"] == (
        quota_message(2, 2, f"{binder.hub.url}/hub/home") + "\n"
    )
    assert "named servers" not in third.text  # BinderHub's own message
    assert "launching" not in third.phases, third.text  # before the build
