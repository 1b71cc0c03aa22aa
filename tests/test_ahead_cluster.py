"""A launch made ready ahead, as BinderHub's check before its build asks
(`hubext.ahead`), against the real hub, KubeSpawner and API server: the
launch after it reads nothing and makes nothing before its pod."""

import asyncio

import pytest
from kubernetes_asyncio import client

from hubext import names
from tests.fixtures.hubext_hub import REPO, SHA
from tests.helpers.launch import (
    api_requests,
    binder_user_options,
    launch,
    requests_between,
    server_name,
)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.hub,
    pytest.mark.hub_version,
    pytest.mark.slow,
]

AHEAD = "from hubext import ahead\nahead.configure(c)\n"


def _resources_reads(forge, sha: str) -> int:
    return sum(
        1 for _, uri, _ in forge.requests if uri.endswith(f".resources?ref={sha}")
    )


async def test_a_launch_made_ready_ahead_asks_nothing_before_its_pod(
    hubext_hub, forge, kube_api, k8s_namespace
):
    hub = await hubext_hub(hub_config=AHEAD)
    for user in ("bob", "alice"):
        await hub.api("POST", f"/users/{user}")
    event = await launch(hub, "bob", server_name(REPO), binder_user_options(REPO, SHA))
    assert event.get("ready"), event  # the hub's watches run from here on
    commit = f"{7:040x}"
    forge.add(REPO, commit, ".resources", b"cpul=3\nmeml=6\n")
    options = binder_user_options(REPO, commit)

    code, body = await hub.api("POST", "/hubext/prepare/alice", body=options)
    assert code == 200 and body["prepared"] is True, body
    assert body["granted"].startswith(f"Resources from .resources at {commit[:7]}: "), (
        body
    )
    assert "(limit 3)" in body["granted"], body
    core = client.CoreV1Api(kube_api)
    claim = await core.read_namespaced_persistent_volume_claim(
        "alice-nfs-pvc", k8s_namespace
    )
    secret = await core.read_namespaced_secret("alice-ssh-key", k8s_namespace)
    for made in (claim, secret):
        assert made.metadata.annotations[names.OWNER_ANNOTATION] == "alice"
    assert _resources_reads(forge, commit) == 1

    await asyncio.sleep(1)  # for the hub's watch to see the new objects
    before = await api_requests(kube_api)
    event = await launch(hub, "alice", server_name(REPO), options)
    assert event.get("ready"), event
    after = await api_requests(kube_api)

    delta = requests_between(before, after)

    # nothing made: the only reads are the test kubelet's, to mount them
    assert delta("POST", "persistentvolumeclaims") == 0
    assert delta("POST", "secrets") == 0
    assert delta("GET", "persistentvolumeclaims") == 1
    assert delta("GET", "secrets") == 1
    assert _resources_reads(forge, commit) == 1  # one read for both
    pods = await core.list_namespaced_pod(
        k8s_namespace, label_selector="hub.jupyter.org/username=alice"
    )
    (pod,) = pods.items
    limits = next(c for c in pod.spec.containers if c.name == "notebook")
    assert limits.resources.limits["cpu"] == "3"


async def test_a_refusal_ahead_is_the_launchs_own(hubext_hub, forge, kube_api):
    hub = await hubext_hub(hub_config=AHEAD)
    await hub.api("POST", "/users/alice")
    bad = f"{8:040x}"
    forge.add(REPO, bad, ".resources", b"cpul=64\n")
    code, body = await hub.api(
        "POST", "/hubext/prepare/alice", body=binder_user_options(REPO, bad)
    )
    assert code == 409, body
    assert body["permanent"] is True
    ahead_message = body["message"]
    assert "cpul=64" in ahead_message and "16" in ahead_message, ahead_message
    event = await launch(
        hub, "alice", server_name(REPO), binder_user_options(REPO, bad)
    )
    assert event["message"] == f"Spawn failed: {ahead_message}"

    # a host that does not answer may pass: not permanent
    forge.status = 503
    code, body = await hub.api(
        "POST", "/hubext/prepare/alice", body=binder_user_options(REPO, f"{9:040x}")
    )
    assert code == 409 and body["permanent"] is False, body
    forge.status = None

    # hostile options meet the launch's own check
    code, body = await hub.api(
        "POST",
        "/hubext/prepare/alice",
        body={**binder_user_options(REPO, SHA), "image": "quay.io/evil/x"},
    )
    assert code == 409 and "is not one this hub launches" in body["message"], body


async def test_only_a_hub_service_may_prepare(hubext_hub, k8s_namespace, kube_api):
    """BinderHub's service token prepares; a user's token does not, not
    even for themselves: what a launch reads and makes stays behind the
    hub's limits on launches."""
    hub = await hubext_hub(hub_config=AHEAD)
    for user in ("bob", "mallory"):
        await hub.api("POST", f"/users/{user}")
    code, body = await hub.api("POST", "/users/mallory/tokens", body={})
    mallory = body["token"]
    options = binder_user_options(REPO, SHA)
    for target in ("bob", "mallory"):
        code, _ = await hub.api(
            "POST", f"/hubext/prepare/{target}", body=options, token=mallory
        )
        assert code in (403, 404), target
    code, _ = await hub.api("POST", "/hubext/prepare/bob", body=options, token="x" * 32)
    assert code == 403
    core = client.CoreV1Api(kube_api)
    claims = await core.list_namespaced_persistent_volume_claim(k8s_namespace)
    assert [c.metadata.name for c in claims.items] == []  # nothing made
    code, body = await hub.api("POST", "/hubext/prepare/nobody", body=options)
    assert code == 200 and body == {"prepared": False, "reason": "no such user"}
    code, body = await hub.api(
        "POST", "/hubext/prepare/bob", body={**options, "pad": "x" * 70_000}
    )
    assert code == 413, body
    code, body = await hub.api("POST", "/hubext/prepare/bob", body=["not", "a", "dict"])
    assert code == 400, body
