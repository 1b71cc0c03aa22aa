"""The user's SSH identity: one keypair per user, the same in every server.

The keypair is generated on the user's first spawn and kept in a per-user
Secret. A notebook gets it with no extra container: `~/.ssh` is a small
memory-backed emptyDir, so `known_hosts` and `config` can be written, and
the Secret's two files are mounted into it with `subPath`, read-only:
`ssh.priv` mode 0440 and `ssh.pub` 0444, owned by root, their group the
pod's fsGroup, which is the notebook user's own group.

Why OpenSSH takes that key: `ssh` and `ssh-keygen` look at a private key's
mode only when the file belongs to the user running them; a root-owned key
the user reads through its group is used as it is, and no other uid in the
pod can read it. The costs (the key cannot be chmod-ed or removed, a copy
needs `chmod 600`, a notebook run as root would refuse it) and the
init-container copy this replaced: docs/explanation/ssh-key-permissions.md.

The private key never leaves this module except inside the Secret manifest
sent to the API server: `KeyPair` hides it from `repr`, `ensure_ssh_secret`
returns only the public key, and no log line or exception message holds it.
"""

import asyncio
import base64
import json
import logging
import posixpath
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from kubernetes_asyncio.client.rest import ApiException

from .errors import UserFacingError
from .names import check_owner, owner_annotations, user_labels

PRIVATE_KEY = "ssh.priv"
PUBLIC_KEY = "ssh.pub"
#: The public key again, as an annotation: what the hub's watch of key
#: Secrets reads, since it asks for metadata only.
PUBLIC_KEY_ANNOTATION = "hubext/ssh-public-key"

KEY_TYPES = ("ed25519", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521")
DEFAULT_KEY_TYPE = "ed25519"

SECRET_VOLUME_NAME = "hubext-ssh-secret"
SSH_DIR_VOLUME_NAME = "hubext-ssh"
DEFAULT_SSH_DIR = "/home/jovyan/.ssh"
SSH_DIR_SIZE = "4Mi"
#: File modes in the Secret volume. 0400 would become 0440 anyway: with an
#: fsGroup the kubelet adds group-read to every file of a Secret volume.
PRIVATE_KEY_MODE = 0o440
PUBLIC_KEY_MODE = 0o444


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

    Keys `ssh.priv` and `ssh.pub`, base64 in `data`. The exact username and
    the public key are recorded in annotations that `annotations` cannot
    override: the hub's watch of key Secrets reads metadata only. The Secret
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
            "annotations": {
                **(annotations or {}),
                **owner_annotations(username),
                PUBLIC_KEY_ANNOTATION: public,
            },
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
    likely_absent: bool = False,
) -> str:
    """Make sure the user's SSH Secret exists; return its public key only.

    An existing Secret is reused as it is. If there is none, a keypair is
    generated and stored; if another spawn of the same user created it first
    (409), that winner's key is read back and used, so every server of a
    user always sees one key. With `likely_absent` (the hub's watch of key
    Secrets does not have it: a user's first launch) the create goes first,
    one request instead of a read that answers 404 and then the create.
    """
    log = log or logging.getLogger(__name__)
    secret = None if likely_absent else await _read_secret(api, namespace, name)
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
        log.info("SSH key Secret %s/%s exists already", namespace, name)
        secret = await _read_secret(api, namespace, name)
        if secret is None:
            raise RuntimeError(
                f"SSH Secret {namespace}/{name} was reported as existing but "
                "cannot be read; it was probably deleted meanwhile. Retry."
            )
    return _public_key_of(secret, username, log)


def ssh_volumes(secret_name: str) -> list[dict]:
    """The pod `volumes`: the user's Secret, its two keys as files with
    their own modes, and the memory-backed emptyDir that becomes `~/.ssh`.

    The keys are listed as `items`, so a Secret without one of them fails
    the mount ("no key") instead of starting a notebook without its key.
    """
    items = [
        {"key": PRIVATE_KEY, "path": PRIVATE_KEY, "mode": PRIVATE_KEY_MODE},
        {"key": PUBLIC_KEY, "path": PUBLIC_KEY, "mode": PUBLIC_KEY_MODE},
    ]
    return [
        {
            "name": SECRET_VOLUME_NAME,
            "secret": {"secretName": secret_name, "items": items},
        },
        {
            "name": SSH_DIR_VOLUME_NAME,
            "emptyDir": {"medium": "Memory", "sizeLimit": SSH_DIR_SIZE},
        },
    ]


def ssh_volume_mounts(ssh_dir: str = DEFAULT_SSH_DIR) -> list[dict]:
    """The notebook container's mounts: the writable `~/.ssh`, then each key
    file of the Secret inside it (`subPath`, read-only).

    Runtimes mount parents before children, so the two files land in the
    emptyDir whatever the order; it is written parents first all the same.
    The files are mount points: the user can read them but not chmod,
    replace or delete them, and a `subPath` mount does not follow updates of
    the Secret (it is immutable: a new key comes with the next server).
    """
    ssh_dir = posixpath.normpath(ssh_dir)
    return [
        {"name": SSH_DIR_VOLUME_NAME, "mountPath": ssh_dir},
        *(
            {
                "name": SECRET_VOLUME_NAME,
                "mountPath": posixpath.join(ssh_dir, key),
                "subPath": key,
                "readOnly": True,
            }
            for key in (PRIVATE_KEY, PUBLIC_KEY)
        ),
    ]


def ssh_pod_parts(secret_name: str, ssh_dir: str = DEFAULT_SSH_DIR) -> dict:
    """Everything a pod needs for the SSH identity, for the spawner to merge:
    `volumes` and `volume_mounts` (of the notebook container); no container
    of its own, so a launch costs no extra container start."""
    return {
        "volumes": ssh_volumes(secret_name),
        "volume_mounts": ssh_volume_mounts(ssh_dir),
    }
