"""The storage builders: literal manifests, schema validation, copied inputs."""

import json

import kubernetes_validate
import pytest

from hubext import names, storage

K8S_VERSION = "1.35.0"


def validate(manifest):
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_pvc_manifest_is_exactly_this():
    manifest = storage.make_user_pvc(
        names.pvc_name("Alice"),
        "Alice",
        storage_class="nfs-csi",
        size="20Gi",
        labels={"team": "bio"},
        annotations={"note": "x"},
    )
    assert json.loads(json.dumps(manifest)) == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "alice---3bc51062-nfs-pvc",
            "labels": {
                "app.kubernetes.io/managed-by": "hubext",
                "hubext/username": "alice---3bc51062",
                "team": "bio",
            },
            "annotations": {"note": "x", "hubext/username": "Alice"},
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "20Gi"}},
            "storageClassName": "nfs-csi",
        },
    }
    validate(manifest)


def test_no_storage_class_means_cluster_default():
    manifest = storage.make_user_pvc("bob-nfs-pvc", "bob", None, "1Gi")
    assert "storageClassName" not in manifest["spec"]
    validate(manifest)
    empty = storage.make_user_pvc("bob-nfs-pvc", "bob", "", "1Gi")
    assert empty["spec"]["storageClassName"] == ""
    validate(empty)


def test_owner_annotation_cannot_be_overridden():
    manifest = storage.make_user_pvc(
        "bob-nfs-pvc", "bob", "nfs", "1Gi", annotations={"hubext/username": "eve"}
    )
    assert manifest["metadata"]["annotations"]["hubext/username"] == "bob"


def test_mutable_inputs_are_copied():
    labels, annotations, modes = {"a": "1"}, {"b": "2"}, ["ReadWriteMany"]
    manifest = storage.make_user_pvc(
        "bob-nfs-pvc", "bob", "nfs", "1Gi", modes, labels, annotations
    )
    manifest["metadata"]["labels"]["a"] = "changed"
    manifest["metadata"]["annotations"]["b"] = "changed"
    manifest["spec"]["accessModes"].append("ReadOnlyMany")
    assert labels == {"a": "1"}
    assert annotations == {"b": "2"}
    assert modes == ["ReadWriteMany"]


@pytest.mark.parametrize(
    "modes, size, words",
    [
        (["ReadWriteAll"], "1Gi", "ReadWriteAll"),
        ([], "1Gi", "access modes []"),
        (["ReadWriteMany"], 10, "'10Gi'"),
        (["ReadWriteMany"], " ", "quantity"),
    ],
)
def test_bad_inputs_say_what_and_how(modes, size, words):
    with pytest.raises(ValueError) as info:
        storage.make_user_pvc("bob-nfs-pvc", "bob", "nfs", size, modes)
    assert words in str(info.value)
    assert "'bob'" in str(info.value)


def test_pod_parts_are_exactly_these_and_valid_in_a_pod():
    volume = storage.home_volume("alice-nfs-pvc")
    mount = storage.home_volume_mount(names.home_volume_path("alice"))
    assert volume == {
        "name": "hubext-home",
        "persistentVolumeClaim": {"claimName": "alice-nfs-pvc"},
    }
    assert mount == {"name": "hubext-home", "mountPath": "/home/alice-nfs-pvc"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-alice"},
        "spec": {
            "volumes": [volume],
            "containers": [
                {"name": "notebook", "image": "busybox", "volumeMounts": [mount]}
            ],
        },
    }
    validate(pod)


def test_validation_catches_a_broken_manifest():
    """The schema check itself can fail: a misspelt field is refused."""
    manifest = storage.make_user_pvc("bob-nfs-pvc", "bob", "nfs", "1Gi")
    manifest["spec"]["accesModes"] = manifest["spec"].pop("accessModes")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(manifest)
