"""What the hub already knows exists: the users' claims and SSH key Secrets.

A user's storage claim and key Secret are made on their first launch and
reused by every launch after it. Asking the API server on each launch
whether they still exist costs a create (answered 409) and a read for each,
on the launch's critical path. Instead the hub watches both kinds of object
(KubeSpawner's own reflector, the one it uses for pods, filtered to hubext's
label), and a launch whose object is in the watched set skips the requests.

The watch keeps the set right: an object an admin deletes leaves it within
moments, and the next launch creates it again through the usual 409-safe
path. So does an object that is being deleted, or one recorded as another
user's: only a claim or Secret that is plainly the user's own is taken
from the set. A watch that has given up is not trusted (`watching`):
launches ask the API server, and the next one that must starts the watch
again.

Secrets are watched as metadata only: the API server sends no Secret's
data to the watch, and the public key comes from an annotation on the
Secret, so the hub's memory holds no user's private key beyond the launch
that makes it.
"""

from __future__ import annotations

import json

from kubespawner.reflector import ResourceReflector
from traitlets import validate

from .names import MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION
from .sshkeys import PUBLIC_KEY_ANNOTATION

HUBEXT_OBJECTS = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


class ClaimReflector(ResourceReflector):
    """hubext's PersistentVolumeClaims in the spawner's namespace."""

    kind = "persistentvolumeclaims"
    list_method_name = "list_namespaced_persistent_volume_claim"
    labels = HUBEXT_OBJECTS


#: What the watch of key Secrets asks for: each Secret's metadata only
#: (`PartialObjectMetadata`), never its data.
METADATA_ONLY = (
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
)
_QUERY_NAMES = {
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
    "resource_version": "resourceVersion",
    "resource_version_match": "resourceVersionMatch",
    "timeout_seconds": "timeoutSeconds",
    "watch": "watch",
}


class SecretMetadataApi:
    """Lists and watches Secrets as metadata only.

    The client's own `list_namespaced_secret` always asks for whole Secrets
    (it overwrites any `Accept` header), so each re-list of the watch, every
    10 to 30 s, would bring every user's private key into the hub: 5,000
    users' Secrets take 150 ms of the hub's event loop to decode, their
    metadata a fraction of that.
    """

    def __init__(self, core_api):
        self.api_client = core_api.api_client

    async def list_namespaced_secret_metadata(
        self, namespace, _preload_content=False, _request_timeout=None, **params
    ):
        """The answer to a list (`watch` unset) or a watch of the Secrets'
        metadata, unread, as the reflector expects it."""
        query = [
            (_QUERY_NAMES.get(key, key), value)
            for key, value in params.items()
            if value not in (None, "")
        ]
        response = await self.api_client.call_api(
            "/api/v1/namespaces/{namespace}/secrets",
            "GET",
            path_params={"namespace": namespace},
            query_params=query,
            header_params={"Accept": METADATA_ONLY},
            response_types_map={},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=_request_timeout,
            _return_http_data_only=True,
        )
        if params.get("watch"):
            return response
        async with response:
            body = await response.read()
        return _ListAnswer(response, body)


class _ListAnswer:
    """A read list answer whose `items` is always a list: the API server
    leaves `items` out of an empty metadata list, where the reflector
    expects `[]`."""

    def __init__(self, response, body: bytes):
        self.ok, self.status, self.reason = (
            response.ok,
            response.status,
            response.reason,
        )
        # an empty list comes with `"items":null` (or none): only then is it
        # decoded here, so a list of every user's Secret is decoded once
        if self.ok and (b'"items"' not in body or b'"items":null' in body):
            listed = json.loads(body)
            listed["items"] = []
            body = json.dumps(listed).encode()
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def json(self):
        return json.loads(self._body)


class _MetadataOnly(dict):
    """The reflector's store: whatever arrives, only its metadata is kept
    (a server that ignored the `Accept` header still leaves no key here)."""

    def __setitem__(self, key, obj):
        super().__setitem__(key, {"metadata": (obj or {}).get("metadata") or {}})


class KeySecretReflector(ResourceReflector):
    """hubext's SSH key Secrets in the spawner's namespace, as metadata: the
    owner and the public key (`PUBLIC_KEY_ANNOTATION`), never the private key."""

    kind = "secrets"
    list_method_name = "list_namespaced_secret_metadata"
    labels = HUBEXT_OBJECTS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.api = SecretMetadataApi(self.api)

    @validate("resources")
    def _keep_metadata_only(self, proposal):
        store = _MetadataOnly()
        for key, obj in proposal["value"].items():
            store[key] = obj
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
    (then ask the API server, which also explains any problem; a Secret
    made before the key was recorded in its annotation is always read)."""
    if reflector is None:
        return None
    secret = reflector.resources.get(f"{namespace}/{name}")
    if not _plainly_owned(secret, username):
        return None
    key = (secret["metadata"].get("annotations") or {}).get(PUBLIC_KEY_ANNOTATION)
    return key if isinstance(key, str) and key.startswith("ssh-") else None
