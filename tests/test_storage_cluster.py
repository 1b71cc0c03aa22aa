"""ensure_pvc against a real API server: create once, reuse, never change."""

import logging

import pytest
from kubernetes_asyncio import client

from hubext import names, storage
from hubext.errors import UserFacingError

pytestmark = pytest.mark.cluster


def claim(username, size="1Gi", storage_class="nfs"):
    return storage.make_user_pvc(
        names.pvc_name(username), username, storage_class, size
    )


def unchanged(before, after):
    """Same object, same spec and metadata. (Not resourceVersion, nor the
    volume name: binding, by the test kubelet or a real provisioner, sets
    those.)"""

    def spec(pvc):
        return {k: v for k, v in pvc.spec.to_dict().items() if k != "volume_name"}

    return (
        before.metadata.uid == after.metadata.uid
        and spec(before) == spec(after)
        and before.metadata.labels == after.metadata.labels
        and before.metadata.annotations == after.metadata.annotations
    )


async def test_ensure_twice_gives_the_same_claim(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    manifest = claim("Alice")
    assert await storage.ensure_pvc(core, k8s_namespace, manifest) == "created"
    first = await core.read_namespaced_persistent_volume_claim(
        "alice---3bc51062-nfs-pvc", k8s_namespace
    )
    assert await storage.ensure_pvc(core, k8s_namespace, manifest) == "exists"
    again = await core.read_namespaced_persistent_volume_claim(
        first.metadata.name, k8s_namespace
    )
    assert unchanged(first, again)
    assert again.metadata.annotations["hubext/username"] == "Alice"
    assert again.spec.access_modes == ["ReadWriteMany"]
    assert again.spec.storage_class_name == "nfs"


async def test_existing_claim_with_other_spec_is_left_alone(
    kube_api, k8s_namespace, caplog
):
    core = client.CoreV1Api(kube_api)
    assert await storage.ensure_pvc(core, k8s_namespace, claim("bob")) == "created"
    before = await core.read_namespaced_persistent_volume_claim(
        "bob-nfs-pvc", k8s_namespace
    )
    bigger = claim("bob", size="50Gi")
    with caplog.at_level(logging.WARNING, logger="hubext.storage"):
        assert await storage.ensure_pvc(core, k8s_namespace, bigger) == "exists"
    after = await core.read_namespaced_persistent_volume_claim(
        "bob-nfs-pvc", k8s_namespace
    )
    assert after.spec.resources.requests["storage"] == "1Gi"
    assert unchanged(before, after)
    assert "storage: wanted '50Gi', has '1Gi'" in caplog.text


async def test_two_users_get_two_claims(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    for username in ("a.b", "a-b", "A-B"):
        assert await storage.ensure_pvc(core, k8s_namespace, claim(username)) == (
            "created"
        )
    listed = await core.list_namespaced_persistent_volume_claim(
        k8s_namespace, label_selector="app.kubernetes.io/managed-by=hubext"
    )
    owners = {p.metadata.annotations["hubext/username"] for p in listed.items}
    assert owners == {"a.b", "a-b", "A-B"}
    assert len({p.metadata.name for p in listed.items}) == 3


async def test_claim_of_another_user_is_refused(kube_api, k8s_namespace):
    """Simulates a slug collision by planting another owner on the name."""
    core = client.CoreV1Api(kube_api)
    planted = claim("carol")
    planted["metadata"]["annotations"]["hubext/username"] = "mallory"
    await core.create_namespaced_persistent_volume_claim(k8s_namespace, planted)
    with pytest.raises(UserFacingError) as info:
        await storage.ensure_pvc(core, k8s_namespace, claim("carol"))
    assert "carol-nfs-pvc" in info.value.message
    assert "mallory" not in info.value.message


async def test_claim_without_an_owner_waits_for_an_admin(kube_api, k8s_namespace):
    """A claim made before hubext (no owner annotation) is nobody's to take
    until an admin records its owner, as the log says how."""
    core = client.CoreV1Api(kube_api)
    old = claim("greg")
    del old["metadata"]["annotations"]
    await core.create_namespaced_persistent_volume_claim(k8s_namespace, old)
    with pytest.raises(UserFacingError) as info:
        await storage.ensure_pvc(core, k8s_namespace, claim("greg"))
    assert "greg-nfs-pvc' exists but is not recorded" in info.value.message
    # the admin's `kubectl annotate pvc greg-nfs-pvc hubext/username=greg`
    await core.patch_namespaced_persistent_volume_claim(
        "greg-nfs-pvc",
        k8s_namespace,
        {"metadata": {"annotations": {"hubext/username": "greg"}}},
    )
    assert await storage.ensure_pvc(core, k8s_namespace, claim("greg")) == "exists"


async def test_api_errors_other_than_conflict_are_raised(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    with pytest.raises(client.exceptions.ApiException) as info:
        await storage.ensure_pvc(core, "no-such-namespace-hubext", claim("dave"))
    assert info.value.status == 404


async def test_claim_being_deleted_is_not_mounted(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    held = claim("erin")
    held["metadata"]["finalizers"] = ["hubext.test/hold"]
    await core.create_namespaced_persistent_volume_claim(k8s_namespace, held)
    await core.delete_namespaced_persistent_volume_claim("erin-nfs-pvc", k8s_namespace)
    try:
        with pytest.raises(storage.StorageUnavailable) as info:
            await storage.ensure_pvc(core, k8s_namespace, claim("erin"))
        assert "being deleted" in info.value.message
    finally:
        await core.patch_namespaced_persistent_volume_claim(
            "erin-nfs-pvc", k8s_namespace, {"metadata": {"finalizers": None}}
        )
