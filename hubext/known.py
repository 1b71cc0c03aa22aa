"""What the hub already knows exists: the users' claims and SSH key Secrets.

A user's storage claim and key Secret are made on their first launch and
reused by every launch after it. Asking the API server on each launch
whether they still exist costs a create (answered 409) and a read for each,
on the launch's critical path. Instead the hub watches both kinds of object
(KubeSpawner's own reflector, the one it uses for pods, filtered to hubext's
label), and a launch whose object is in the watched set skips the requests.

The watch keeps the set right: an object an admin deletes leaves it within
moments, and the next launch creates it again through the usual 409-safe
path. A watch that has given up is not trusted (`watching`): launches ask
the API server, and the next one that must starts the watch again. So does an object that is being deleted, or one recorded as another
user's: only a claim or Secret that is plainly the user's own is taken
from the set.

Watched Secrets are kept without their private key: the reflector stores
each one with its metadata and public key only, so the hub's memory holds
no user's private key beyond the launch that makes it.
"""

from __future__ import annotations

import base64

from kubespawner.reflector import ResourceReflector
from traitlets import validate

from .names import MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION
from .sshkeys import PRIVATE_KEY, PUBLIC_KEY

HUBEXT_OBJECTS = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


class ClaimReflector(ResourceReflector):
    """hubext's PersistentVolumeClaims in the spawner's namespace."""

    kind = "persistentvolumeclaims"
    list_method_name = "list_namespaced_persistent_volume_claim"
    labels = HUBEXT_OBJECTS


def _public_part(secret: dict) -> dict:
    """A Secret without its private key: metadata, public key, and whether
    it holds a private key at all."""
    data = secret.get("data") or {}
    return {
        "metadata": secret.get("metadata") or {},
        "public_key": data.get(PUBLIC_KEY) or "",
        "has_private_key": bool(data.get(PRIVATE_KEY)),
    }


class _PublicParts(dict):
    """The reflector's store: every Secret put in is kept without its key."""

    def __setitem__(self, key, secret):
        super().__setitem__(key, _public_part(secret))


class KeySecretReflector(ResourceReflector):
    """hubext's SSH key Secrets in the spawner's namespace, private keys
    dropped as they arrive."""

    kind = "secrets"
    list_method_name = "list_namespaced_secret"
    labels = HUBEXT_OBJECTS

    @validate("resources")
    def _drop_private_keys(self, proposal):
        store = _PublicParts()
        for key, secret in proposal["value"].items():
            store[key] = secret
        return store


def watching(reflector) -> bool:
    """True while `reflector` has loaded and still watches. A reflector
    that gave up (the API server unreachable for too long) keeps its last
    set, which then goes stale: an object deleted since would count as
    present for good."""
    if reflector is None:
        return False
    loaded = reflector.first_load_future
    if not loaded.done() or loaded.cancelled() or loaded.exception() is not None:
        return False
    task = reflector.watch_task
    return task is not None and not task.done()


def _plainly_owned(obj: dict | None, username: str) -> bool:
    meta = (obj or {}).get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (
        bool(meta)
        and annotations.get(OWNER_ANNOTATION) == username
        and not meta.get("deletionTimestamp")
    )


def unseen(reflector, namespace: str, name: str) -> bool:
    """True when the watch runs and has no object `name` at all: most
    likely none exists yet (a user's first launch). False without a watch,
    or for an object it has but cannot hand out as it is."""
    return reflector is not None and f"{namespace}/{name}" not in reflector.resources


def known_claim(reflector, namespace: str, name: str, username: str) -> bool:
    """True when the watched set has `username`'s claim `name`, not being
    deleted; False means: ask the API server."""
    if reflector is None:
        return False
    return _plainly_owned(reflector.resources.get(f"{namespace}/{name}"), username)


def known_public_key(reflector, namespace: str, name: str, username: str):
    """`username`'s public key from the watched Secret `name`, or None
    (then ask the API server, which also explains any problem)."""
    if reflector is None:
        return None
    secret = reflector.resources.get(f"{namespace}/{name}")
    if not _plainly_owned(secret, username) or not secret["has_private_key"]:
        return None
    if not secret["public_key"]:
        return None
    try:
        return base64.b64decode(secret["public_key"], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
