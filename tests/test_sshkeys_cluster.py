"""ensure_ssh_secret against a real API server: one key per user, ever."""

import asyncio
import base64
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from kubernetes_asyncio import client

from hubext import names, sshkeys
from hubext.errors import UserFacingError

pytestmark = pytest.mark.cluster


async def ensure(core, namespace, username, **kw):
    name = names.ssh_secret_name(username)
    return await sshkeys.ensure_ssh_secret(core, namespace, name, username, **kw)


async def stored(core, namespace, username):
    secret = await core.read_namespaced_secret(
        names.ssh_secret_name(username), namespace
    )
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    return secret, data


def public_of(private_pem):
    key = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )


async def test_ensure_twice_gives_the_same_key(kube_api, k8s_namespace, caplog):
    core = client.CoreV1Api(kube_api)
    with caplog.at_level(logging.DEBUG):
        first = await ensure(core, k8s_namespace, "Alice")
        second = await ensure(core, k8s_namespace, "Alice")
    assert first == second and first.startswith("ssh-ed25519 AAAA")
    secret, data = await stored(core, k8s_namespace, "Alice")
    assert secret.type == "Opaque" and secret.immutable is True
    assert secret.metadata.name == "alice---3bc51062-ssh-key"
    assert secret.metadata.annotations["hubext/username"] == "Alice"
    assert data["ssh.pub"] == first
    # the stored private key is the one that belongs to the public key
    assert first.split()[:2] == public_of(data["ssh.priv"]).decode().split()
    # ... and it was never logged
    body = data["ssh.priv"].splitlines()[1]
    assert body not in caplog.text


async def test_twenty_concurrent_first_spawns_agree_on_one_key(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    keys = await asyncio.gather(
        *(ensure(core, k8s_namespace, "bob") for _ in range(20))
    )
    assert len(set(keys)) == 1
    _, data = await stored(core, k8s_namespace, "bob")
    assert data["ssh.pub"] == keys[0]
    listed = await core.list_namespaced_secret(
        k8s_namespace, label_selector="hubext/username=bob"
    )
    assert len(listed.items) == 1


class CountingApi:
    """The real CoreV1Api, with the names of the requests made through it."""

    def __init__(self, core):
        self.core, self.calls = core, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.core, name)


async def test_a_first_key_is_one_request_and_a_wrong_guess_costs_one_more(
    kube_api, k8s_namespace
):
    """`likely_absent` (the hub's watch has no Secret for the user): the
    create goes first. Right, that is the only request; wrong, the 409 is
    followed by the read, and the existing key (or refusal) is what counts."""
    core = CountingApi(client.CoreV1Api(kube_api))
    first = await ensure(core, k8s_namespace, "ivan", likely_absent=True)
    assert core.calls == ["create_namespaced_secret"]
    core.calls.clear()
    again = await ensure(core, k8s_namespace, "ivan", likely_absent=True)
    assert again == first
    assert core.calls == ["create_namespaced_secret", "read_namespaced_secret"]
    # another owner's Secret at the name is refused on this path too
    pair = sshkeys.generate_keypair("mallory")
    planted = sshkeys.make_ssh_secret(
        names.ssh_secret_name("judy"), "mallory", pair.private, pair.public
    )
    await core.core.create_namespaced_secret(k8s_namespace, planted)
    with pytest.raises(names.OwnerMismatch):
        await ensure(core, k8s_namespace, "judy", likely_absent=True)


async def test_two_users_get_two_secrets(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    users = ["a.b", "a-b", "A.B"]
    keys = [await ensure(core, k8s_namespace, u) for u in users]
    assert len(set(keys)) == 3
    for user, key in zip(users, keys, strict=True):
        secret, data = await stored(core, k8s_namespace, user)
        assert secret.metadata.annotations["hubext/username"] == user
        assert data["ssh.pub"] == key


async def test_key_type_is_honoured(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    key = await ensure(core, k8s_namespace, "carol", key_type="ecdsa-p256")
    assert key.startswith("ecdsa-sha2-nistp256 AAAA")


async def test_secret_of_another_user_is_refused(kube_api, k8s_namespace):
    """Simulates a slug collision by planting another owner on the name."""
    core = client.CoreV1Api(kube_api)
    pair = sshkeys.generate_keypair("mallory")
    planted = sshkeys.make_ssh_secret(
        names.ssh_secret_name("dave"), "mallory", pair.private, pair.public
    )
    await core.create_namespaced_secret(k8s_namespace, planted)
    with pytest.raises(UserFacingError) as info:
        await ensure(core, k8s_namespace, "dave")
    assert "mallory" not in info.value.message
    assert pair.private.splitlines()[1] not in str(info.value)


async def test_secret_without_an_owner_is_not_handed_out(kube_api, k8s_namespace):
    """A key Secret with no owner annotation (made by hand, or before
    hubext) is refused until an admin records whose it is."""
    core = client.CoreV1Api(kube_api)
    pair = sshkeys.generate_keypair("old")
    name = names.ssh_secret_name("hana")
    old = sshkeys.make_ssh_secret(name, "hana", pair.private, pair.public)
    del old["metadata"]["annotations"]
    await core.create_namespaced_secret(k8s_namespace, old)
    with pytest.raises(UserFacingError) as info:
        await ensure(core, k8s_namespace, "hana")
    assert "not recorded as belonging to any account" in info.value.message
    assert pair.private.splitlines()[1] not in str(info.value)
    await core.patch_namespaced_secret(
        name, k8s_namespace, {"metadata": {"annotations": {"hubext/username": "hana"}}}
    )
    assert await ensure(core, k8s_namespace, "hana") == pair.public


async def test_incomplete_secret_is_reported_not_repaired(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    name = names.ssh_secret_name("erin")
    partial = {
        "metadata": {"name": name, "annotations": {"hubext/username": "erin"}},
        "data": {"ssh.pub": base64.b64encode(b"ssh-ed25519 AAAA x").decode()},
    }
    await core.create_namespaced_secret(k8s_namespace, partial)
    with pytest.raises(sshkeys.SshKeyError) as info:
        await ensure(core, k8s_namespace, "erin")
    assert "ssh.priv" in info.value.message
    after = await core.read_namespaced_secret(name, k8s_namespace)
    assert set(after.data) == {"ssh.pub"}


async def test_failed_create_does_not_carry_the_key(kube_api, k8s_namespace):
    """A real 404 (the namespace does not exist) on create."""
    core = client.CoreV1Api(kube_api)
    with pytest.raises(Exception) as info:
        await ensure(core, "no-such-namespace-hubext", "frank")
    # read answers 404 too, so the create is what fails
    text = str(info.value)
    assert "404" in text
    assert "PRIVATE KEY" not in text and "b3BlbnNzaC1rZXktdjE" not in text


async def test_api_server_accepts_a_pod_with_the_ssh_and_storage_parts(
    kube_api, k8s_namespace
):
    """Server-side dry run: the real API server validates the pod parts."""
    from hubext import storage

    core = client.CoreV1Api(kube_api)
    ssh = sshkeys.ssh_pod_parts(names.ssh_secret_name("gina"))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-gina"},
        "spec": {
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
            "containers": [
                {
                    "name": "notebook",
                    "image": "img:1",
                    "volumeMounts": [
                        storage.home_volume_mount(names.home_volume_path("gina")),
                        *ssh["volume_mounts"],
                    ],
                }
            ],
            "volumes": [storage.home_volume(names.pvc_name("gina")), *ssh["volumes"]],
        },
    }
    created = await core.create_namespaced_pod(k8s_namespace, pod, dry_run="All")
    assert created.spec.init_containers is None
    items = {i.key: (i.path, i.mode) for i in created.spec.volumes[1].secret.items}
    assert items == {"ssh.priv": ("ssh.priv", 0o440), "ssh.pub": ("ssh.pub", 0o444)}
    mounts = {m.mount_path: m for m in created.spec.containers[0].volume_mounts}
    key = mounts["/home/jovyan/.ssh/ssh.priv"]
    assert (key.name, key.sub_path, key.read_only) == (
        "hubext-ssh-secret",
        "ssh.priv",
        True,
    )
    assert mounts["/home/jovyan/.ssh"].name == "hubext-ssh"

    def with_mounts(mounts, volumes=pod["spec"]["volumes"]):
        container = {**pod["spec"]["containers"][0], "volumeMounts": mounts}
        return {
            **pod,
            "spec": {**pod["spec"], "containers": [container], "volumes": volumes},
        }

    refused = {
        "a mount without its volume": with_mounts(
            ssh["volume_mounts"], ssh["volumes"][1:]
        ),
        "two mounts at one path": with_mounts(
            [*ssh["volume_mounts"], ssh["volume_mounts"][1]]
        ),
        "a subPath with ..": with_mounts(
            [{**ssh["volume_mounts"][1], "subPath": "../../etc/shadow"}]
        ),
        "an absolute subPath": with_mounts(
            [{**ssh["volume_mounts"][1], "subPath": "/etc/shadow"}]
        ),
    }
    for what, broken in refused.items():
        with pytest.raises(client.exceptions.ApiException) as info:
            await core.create_namespaced_pod(k8s_namespace, broken, dry_run="All")
        assert info.value.status == 422, what


async def _largest_stall(work) -> tuple[float, float]:
    """(seconds `work` took, longest the event loop went without running)."""
    loop = asyncio.get_running_loop()
    stalls, done = [0.0], False

    async def ticker():
        last = loop.time()
        while not done:
            await asyncio.sleep(0.005)
            now = loop.time()
            stalls.append(now - last - 0.005)
            last = now

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.02)
    start = loop.time()
    await work
    took = loop.time() - start
    done = True
    await tick
    return took, max(stalls)


async def test_key_generation_never_blocks_the_hubs_loop(kube_api, k8s_namespace):
    """rsa-4096 takes from a tenth of a second to seconds: the hub's other
    requests must go on meanwhile. A generation too quick to tell is tried
    again with a new user, so the check always has a slow one to look at."""
    core = client.CoreV1Api(kube_api)
    for attempt in range(10):
        took, stall = await _largest_stall(
            ensure(core, k8s_namespace, f"slow-{attempt}", key_type="rsa-4096")
        )
        if took > 0.3:
            break
    assert took > 0.3, "no rsa-4096 generation was slow enough to tell"
    assert stall < 0.1, f"the loop stalled {stall:.2f}s of a {took:.2f}s generation"
