"""SSH identity: real keypairs, literal manifests, and the init script run for real."""

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
        annotations={"hubext/username": "eve", "note": "n"},
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
            "annotations": {"hubext/username": "Alice", "note": "n"},
        },
        "data": {
            "ssh.priv": base64.b64encode(b"PRIVATE\n").decode(),
            "ssh.pub": base64.b64encode(b"ssh-ed25519 AAAA alice@hubext\n").decode(),
        },
    }
    validate(manifest)


def test_pod_parts_are_exactly_these():
    parts = sshkeys.ssh_pod_parts("alice-ssh-key", "quay.io/org/image:abc")
    assert parts == {
        "volumes": [
            {
                "name": "hubext-ssh-secret",
                "secret": {"secretName": "alice-ssh-key", "defaultMode": 0o440},
            },
            {
                "name": "hubext-ssh",
                "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"},
            },
        ],
        "volume_mounts": [{"name": "hubext-ssh", "mountPath": "/home/jovyan/.ssh"}],
        "init_containers": [
            {
                "name": "hubext-ssh-init",
                "image": "quay.io/org/image:abc",
                "command": ["sh", "-c", sshkeys.INIT_SCRIPT, "hubext-ssh-init"],
                "args": ["/etc/hubext/ssh", "/home/jovyan/.ssh"],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "100m", "memory": "32Mi"},
                },
                "securityContext": {
                    "runAsUser": 1000,
                    "runAsGroup": 1000,
                    "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {
                        "name": "hubext-ssh-secret",
                        "mountPath": "/etc/hubext/ssh",
                        "readOnly": True,
                    },
                    {"name": "hubext-ssh", "mountPath": "/home/jovyan/.ssh"},
                ],
            }
        ],
    }


def test_init_container_resources_are_copied():
    parts = sshkeys.ssh_pod_parts("s", "img")
    parts["init_containers"][0]["resources"]["limits"]["memory"] = "1Gi"
    assert sshkeys.INIT_RESOURCES["limits"]["memory"] == "32Mi"


def test_init_script_has_no_template_braces():
    """KubeSpawner runs str.format over init containers: braces would break."""
    init = sshkeys.ssh_init_container("img")
    for text in [*init["command"], *init["args"]]:
        assert "{" not in text and "}" not in text
        assert text.format() == text


def test_pod_skeleton_with_storage_and_ssh_is_valid():
    ssh = sshkeys.ssh_pod_parts("alice-ssh-key", "img:1", ssh_dir="/home/jovyan/.ssh")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-alice"},
        "spec": {
            "securityContext": {"runAsUser": UID, "runAsGroup": GID, "fsGroup": GID},
            "initContainers": ssh["init_containers"],
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
    mounted = {m["name"] for c in pod["spec"]["containers"] for m in c["volumeMounts"]}
    assert "hubext-ssh-secret" not in mounted  # the notebook never sees the Secret


# --- the init script, run for real as uid 1000 against temporary directories


def run_init_script(src: Path, dst: Path) -> subprocess.CompletedProcess:
    cmd = ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups"]
    cmd += ["sh", "-c", sshkeys.INIT_SCRIPT, "hubext-ssh-init", str(src), str(dst)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def pod_dirs():
    """A Secret volume and an emptyDir as the kubelet lays them out with
    fsGroup 1000: root-owned 0440 files behind `..data` links, and a
    group-owned setgid 2777 directory. Needs root to create root-owned files
    and to switch to uid 1000."""
    if os.geteuid() != 0:
        pytest.skip("needs root to lay out root-owned files and switch uid")
    base = Path(tempfile.mkdtemp(prefix="hubext-ssh-"))
    base.chmod(0o755)  # uid 1000 must be able to walk into it
    pair = sshkeys.generate_keypair("alice")
    src = base / "staging"
    stamp = src / "..2026_01_01_00_00_00.000000000"
    stamp.mkdir(parents=True)
    for key, text in (
        (sshkeys.PRIVATE_KEY, pair.private),
        (sshkeys.PUBLIC_KEY, pair.public),
    ):
        (stamp / key).write_text(text)
        os.chown(stamp / key, 0, GID)
        (stamp / key).chmod(0o440)
        (src / key).symlink_to(Path("..data") / key)
    (src / "..data").symlink_to(stamp.name)
    dst = base / "dot-ssh"
    dst.mkdir()
    os.chown(dst, 0, GID)
    dst.chmod(0o2777)
    yield pair, src, dst
    shutil.rmtree(base)


def test_init_script_copies_with_user_modes(pod_dirs):
    pair, src, dst = pod_dirs
    result = run_init_script(src, dst)
    assert result.returncode == 0, result.stderr
    priv, pub = os.stat(dst / "ssh.priv"), os.stat(dst / "ssh.pub")
    assert stat.S_IMODE(priv.st_mode) == 0o600 and priv.st_uid == UID
    assert stat.S_IMODE(pub.st_mode) == 0o644 and pub.st_uid == UID
    assert priv.st_gid == pub.st_gid == GID
    assert (dst / "ssh.priv").read_text() == pair.private
    assert (dst / "ssh.pub").read_text() == pair.public
    # ~/.ssh stays writable for the user
    write = subprocess.run(
        ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups"]
        + ["sh", "-c", f"echo 'host key' >> {dst}/known_hosts"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert write.returncode == 0, write.stderr
    # running again (an init container restart) gives the same result
    assert run_init_script(src, dst).returncode == 0
    assert stat.S_IMODE(os.stat(dst / "ssh.priv").st_mode) == 0o600
    assert (dst / "known_hosts").exists()


def test_copied_key_is_accepted_by_ssh_and_a_0440_copy_is_not(pod_dirs):
    pair, src, dst = pod_dirs
    assert run_init_script(src, dst).returncode == 0
    kind, blob, _ = pair.public.split()
    assert derived_public((dst / "ssh.priv").read_text()) == f"{kind} {blob}"
    try:
        pwd.getpwuid(UID)
    except KeyError:
        has_user = False
    else:
        has_user = True
    if not (SSH_KEYGEN and has_user):
        # ssh-keygen needs a passwd entry for the uid it runs as; the
        # cryptography check above still proves the copy is the key.
        return
    accepted = keygen_public(dst / "ssh.priv", as_user=True)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.split()[:2] == [kind, blob]
    # what the user would get from the Secret's modes on a file they own
    shutil.copy(dst / "ssh.priv", dst / "as-mounted")
    os.chown(dst / "as-mounted", UID, GID)
    (dst / "as-mounted").chmod(0o440)
    refused = keygen_public(dst / "as-mounted", as_user=True)
    assert refused.returncode != 0 and "too open" in refused.stderr


def test_init_script_explains_an_unreadable_secret(pod_dirs):
    """Without fsGroup the Secret's files are root:root and unreadable."""
    _, src, dst = pod_dirs
    for key in ("ssh.priv", "ssh.pub"):
        os.chown(src / key, 0, 0, follow_symlinks=True)
    result = run_init_script(src, dst)
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "fsGroup" in result.stderr
    assert not (dst / "ssh.priv").exists()


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
