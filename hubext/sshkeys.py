"""The user's SSH identity: one keypair per user, the same in every server.

The keypair is generated on the user's first spawn, kept in a per-user
Secret, and copied into each notebook as `~/.ssh/ssh.priv` (mode 0600,
owned by the user) and `~/.ssh/ssh.pub`. Why a copy and not the Secret
volume itself: see `ssh_init_container`.

The private key never leaves this module except inside the Secret manifest
sent to the API server: `KeyPair` hides it from `repr`, `ensure_ssh_secret`
returns only the public key, and no log line or exception message holds it.
"""

import asyncio
import base64
import copy
import json
import logging
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from kubernetes_asyncio.client.rest import ApiException

from .errors import UserFacingError
from .names import check_owner, owner_annotations, user_labels

PRIVATE_KEY = "ssh.priv"
PUBLIC_KEY = "ssh.pub"

KEY_TYPES = ("ed25519", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521")
DEFAULT_KEY_TYPE = "ed25519"

SECRET_VOLUME_NAME = "hubext-ssh-secret"
SSH_DIR_VOLUME_NAME = "hubext-ssh"
INIT_CONTAINER_NAME = "hubext-ssh-init"
STAGING_PATH = "/etc/hubext/ssh"
DEFAULT_SSH_DIR = "/home/jovyan/.ssh"
SECRET_MODE = 0o440
SSH_DIR_SIZE = "4Mi"
INIT_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "16Mi"},
    "limits": {"cpu": "100m", "memory": "32Mi"},
}

# Runs in the init container as the notebook user, with POSIX sh only.
# $1 is the staging directory (the Secret volume), $2 the user's ~/.ssh.
# No curly braces: KubeSpawner expands {...} templates in init containers.
INIT_SCRIPT = """\
set -eu
src=$1
dst=$2
for f in ssh.priv ssh.pub; do
  if [ ! -r "$src/$f" ]; then
    echo "hubext: cannot read $src/$f as uid $(id -u) gid $(id -g):" \\
      "the pod's fsGroup must be the notebook user's group" >&2
    exit 1
  fi
done
umask 077
rm -f "$dst/ssh.priv" "$dst/ssh.pub"
cat "$src/ssh.priv" > "$dst/ssh.priv"
cat "$src/ssh.pub" > "$dst/ssh.pub"
chmod 600 "$dst/ssh.priv"
chmod 644 "$dst/ssh.pub"
"""


class SshKeyError(UserFacingError):
    """The user's SSH key Secret cannot be used or created."""


@dataclass(frozen=True)
class KeyPair:
    """An OpenSSH keypair; `private` is left out of repr so it is never logged."""

    public: str
    private: str = field(repr=False)


def _new_private_key(key_type: str):
    """A fresh private key of one of `KEY_TYPES`."""
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "rsa-4096":
        return rsa.generate_private_key(public_exponent=65537, key_size=4096)
    curves = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1}
    curves["ecdsa-p521"] = ec.SECP521R1
    if key_type in curves:
        return ec.generate_private_key(curves[key_type]())
    raise ValueError(
        f"SSH key type {key_type!r} is not supported: use one of "
        f"{', '.join(KEY_TYPES)} (default {DEFAULT_KEY_TYPE!r})."
    )


def generate_keypair(
    username: str, key_type: str = DEFAULT_KEY_TYPE, comment: str | None = None
) -> KeyPair:
    """A new keypair in OpenSSH format, public key commented `{username}@hubext`.

    The private key is the `-----BEGIN OPENSSH PRIVATE KEY-----` form,
    unencrypted (the notebook must use it without a prompt).
    """
    key = _new_private_key(key_type)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    comment = f"{username}@hubext" if comment is None else comment
    comment = " ".join(comment.split())  # one line, no stray whitespace
    public_line = public.decode("ascii") + (f" {comment}" if comment else "")
    return KeyPair(public=public_line + "\n", private=private)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def make_ssh_secret(
    name: str,
    username: str,
    private: str,
    public: str,
    labels: dict | None = None,
    annotations: dict | None = None,
) -> dict:
    """The manifest of the user's SSH Secret (type Opaque), as a plain dict.

    Keys `ssh.priv` and `ssh.pub`, base64 in `data`. The exact username is
    recorded in an annotation that `annotations` cannot override. The Secret
    is immutable: a key is never changed in place (a new key means deleting
    the Secret), and kubelets need not watch thousands of user Secrets.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": {
            "name": name,
            "labels": {**user_labels(username), **(labels or {})},
            "annotations": {**(annotations or {}), **owner_annotations(username)},
        },
        "data": {PRIVATE_KEY: _b64(private), PUBLIC_KEY: _b64(public)},
    }


def _public_key_of(secret, username: str, log) -> str:
    """The public key held by an existing Secret, after checking its owner."""
    name = secret.metadata.name
    check_owner("SSH key", name, secret.metadata, username, log=log)
    data = secret.data or {}
    missing = [k for k in (PRIVATE_KEY, PUBLIC_KEY) if not data.get(k)]
    if missing:
        raise SshKeyError(
            f"Your SSH key Secret '{name}' has no {' or '.join(missing)}, so "
            "your key cannot be set up. Please ask the hub admins to repair "
            "or remove it (a new key is then made on your next launch).",
            name=name,
            missing=missing,
        )
    return base64.b64decode(data[PUBLIC_KEY]).decode("utf-8")


async def _read_secret(api, namespace: str, name: str):
    """The Secret, or None if it does not exist."""
    try:
        return await api.read_namespaced_secret(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _redacted(text: str, secrets: list[str]) -> str:
    """`text` with every secret string, and each line of it, cut out."""
    for secret in secrets:
        for piece in [secret, *secret.splitlines()]:
            if len(piece) >= 16:
                text = text.replace(piece, "[redacted]")
    return text


def _create_failed(e: ApiException, namespace: str, name: str, manifest: dict):
    """An error for a failed create that cannot carry the private key."""
    try:
        detail = json.loads(e.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        detail = ""
    data = manifest["data"]
    private = base64.b64decode(data[PRIVATE_KEY]).decode("utf-8")
    detail = _redacted(str(detail), [private, data[PRIVATE_KEY]])
    return SshKeyError(
        f"The cluster refused to create your SSH key Secret {namespace}/{name}"
        f" (HTTP {e.status} {e.reason}: {detail or 'no detail'}). Please send "
        "this message to the hub admins.",
        status=e.status,
    )


async def ensure_ssh_secret(
    api,
    namespace: str,
    name: str,
    username: str,
    key_type: str = DEFAULT_KEY_TYPE,
    labels: dict | None = None,
    annotations: dict | None = None,
    log=None,
) -> str:
    """Make sure the user's SSH Secret exists; return its public key only.

    An existing Secret is reused as it is. If there is none, a keypair is
    generated and stored; if another spawn of the same user created it first
    (409), that winner's key is read back and used, so every server of a
    user always sees one key.
    """
    log = log or logging.getLogger(__name__)
    secret = await _read_secret(api, namespace, name)
    if secret is None:
        # rsa-4096 takes up to seconds: off the hub's event loop
        pair = await asyncio.to_thread(generate_keypair, username, key_type=key_type)
        manifest = make_ssh_secret(
            name, username, pair.private, pair.public, labels, annotations
        )
        try:
            await api.create_namespaced_secret(namespace, manifest)
        except ApiException as e:
            if e.status != 409:
                raise _create_failed(e, namespace, name, manifest) from None
        else:
            log.info("Created SSH key Secret %s/%s (%s)", namespace, name, key_type)
            return pair.public
        log.info("SSH key Secret %s/%s was created concurrently", namespace, name)
        secret = await _read_secret(api, namespace, name)
        if secret is None:
            raise RuntimeError(
                f"SSH Secret {namespace}/{name} was reported as existing but "
                "cannot be read; it was probably deleted meanwhile. Retry."
            )
    return _public_key_of(secret, username, log)


def ssh_volumes(secret_name: str, secret_mode: int = SECRET_MODE) -> list[dict]:
    """The pod `volumes`: the Secret (read by the init container only) and
    the memory-backed emptyDir that becomes `~/.ssh`."""
    return [
        {
            "name": SECRET_VOLUME_NAME,
            "secret": {"secretName": secret_name, "defaultMode": secret_mode},
        },
        {
            "name": SSH_DIR_VOLUME_NAME,
            "emptyDir": {"medium": "Memory", "sizeLimit": SSH_DIR_SIZE},
        },
    ]


def ssh_volume_mount(ssh_dir: str = DEFAULT_SSH_DIR) -> dict:
    """The notebook container's mount of the prepared `~/.ssh` directory."""
    return {"name": SSH_DIR_VOLUME_NAME, "mountPath": ssh_dir}


def ssh_init_container(
    image: str,
    ssh_dir: str = DEFAULT_SSH_DIR,
    uid: int = 1000,
    gid: int = 1000,
    resources: dict | None = None,
    staging_path: str = STAGING_PATH,
) -> dict:
    """The init container that copies the key into `~/.ssh` as the user.

    Why not mount the Secret at `~/.ssh` directly: its files are owned by
    root and cannot be chmod-ed or replaced by the user; with mode 0400 and
    no fsGroup uid 1000 cannot even read them, and with the pod's fsGroup
    the kubelet makes them group-readable (0440 here), which `ssh` rejects
    as "UNPROTECTED PRIVATE KEY FILE" as soon as the file belongs to the one
    running it (a notebook run as root, or a user's own copy of it). The
    Secret volume is also read-only, so users could not add `known_hosts`
    or `config`. So this container, running as the notebook user (`uid`,
    with `gid` the pod's fsGroup, which lets it read the 0440 files; no
    privileges), copies the two files into an emptyDir: `ssh.priv` 0600 and
    `ssh.pub` 0644, owned by the user, the directory left writable. It uses
    the notebook `image` (already pulled) and POSIX sh only.
    """
    return {
        "name": INIT_CONTAINER_NAME,
        "image": image,
        "command": ["sh", "-c", INIT_SCRIPT, INIT_CONTAINER_NAME],
        "args": [staging_path, ssh_dir],
        "resources": copy.deepcopy(INIT_RESOURCES if resources is None else resources),
        "securityContext": {
            "runAsUser": uid,
            "runAsGroup": gid,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": SECRET_VOLUME_NAME, "mountPath": staging_path, "readOnly": True},
            {"name": SSH_DIR_VOLUME_NAME, "mountPath": ssh_dir},
        ],
    }


def ssh_pod_parts(
    secret_name: str,
    image: str,
    ssh_dir: str = DEFAULT_SSH_DIR,
    uid: int = 1000,
    gid: int = 1000,
    resources: dict | None = None,
) -> dict:
    """Everything a pod needs for the SSH identity, for the spawner to merge:
    `volumes`, `volume_mounts` (notebook container) and `init_containers`."""
    return {
        "volumes": ssh_volumes(secret_name),
        "volume_mounts": [ssh_volume_mount(ssh_dir)],
        "init_containers": [
            ssh_init_container(image, ssh_dir, uid, gid, resources=resources)
        ],
    }
