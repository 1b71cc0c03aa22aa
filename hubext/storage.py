"""The user's shared storage: one ReadWriteMany claim, mounted in every server.

Each user has one PersistentVolumeClaim (normally on an NFS storage class)
that every one of their servers mounts at the same path, so data written in
one project is there in all the others. The claim outlives every server:
nothing in this module deletes or changes an existing claim, and stopping,
deleting or culling a server never touches it.

The builders are pure (plain dicts in, plain dicts out, inputs copied); the
only I/O is `ensure_pvc`.
"""

import logging

from kubernetes_asyncio.client.rest import ApiException

from .errors import UserFacingError
from .names import OWNER_ANNOTATION, check_owner, owner_annotations, user_labels

HOME_VOLUME_NAME = "hubext-home"
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


class StorageUnavailable(UserFacingError):
    """The user's claim exists but cannot be used right now."""


def make_user_pvc(
    name: str,
    username: str,
    storage_class: str | None,
    size: str,
    access_modes=("ReadWriteMany",),
    labels: dict | None = None,
    annotations: dict | None = None,
) -> dict:
    """The manifest of a user's storage claim, as a plain dict.

    `storage_class=None` leaves the class out, so the cluster default is
    used; `""` asks for no dynamic provisioning (a pre-made volume). The
    exact `username` is recorded in an annotation (it wins over `annotations`)
    so `ensure_pvc` can refuse a claim that belongs to someone else; the
    hubext labels come first and `labels` may add to them.
    """
    modes = list(access_modes)
    bad = [m for m in modes if m not in ACCESS_MODES]
    if not modes or bad:
        raise ValueError(
            f"Storage access modes {modes!r} for user {username!r} are not "
            f"valid: use one or more of {', '.join(ACCESS_MODES)}, e.g. "
            "['ReadWriteMany'] for storage shared by all of a user's servers."
        )
    if not isinstance(size, str) or not size.strip():
        raise ValueError(
            f"Storage size {size!r} for user {username!r} is not a Kubernetes "
            "quantity: write it as a string with a unit, e.g. '10Gi'."
        )
    spec = {"accessModes": modes, "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "labels": {**user_labels(username), **(labels or {})},
            "annotations": {**(annotations or {}), **owner_annotations(username)},
        },
        "spec": spec,
    }


def home_volume(pvc_name: str, volume_name: str = HOME_VOLUME_NAME) -> dict:
    """The pod `volumes` entry for the user's claim."""
    return {"name": volume_name, "persistentVolumeClaim": {"claimName": pvc_name}}


def home_volume_mount(mount_path: str, volume_name: str = HOME_VOLUME_NAME) -> dict:
    """The notebook container's `volumeMounts` entry for the user's claim."""
    return {"name": volume_name, "mountPath": mount_path}


def _spec_summary(spec) -> dict:
    """The parts of a claim's spec we set, from a model or a dict manifest."""
    if isinstance(spec, dict):
        return {
            "storageClassName": spec.get("storageClassName"),
            "accessModes": list(spec.get("accessModes") or []),
            "storage": (spec.get("resources") or {}).get("requests", {}).get("storage"),
        }
    requests = (spec.resources.requests if spec.resources else None) or {}
    return {
        "storageClassName": spec.storage_class_name,
        "accessModes": list(spec.access_modes or []),
        "storage": requests.get("storage"),
    }


def _spec_differences(wanted: dict, existing) -> list[str]:
    """Human-readable differences between the wanted and an existing claim."""
    want = _spec_summary(wanted["spec"])
    have = _spec_summary(existing.spec)
    diffs = []
    for key, value in want.items():
        if key == "storageClassName" and value is None:
            continue  # we asked for the cluster default, whatever it was
        if have[key] != value:
            diffs.append(f"{key}: wanted {value!r}, has {have[key]!r}")
    return diffs


async def ensure_pvc(api, namespace: str, manifest: dict, log=None) -> str:
    """Create the user's claim unless it exists; return "created" or "exists".

    An existing claim is used as it is, never modified or deleted: if its
    spec differs from the wanted one (an admin changed the size or class
    later) the difference is logged. A claim recorded as another user's, or
    one being deleted, raises a UserFacingError instead of being mounted.
    """
    log = log or logging.getLogger(__name__)
    name = manifest["metadata"]["name"]
    username = manifest["metadata"].get("annotations", {}).get(OWNER_ANNOTATION)
    try:
        await api.create_namespaced_persistent_volume_claim(namespace, manifest)
    except ApiException as e:
        if e.status != 409:
            raise
    else:
        log.info("Created PVC %s/%s", namespace, name)
        return "created"

    existing = await api.read_namespaced_persistent_volume_claim(name, namespace)
    if username is not None:
        check_owner("storage volume", name, existing.metadata, username, log=log)
    if existing.metadata.deletion_timestamp is not None:
        raise StorageUnavailable(
            f"Your storage volume '{name}' is being deleted, so it cannot be "
            "mounted. Wait a minute and launch again; if this persists, "
            "contact the hub admins.",
            namespace=namespace,
            name=name,
        )
    diffs = _spec_differences(manifest, existing)
    if diffs:
        log.warning(
            "PVC %s/%s exists with a different spec, used unchanged: %s",
            namespace,
            name,
            "; ".join(diffs),
        )
    return "exists"
