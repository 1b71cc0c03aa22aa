"""SSH identity: real keypairs, literal manifests, and the key files read by
OpenSSH as uid 1000 the way the test kubelet lays out the Secret volume."""

import base64
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import kubernetes_validate
import pytest
from cryptography.hazmat.primitives import serialization

from hubext import names, sshkeys, storage

K8S_VERSION = "1.35.0"
UID = GID = 1000
SSH_KEYGEN = shutil.which("ssh-keygen")


def validate(manifest):
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def derived_public(private_pem: str) -> str:
    """The public key, derived by cryptography from the private key text."""
    key = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        .decode()
    )


def keygen_public(path, as_user=False) -> subprocess.CompletedProcess:
    """`ssh-keygen -y -f path`, optionally as uid 1000 (it then checks modes)."""
    cmd = [SSH_KEYGEN, "-y", "-f", str(path)]
    if as_user:
        cmd = ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


PREFIXES = {
    "ed25519": "ssh-ed25519 AAAA",
    "rsa-4096": "ssh-rsa AAAA",
    "ecdsa-p256": "ecdsa-sha2-nistp256 AAAA",
    "ecdsa-p384": "ecdsa-sha2-nistp384 AAAA",
    "ecdsa-p521": "ecdsa-sha2-nistp521 AAAA",
}


@pytest.mark.parametrize("key_type", sshkeys.KEY_TYPES)
def test_keypair_really_matches(key_type, tmp_path):
    pair = sshkeys.generate_keypair("alice", key_type=key_type)
    assert pair.private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert pair.private.rstrip().endswith("-----END OPENSSH PRIVATE KEY-----")
    assert pair.public.startswith(PREFIXES[key_type])
    kind, blob, comment = pair.public.split()
    assert comment == "alice@hubext"
    assert f"{kind} {blob}" == derived_public(pair.private)
    if SSH_KEYGEN:  # OpenSSH's own reading of the key, when it is installed
        key_file = tmp_path / "key"
        key_file.write_text(pair.private)
        key_file.chmod(0o600)
        result = keygen_public(key_file)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[:2] == [kind, blob]


def test_default_is_ed25519_and_keys_differ():
    one, two = sshkeys.generate_keypair("bob"), sshkeys.generate_keypair("bob")
    assert one.public.startswith("ssh-ed25519 ")
    assert one.public != two.public and one.private != two.private


def test_comment_is_one_clean_line():
    pair = sshkeys.generate_keypair("x", comment="  a\nb  c ")
    assert pair.public.endswith(" a b c\n") and pair.public.count("\n") == 1
    bare = sshkeys.generate_keypair("x", comment="")
    assert len(bare.public.split()) == 2


def test_private_key_is_not_in_repr():
    pair = sshkeys.generate_keypair("alice")
    body = pair.private.splitlines()[1]
    assert body not in repr(pair) and body not in str(pair)
    assert pair.public.strip() in repr(pair)


def test_unknown_key_type_lists_the_choices():
    with pytest.raises(ValueError) as info:
        sshkeys.generate_keypair("alice", key_type="dsa")
    assert "'dsa'" in str(info.value) and "ed25519" in str(info.value)


def test_secret_manifest_is_exactly_this():
    manifest = sshkeys.make_ssh_secret(
        names.ssh_secret_name("Alice"),
        "Alice",
        "PRIVATE\n",
        "ssh-ed25519 AAAA alice@hubext\n",
        labels={"team": "bio"},
        annotations={
            "hubext/username": "eve",
            "hubext/ssh-public-key": "ssh-ed25519 EVE",
            "note": "n",
        },
    )
    assert json.loads(json.dumps(manifest)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": {
            "name": "alice---3bc51062-ssh-key",
            "labels": {
                "app.kubernetes.io/managed-by": "hubext",
                "hubext/username": "alice---3bc51062",
                "team": "bio",
            },
            "annotations": {
                "hubext/username": "Alice",
                "hubext/ssh-public-key": "ssh-ed25519 AAAA alice@hubext\n",
                "note": "n",
            },
        },
        "data": {
            "ssh.priv": base64.b64encode(b"PRIVATE\n").decode(),
            "ssh.pub": base64.b64encode(b"ssh-ed25519 AAAA alice@hubext\n").decode(),
        },
    }
    validate(manifest)


def test_pod_parts_are_exactly_these():
    parts = sshkeys.ssh_pod_parts("alice-ssh-key")
    assert parts == {
        "volumes": [
            {
                "name": "hubext-ssh-secret",
                "secret": {
                    "secretName": "alice-ssh-key",
                    "items": [
                        {"key": "ssh.priv", "path": "ssh.priv", "mode": 0o440},
                        {"key": "ssh.pub", "path": "ssh.pub", "mode": 0o444},
                    ],
                },
            },
            {
                "name": "hubext-ssh",
                "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"},
            },
        ],
        "volume_mounts": [
            {"name": "hubext-ssh", "mountPath": "/home/jovyan/.ssh"},
            {
                "name": "hubext-ssh-secret",
                "mountPath": "/home/jovyan/.ssh/ssh.priv",
                "subPath": "ssh.priv",
                "readOnly": True,
            },
            {
                "name": "hubext-ssh-secret",
                "mountPath": "/home/jovyan/.ssh/ssh.pub",
                "subPath": "ssh.pub",
                "readOnly": True,
            },
        ],
    }
    assert "init_containers" not in parts  # no container of its own


@pytest.mark.parametrize(
    "ssh_dir, expected",
    [
        ("/home/jovyan/.ssh", "/home/jovyan/.ssh"),
        ("/home/jovyan/.ssh/", "/home/jovyan/.ssh"),
        ("/srv/u//keys", "/srv/u/keys"),
    ],
)
def test_mounts_follow_ssh_dir(ssh_dir, expected):
    mounts = sshkeys.ssh_volume_mounts(ssh_dir)
    assert [m["mountPath"] for m in mounts] == [
        expected,
        f"{expected}/ssh.priv",
        f"{expected}/ssh.pub",
    ]


def test_pod_parts_have_no_template_braces():
    """KubeSpawner runs str.format over volumes and mounts: braces would break."""
    parts = sshkeys.ssh_pod_parts("alice-ssh-key")

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    found = strings(parts)
    assert "alice-ssh-key" in found and "ssh.priv" in found
    for text in found:
        assert "{" not in text and "}" not in text and text.format() == text


def test_pod_skeleton_with_storage_and_ssh_is_valid():
    ssh = sshkeys.ssh_pod_parts("alice-ssh-key", ssh_dir="/home/jovyan/.ssh")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-alice"},
        "spec": {
            "securityContext": {"runAsUser": UID, "runAsGroup": GID, "fsGroup": GID},
            "containers": [
                {
                    "name": "notebook",
                    "image": "img:1",
                    "volumeMounts": [
                        storage.home_volume_mount("/home/alice-nfs-pvc"),
                        *ssh["volume_mounts"],
                    ],
                }
            ],
            "volumes": [storage.home_volume("alice-nfs-pvc"), *ssh["volumes"]],
        },
    }
    validate(pod)
    [notebook] = pod["spec"]["containers"]
    secret_mounts = [
        m for m in notebook["volumeMounts"] if m["name"] == "hubext-ssh-secret"
    ]
    # the notebook sees the two key files, never the Secret volume's directory
    assert sorted(m["subPath"] for m in secret_mounts) == ["ssh.priv", "ssh.pub"]
    assert all(m["readOnly"] for m in secret_mounts)
    paths = [m["mountPath"] for m in notebook["volumeMounts"]]
    assert len(paths) == len(set(paths))


# --- merging the parts into the spawner's lists ----------------------------


def test_merge_keeps_both_key_files_and_does_not_stack_on_relaunch():
    from hubext.spawner import merge_by_mount_path

    admin = [{"name": "data", "mountPath": "/data"}]
    ours = sshkeys.ssh_volume_mounts()
    first = merge_by_mount_path(admin, ours)
    assert first == admin + ours  # the two mounts of one volume both stay
    assert merge_by_mount_path(first, sshkeys.ssh_volume_mounts()) == first


def test_merge_by_mount_path_replaces_only_the_same_path():
    from kubernetes_asyncio.client import V1VolumeMount

    from hubext.spawner import merge_by_mount_path

    theirs = [
        {"name": "site-keys", "mountPath": "/home/jovyan/.ssh/ssh.pub"},
        V1VolumeMount(name="hubext-ssh-secret", mount_path="/etc/site"),
        {"name": "data", "mountPath": "/data"},
    ]
    merged = merge_by_mount_path(theirs, sshkeys.ssh_volume_mounts())
    # a mount at one of our paths gives way (two at one path are refused by
    # the API server); the same volume name at another path stays, in order
    assert merged[:2] == theirs[1:]
    assert merged[2:] == sshkeys.ssh_volume_mounts()


def test_merge_reads_kubespawners_dict_form_in_key_order():
    from hubext.spawner import merge_by_mount_path, merge_by_name

    mounts = {
        "b": {"name": "b", "mountPath": "/b"},
        "a": {"name": "a", "mountPath": "/a"},
    }
    merged = merge_by_mount_path(mounts, sshkeys.ssh_volume_mounts())
    assert merged[:2] == [mounts["a"], mounts["b"]]
    volumes = {"z": {"name": "hubext-ssh", "emptyDir": {}}, "y": {"name": "y"}}
    merged = merge_by_name(volumes, sshkeys.ssh_volumes("s"))
    assert merged == [{"name": "y"}, *sshkeys.ssh_volumes("s")]


# --- the Secret volume as the kubelet lays it out, read by OpenSSH as uid 1000


def require_ssh_keygen_as_uid_1000():
    """ssh-keygen, and a passwd entry for uid 1000 (it refuses to run
    without one). Missing either is a broken test machine, not a skip."""
    if not SSH_KEYGEN:
        pytest.fail("ssh-keygen is not installed: install openssh-client")
    try:
        pwd.getpwuid(UID)
    except KeyError:
        pytest.fail(f"no passwd entry for uid {UID}: ssh-keygen needs one")


@pytest.fixture
def key_volume():
    """The user's Secret volume made by the test kubelet's own volume code
    from hubext's pod parts, with fsGroup 1000: root-owned files behind
    `..data` links. Needs root to own files as root and switch to uid 1000."""
    if os.geteuid() != 0:
        pytest.skip("needs root to lay out root-owned files and switch uid")
    from devstack import volumes

    base = Path(tempfile.mkdtemp(prefix="hubext-ssh-"))
    base.chmod(0o755)  # uid 1000 must be able to walk into it
    pair = sshkeys.generate_keypair("alice")
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {
            "securityContext": {"fsGroup": GID},
            "volumes": sshkeys.ssh_volumes("alice-ssh-key"),
            "containers": [],
        },
    }
    data = {"ssh.priv": pair.private.encode(), "ssh.pub": pair.public.encode()}
    sources = {("secret", "alice-ssh-key"): data}
    paths = volumes.prepare(pod, base / "pod", base / "claims", sources)
    home = base / "home"  # somewhere uid 1000 may write
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    yield pair, paths[sshkeys.SECRET_VOLUME_NAME], home
    shutil.rmtree(base)


def as_user(*argv, groups=str(GID), uid=UID) -> subprocess.CompletedProcess:
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={groups}"]
    return subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=30)


def test_secret_files_are_root_owned_with_the_fs_group(key_volume):
    pair, volume, _ = key_volume
    priv, pub = os.stat(volume / "ssh.priv"), os.stat(volume / "ssh.pub")
    assert (stat.S_IMODE(priv.st_mode), priv.st_uid, priv.st_gid) == (0o440, 0, GID)
    assert (stat.S_IMODE(pub.st_mode), pub.st_uid, pub.st_gid) == (0o444, 0, GID)
    assert (volume / "ssh.priv").read_text() == pair.private


def test_openssh_takes_the_root_owned_key_and_refuses_a_users_0440_copy(key_volume):
    require_ssh_keygen_as_uid_1000()
    pair, volume, home = key_volume
    kind, blob, _ = pair.public.split()
    accepted = as_user(SSH_KEYGEN, "-y", "-f", str(volume / "ssh.priv"))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.split()[:2] == [kind, blob]
    # the user's own copy keeps 0440 and belongs to the user: refused ...
    copy = home / "copy"
    assert as_user("cp", str(volume / "ssh.priv"), str(copy)).returncode == 0
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o440
    assert os.stat(copy).st_uid == UID
    refused = as_user(SSH_KEYGEN, "-y", "-f", str(copy))
    assert refused.returncode != 0 and "too open" in refused.stderr
    # ... until chmod 600
    assert as_user("chmod", "600", str(copy)).returncode == 0
    assert as_user(SSH_KEYGEN, "-y", "-f", str(copy)).returncode == 0


def test_no_other_uid_reads_the_key(key_volume):
    _, volume, _ = key_volume
    other = as_user("cat", str(volume / "ssh.priv"), uid=UID + 1, groups=str(UID + 1))
    assert other.returncode != 0 and "Permission denied" in other.stderr
    # the public key is for everyone
    assert as_user("cat", str(volume / "ssh.pub"), uid=UID + 1).returncode == 0


def test_a_secret_without_the_private_key_fails_the_mount(tmp_path):
    from devstack import volumes

    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"volumes": sshkeys.ssh_volumes("s"), "containers": []},
    }
    with pytest.raises(volumes.MountError) as info:
        volumes.prepare(
            pod, tmp_path / "pod", tmp_path / "c", {("secret", "s"): {"ssh.pub": b"x"}}
        )
    assert "has no key 'ssh.priv'" in str(info.value)


def test_create_failure_message_never_carries_the_key():
    """No API server we can run echoes a Secret's data back in an error, so
    this fault is built by hand: a 422 whose message quotes the key."""
    from kubernetes_asyncio.client.rest import ApiException

    pair = sshkeys.generate_keypair("alice")
    manifest = sshkeys.make_ssh_secret("s", "alice", pair.private, pair.public)
    error = ApiException(status=422, reason="Unprocessable Entity")
    quoted = f"bad value {manifest['data']['ssh.priv']} and {pair.private}"
    error.body = json.dumps({"message": quoted})
    failure = sshkeys._create_failed(error, "ns", "s", manifest)
    text = str(failure)
    assert "HTTP 422" in text and "ns/s" in text and "[redacted]" in text
    assert manifest["data"]["ssh.priv"] not in text
    for line in pair.private.splitlines()[1:-1]:
        assert line not in text
