"""A pod's volumes, made on the kubelet's disk the way a real kubelet does.

- `emptyDir`: a fresh directory of the pod, mode 0777; with the pod's
  `fsGroup` it belongs to that group and is setgid (kubelet's ownership
  rule for writable volumes).
- `secret` and `configMap`: the keys (or the listed `items`) as files with
  `defaultMode` or the item's `mode`, owned by root, in the kubelet's
  atomic layout: a timestamped directory, a `..data` symlink to it, and one
  symlink per top-level entry. With `fsGroup` the files belong to that
  group and are made group-readable (mode | 0440), as the kubelet does for
  read-only volumes.
- `persistentVolumeClaim`: one directory per (namespace, claim name),
  shared by every pod that mounts the claim and kept until the claim is
  deleted; it stands in for the NFS export behind the claim. Created
  group-writable and setgid for the first pod's `fsGroup` (else 0777).

Any other volume type is left out and reported, never faked.
"""

import base64
import datetime
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("devstack.volumes")

DEFAULT_MODE = 0o644
_SOURCE_KINDS = {"secret": "secretName", "configMap": "name"}


class MountError(Exception):
    """A volume cannot be set up: the kubelet's FailedMount."""


def sources_needed(pod: dict) -> list[tuple[str, str]]:
    """The API objects the pod's volumes read: ("secret"|"configMap"|"pvc", name)."""
    needed = []
    for volume in pod["spec"].get("volumes") or []:
        for kind, key in _SOURCE_KINDS.items():
            if kind in volume:
                needed.append((kind, volume[kind].get(key, "")))
        if "persistentVolumeClaim" in volume:
            needed.append(("pvc", volume["persistentVolumeClaim"]["claimName"]))
    return needed


def object_data(kind: str, data: dict | None, binary_data: dict | None = None):
    """A Secret's (base64 `data`) or ConfigMap's (`data` and `binaryData`)
    keys as bytes."""
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (data or {}).items()}
    out = {k: v.encode() for k, v in (data or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (binary_data or {}).items()})
    return out


def projected_files(source: dict, data: dict, name: str) -> dict[str, tuple]:
    """{relative path: (bytes, mode)} for a secret or configMap volume source.

    Without `items` every key becomes a file; with `items` only those, at
    their `path`. A listed key that is missing fails the mount unless the
    source is `optional`, as on Kubernetes.
    """
    default = source.get("defaultMode", DEFAULT_MODE)
    items = source.get("items")
    if not items:
        return {key: (value, default) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise MountError(f"{name} has no key {item['key']!r}")
        files[item["path"]] = (data[item["key"]], item.get("mode", default))
    return files


def write_atomic(directory: Path, files: dict, fs_group: int | None) -> None:
    """Write `files` in the kubelet's `..data` layout, owned root:fs_group."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y_%m_%d_%H_%M_%S")
    payload = directory / f"..{stamp}.{os.getpid()}"
    payload.mkdir()
    for rel, (value, mode) in files.items():
        path = payload / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value)
        _own(path, mode, fs_group, read_only=True)
    (directory / "..data").symlink_to(payload.name)
    for top in sorted({rel.split("/")[0] for rel in files}):
        (directory / top).symlink_to(f"..data/{top}")
    for path in [directory, payload, *(p for p in payload.rglob("*") if p.is_dir())]:
        _own(path, 0o755, fs_group, read_only=True)


def _own(path: Path, mode: int, fs_group: int | None, read_only: bool) -> None:
    """The kubelet's fsGroup rule: group fs_group, group access added."""
    if fs_group is not None:
        os.chown(path, 0, fs_group)
        mode |= 0o440 if read_only else 0o660
        if path.is_dir():
            mode |= 0o2110
    os.chmod(path, mode)


def empty_dir(directory: Path, fs_group: int | None) -> Path:
    """A fresh emptyDir: 0777, setgid and group fs_group when given."""
    directory.mkdir(parents=True)
    _own(directory, 0o777, fs_group, read_only=False)
    return directory


def claim_dir(root: Path, namespace: str, claim: str, fs_group: int | None) -> Path:
    """The claim's shared directory, made on first use and then reused."""
    directory = root / namespace / claim
    if not directory.exists():
        directory.mkdir(parents=True)
        if fs_group is None:
            os.chmod(directory, 0o777)
        else:
            os.chown(directory, 0, fs_group)
            os.chmod(directory, 0o2775)
    return directory


def remove_claim(root: Path, namespace: str, claim: str) -> None:
    """Forget a deleted claim's data (the Delete reclaim policy)."""
    shutil.rmtree(root / namespace / claim, ignore_errors=True)


def prepare(pod: dict, pod_dir: Path, claims_root: Path, sources: dict) -> dict:
    """Make every volume of the pod; {volume name: host dir, or None}.

    `sources` maps each entry of `sources_needed(pod)` to the object's data
    (`object_data`), or to None when the object does not exist; a missing
    object fails the mount unless the volume is `optional`.
    """
    fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
    namespace = pod["metadata"]["namespace"]
    paths: dict[str, Path | None] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        where = pod_dir / "volumes" / name
        if "emptyDir" in volume:
            paths[name] = empty_dir(where, fs_group)
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if sources.get(("pvc", claim)) is None:
                raise MountError(
                    f'volume "{name}": persistentvolumeclaim "{claim}" not found'
                )
            paths[name] = claim_dir(claims_root, namespace, claim, fs_group)
        elif kind := next((k for k in _SOURCE_KINDS if k in volume), None):
            paths[name] = _projected(volume, kind, where, sources, fs_group)
        else:
            kinds = sorted(set(volume) - {"name"})
            log.warning(
                "pod %s: volume %s (%s) not supported, left unmounted",
                pod["metadata"]["name"],
                name,
                ", ".join(kinds),
            )
            paths[name] = None
    return paths


def _projected(volume: dict, kind: str, where: Path, sources, fs_group) -> Path:
    source = volume[kind]
    obj_name = source.get(_SOURCE_KINDS[kind], "")
    data = sources.get((kind, obj_name))
    label = f'volume "{volume["name"]}": {kind.lower()} "{obj_name}"'
    if data is None:
        if not source.get("optional"):
            raise MountError(f"{label} not found")
        data = {}
    write_atomic(where, projected_files(source, data, label), fs_group)
    return where
