"""The local control plane is a real Kubernetes API server.

The cluster tests run against whichever cluster the session uses (see
`tests/fixtures/k8s.py`): they check behaviour any conformant apiserver has,
plus, on the local one, the pinned version. The last test runs a stock
KubeSpawner hub (no hubext code) through the cluster and the test kubelet.
The podspec tests at the top need no cluster.
"""

import asyncio
import json
import secrets

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException
from tornado.httpclient import AsyncHTTPClient

from devstack import podspec, versions
from tests.helpers.launch import wait_for

# -- the test kubelet's pod translation (pure) ------------------------------

POD = {
    "metadata": {
        "name": "jupyter-alice",
        "namespace": "ns1",
        "uid": "u-1",
        "labels": {"app": "jupyterhub"},
    },
    "spec": {
        "nodeName": "n1",
        "containers": [
            {
                "name": "notebook",
                "image": "example/image:tag",
                "command": ["jupyterhub-singleuser"],
                "args": [
                    "--ip=0.0.0.0",
                    "--port=8888",
                    "--debug",
                    "--SingleUserNotebookApp.default_url=/lab",
                ],
                "ports": [{"name": "notebook-port", "containerPort": 8888}],
                "env": [
                    {"name": "A", "value": "a"},
                    {"name": "B", "value": "$(A)-b"},
                    {
                        "name": "POD",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                    },
                    {
                        "name": "IP",
                        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                    },
                    {
                        "name": "APP",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": "metadata.labels['app']"}
                        },
                    },
                    {
                        "name": "TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}},
                    },
                    {
                        "name": "GONE",
                        "valueFrom": {
                            "secretKeyRef": {
                                "name": "missing",
                                "key": "k",
                                "optional": True,
                            }
                        },
                    },
                ],
            }
        ],
    },
}


def test_resolve_env():
    lookup = {("secret", "s", "token"): "t0k"}
    env = podspec.resolve_env(
        POD,
        POD["spec"]["containers"][0],
        "127.0.0.7",
        "127.0.0.1",
        lambda kind, name, key: lookup.get((kind, name, key)),
    )
    assert env == {
        "A": "a",
        "B": "a-b",
        "POD": "jupyter-alice",
        "IP": "127.0.0.7",
        "APP": "jupyterhub",
        "TOKEN": "t0k",
    }


def test_singleuser_args_bind_to_the_pod_address():
    args = podspec.singleuser_args(POD["spec"]["containers"][0], "127.0.0.9", 8888)
    assert args == [
        "--debug",
        "--SingleUserNotebookApp.default_url=/lab",
        "--ip=127.0.0.9",
        "--port=8888",
    ]


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://0.0.0.0:8888/user/a/p/", "http://127.0.0.5:8888/user/a/p/"),
        ("http://:8888/user/a/", "http://127.0.0.5:8888/user/a/"),
    ],
)
def test_rebind_service_url(url, expected):
    assert podspec.rebind_service_url(url, "127.0.0.5", 8888) == expected


def test_running_status_reports_the_loopback_address():
    status = podspec.running_status(POD, "127.0.0.3", "127.0.0.1", 42)
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.0.0.3"
    assert status["podIPs"] == [{"ip": "127.0.0.3"}]
    assert status["hostIP"] == "127.0.0.1"
    assert [c["type"] for c in status["conditions"] if c["status"] == "True"] == [
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    ]
    assert [c["ready"] for c in status["containerStatuses"]] == [True]


# -- a real apiserver ------------------------------------------------------


def _config_map(name, labels=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"k": "v"}}


@pytest.mark.cluster
async def test_version_is_the_pinned_one(kube_api, control_plane):
    info = await client.VersionApi(kube_api).get_code()
    if control_plane.local:
        assert info.git_version == versions.KUBERNETES_VERSION
        major, minor = versions.KUBERNETES_VERSION.lstrip("v").split(".")[:2]
        assert (info.major, info.minor) == (major, minor)
    else:
        assert info.git_version.startswith("v1.")


@pytest.mark.cluster
async def test_invalid_name_is_rejected_with_the_real_error(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_config_map(k8s_namespace, _config_map("Bad_Name"))
    assert err.value.status == 422
    body = json.loads(err.value.body)
    assert body["reason"] == "Invalid"
    assert (
        'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'
        in (body["message"])
    )


@pytest.mark.cluster
async def test_pvc_without_storage_request_is_rejected(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    pvc = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {}}},
    }
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_persistent_volume_claim(k8s_namespace, pvc)
    assert err.value.status == 422
    assert (
        "spec.resources[storage]: Required value"
        in json.loads(err.value.body)["message"]
    )


@pytest.mark.cluster
async def test_duplicate_create_is_a_409(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_config_map(k8s_namespace, _config_map("twice"))
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_config_map(k8s_namespace, _config_map("twice"))
    assert err.value.status == 409
    body = json.loads(err.value.body)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "twice" already exists'


@pytest.mark.cluster
async def test_list_and_watch_with_label_selectors(kube_api, k8s_namespace):
    core = client.CoreV1Api(kube_api)
    for name, team in [("a1", "a"), ("a2", "a"), ("b1", "b")]:
        await core.create_namespaced_config_map(
            k8s_namespace, _config_map(name, {"team": team})
        )
    listed = await core.list_namespaced_config_map(
        k8s_namespace, label_selector="team=a"
    )
    assert sorted(cm.metadata.name for cm in listed.items) == ["a1", "a2"]
    notin = await core.list_namespaced_config_map(
        k8s_namespace, label_selector="team notin (a)"
    )
    assert [cm.metadata.name for cm in notin.items] == ["b1"]

    seen = []

    async def follow():
        async with watch.Watch().stream(
            core.list_namespaced_config_map,
            k8s_namespace,
            label_selector="team=b",
            resource_version=listed.metadata.resource_version,
        ) as stream:
            async for event in stream:
                seen.append((event["type"], event["object"].metadata.name))
                if event["object"].metadata.name == "b2":
                    return

    task = asyncio.create_task(follow())
    await core.create_namespaced_config_map(
        k8s_namespace, _config_map("a3", {"team": "a"})
    )
    await core.create_namespaced_config_map(
        k8s_namespace, _config_map("b2", {"team": "b"})
    )
    await asyncio.wait_for(task, 30)
    # b1 predates the listed version; a3 does not match the selector
    assert seen == [("ADDED", "b2")]


# -- a stock KubeSpawner hub on this cluster ----------------------------------

KUBESPAWNER_CONFIG = """
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.KubeSpawner.namespace = "{namespace}"
c.KubeSpawner.image = "quay.io/jupyter/base-notebook:2025-01-01"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.start_timeout = 60
c.KubeSpawner.http_timeout = 60
"""


async def _server_state(hub, user, name):
    code, model = await hub.api("GET", f"/users/{user}")
    assert code == 200, model
    return (model.get("servers") or {}).get(name)


@pytest.mark.cluster
@pytest.mark.hub
@pytest.mark.slow
async def test_stock_kubespawner_spawns_through_the_control_plane(
    hub_factory, kubeconfig, kube_api, k8s_namespace, test_kubelet
):
    hub = await hub_factory(
        KUBESPAWNER_CONFIG.format(namespace=k8s_namespace),
        env={"KUBECONFIG": str(kubeconfig)},
    )
    core = client.CoreV1Api(kube_api)
    code, _ = await hub.api("POST", "/users/alice")
    assert code == 201
    code, body = await hub.api("POST", "/users/alice/servers/p1", body={})
    assert code in (201, 202), body

    async def ready():
        state = await _server_state(hub, "alice", "p1")
        # done once ready, or once the spawn has given up (not pending)
        return state if state and (state["ready"] or not state["pending"]) else None

    state = await wait_for(ready, 90, "spawn finished")
    assert state["ready"], "spawn failed; hub log:\n" + hub.log_text()[-4000:]

    pods = await core.list_namespaced_pod(k8s_namespace)
    assert len(pods.items) == 1
    pod = pods.items[0]
    assert pod.status.phase == "Running"
    assert pod.status.pod_ip.startswith("127.") and pod.status.pod_ip != "127.0.0.1"

    # through the real proxy to the real single-user server
    resp = await AsyncHTTPClient().fetch(
        f"{hub.url}/user/alice/p1/api/status",
        headers={"Authorization": f"token {hub.admin_token}"},
        raise_error=False,
    )
    assert resp.code == 200, resp.body
    assert "started" in json.loads(resp.body)
    if test_kubelet is not None:
        assert (
            test_kubelet.find(k8s_namespace, pod.metadata.name).ip == pod.status.pod_ip
        )

    code, _ = await hub.api("DELETE", "/users/alice/servers/p1")
    assert code in (202, 204)

    async def pod_gone():
        listed = await core.list_namespaced_pod(k8s_namespace)
        return not listed.items

    await wait_for(pod_gone, 60, "pod removed")
    if test_kubelet is not None:
        assert test_kubelet.find(k8s_namespace, pod.metadata.name) is None
        # and the single-user process is gone with it
        with pytest.raises(OSError):
            await asyncio.open_connection(pod.status.pod_ip, 8888)


# -- the test kubelet on its own -------------------------------------------


def _pod(name, env):
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": "example/never-pulled",
                    "command": ["jupyterhub-singleuser"],
                    "ports": [{"name": "notebook-port", "containerPort": 8888}],
                    "env": env,
                }
            ]
        },
    }


async def _wait_phase(core, namespace, name, phases, timeout=60):
    async def phase():
        pod = await core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in phases else None

    return await wait_for(phase, timeout, f"pod {name} in {phases}")


@pytest.mark.cluster
async def test_kubelet_refuses_a_hub_outside_loopback(
    kube_api, k8s_namespace, test_kubelet
):
    if test_kubelet is None:
        pytest.skip("checks the local test kubelet; another cluster runs images")
    core = client.CoreV1Api(kube_api)
    env = [{"name": "JUPYTERHUB_API_URL", "value": "http://10.1.2.3:8081/hub/api"}]
    await core.create_namespaced_pod(k8s_namespace, _pod("remote", env))
    pod = await _wait_phase(core, k8s_namespace, "remote", {"Failed"})
    assert "JUPYTERHUB_API_URL=http://10.1.2.3:8081/hub/api is not a loopback" in (
        pod.status.message
    )
    assert pod.status.pod_ip is None
    assert test_kubelet.find(k8s_namespace, "remote").proc is None


@pytest.mark.cluster
async def test_kubelet_reports_a_server_that_cannot_start(
    kube_api, k8s_namespace, test_kubelet
):
    if test_kubelet is None:
        pytest.skip("checks the local test kubelet; another cluster runs images")
    core = client.CoreV1Api(kube_api)
    # no JUPYTERHUB_* variables at all: the real singleuser server gives up
    await core.create_namespaced_pod(k8s_namespace, _pod("broken", []))
    pod = await _wait_phase(core, k8s_namespace, "broken", {"Failed"})
    state = pod.status.container_statuses[0].state.terminated
    assert state.exit_code != 0
    assert "JUPYTERHUB" in pod.status.message
    # deleting it completes without any controller
    await core.delete_namespaced_pod("broken", k8s_namespace)

    async def gone():
        listed = await core.list_namespaced_pod(k8s_namespace)
        return not listed.items

    await wait_for(gone, 30, "pod deleted")


@pytest.mark.cluster
async def test_namespace_deletion_completes_and_claims_bind(kube_api, test_kubelet):
    core = client.CoreV1Api(kube_api)
    name = f"hubext-test-finalize-{secrets.token_hex(3)}"
    await core.create_namespace({"metadata": {"name": name}})
    pvc = {
        "metadata": {"name": "home"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    await core.create_namespaced_persistent_volume_claim(name, pvc)
    if test_kubelet is not None:  # no provisioner locally: the kubelet binds

        async def bound():
            claim = await core.read_namespaced_persistent_volume_claim("home", name)
            return claim.status.phase == "Bound"

        await wait_for(bound, 30, "claim bound")
    await core.delete_namespace(name)

    async def gone():
        try:
            await core.read_namespace(name)
        except ApiException as e:
            return e.status == 404
        return False

    await wait_for(gone, 120, "namespace removed")
