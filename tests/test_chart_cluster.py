"""The chart installed by the real helm into the local API server, and a real
hub configured only from what it installed; the install guide's commands
installing it and the official BinderHub chart, whose own config files then
run on what the API server holds."""

import asyncio
import base64
import os
import subprocess

import pytest
import yaml
from kubernetes_asyncio import client

from tests.fixtures.hubext_hub import REPO, RESOURCES, SHA
from tests.helpers.launch import binder_user_options, launch, server_name
from tests.test_chart import CHART, FULL, ROOT
from tests.test_official_charts import (
    RUN_ON_THE_CLUSTER,
    doc_commands,
    effective_of,
    examples,
    finish,
    guide_workdir,
    official_binderhub_chart,
    run_guide_command,
    start_in_pod,
)

pytestmark = [pytest.mark.cluster]


@pytest.fixture(scope="session")
def helm() -> str:
    from devstack.build import build_helm

    return str(build_helm())


def helm_install(helm, kubeconfig, namespace, *args):
    result = subprocess.run(
        [helm, "install", "hubext", str(CHART), "--namespace", namespace]
        + ["--kubeconfig", str(kubeconfig), "--wait", "--timeout", "60s", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_helm_installs_the_chart_into_the_cluster(
    helm, kubeconfig, kube_api, k8s_namespace
):
    notes = helm_install(helm, kubeconfig, k8s_namespace, "-f", str(FULL))
    assert "hubext chart binderhub-values --name hubext-full" in notes
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    config = await core.read_namespaced_config_map("hubext-full", k8s_namespace)
    settings = yaml.safe_load(config.data["hubext.yaml"])
    assert settings["quota"]["groupLimits"] == {"teaching-staff": 10, "research": 0}
    secret = await core.read_namespaced_secret(
        "hubext-full-repo-host-tokens", k8s_namespace
    )
    tokens = yaml.safe_load(base64.b64decode(secret.data["tokens.yaml"]))
    assert tokens == {"gitlab.example.edu": "glpat-example"}
    role = await rbac.read_namespaced_role("hubext-full", k8s_namespace)
    assert role.rules[0].resources == ["persistentvolumeclaims", "secrets"]
    binding = await rbac.read_namespaced_role_binding("hubext-full", k8s_namespace)
    assert binding.subjects[0].name == "hub"
    assert binding.subjects[0].namespace == k8s_namespace


@pytest.mark.hub
@pytest.mark.hub_version
@pytest.mark.slow
async def test_a_hub_configured_from_the_installed_chart_launches(
    helm, kubeconfig, kube_api, k8s_namespace, forge, hub_factory, test_kubelet
):
    forge.add(REPO, SHA, ".resources", RESOURCES)
    helm_install(
        helm,
        kubeconfig,
        k8s_namespace,
        "--set",
        "quota.defaultLimit=1",
        "--set",
        "resources.maxima.gpu=2",
        "--set",
        "storage.storageClassName=nfs",
        "--set",
        "allowedImages={registry.example.edu/binder/}",
        "--set",
        f"repoHosts.hosts.github\\.com.apiUrl={forge.url}",
        "--set",
        "idle.stateFile=idle-state.json",
    )
    core = client.CoreV1Api(kube_api)
    config = await core.read_namespaced_config_map("hubext", k8s_namespace)
    secret = await core.read_namespaced_secret("hubext-repo-host-tokens", k8s_namespace)
    hub_config = f"""
import pathlib, base64
here = pathlib.Path(c.JupyterHub.cookie_secret_file).parent
(here / "hubext.yaml").write_text({config.data["hubext.yaml"]!r})
(here / "tokens.yaml").write_bytes(base64.b64decode({secret.data["tokens.yaml"]!r}))
import hubext.z2jh
hubext.z2jh.configure(c, here / "hubext.yaml", tokens_file=here / "tokens.yaml")
# what the cluster provides in production, not hubext settings
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.KubeSpawner.namespace = "{k8s_namespace}"
c.KubeSpawner.image = "quay.io/jupyter/base-notebook:2025-01-01"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.start_timeout = 60
c.KubeSpawner.http_timeout = 60
"""
    hub = await hub_factory(hub_config, env={"KUBECONFIG": str(kubeconfig)})
    await hub.api("POST", "/users/alice")
    name = server_name(REPO)
    event = await launch(hub, "alice", name, binder_user_options(REPO, SHA))
    assert event.get("ready"), f"{event}\n{hub.log_text()[-4000:]}"
    [pod] = (await core.list_namespaced_pod(k8s_namespace)).items
    [notebook] = [c for c in pod.spec.containers if c.name == "notebook"]
    # .resources asks gpu=1, allowed by the chart's maxima.gpu=2
    assert notebook.resources.limits["nvidia.com/gpu"] == "1"
    assert notebook.resources.limits["cpu"] == "4"
    claim = await core.read_namespaced_persistent_volume_claim(
        "alice-nfs-pvc", k8s_namespace
    )
    assert claim.spec.storage_class_name == "nfs"
    # the chart's quota of 1 project holds on the hub
    second = await launch(
        hub, "alice", server_name(REPO), binder_user_options(REPO, SHA)
    )
    assert second.get("failed") and "You have 1 of 1 project" in second["message"]
    # and the idle service runs under the hub with its role
    code, services = await hub.api("GET", "/services")
    assert code == 200, services
    assert "hubext-idle" in services
    assert services["hubext-idle"]["command"][1:3] == ["-m", "hubext.idle"]


@pytest.fixture(scope="session")
def binderhub_chart(tmp_path_factory):
    return official_binderhub_chart(tmp_path_factory.mktemp("official-charts"))


async def namespace_objects(kube_api, namespace) -> list[dict]:
    """Deployments, ConfigMaps, Secrets and Services as the API server has them."""
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    objects = []
    for kind, call in (
        ("Deployment", apps.list_namespaced_deployment),
        ("ConfigMap", core.list_namespaced_config_map),
        ("Secret", core.list_namespaced_secret),
        ("Service", core.list_namespaced_service),
    ):
        for item in (await call(namespace)).items:
            obj = kube_api.sanitize_for_serialization(item)
            obj["kind"] = kind
            objects.append(obj)
    return objects


@pytest.mark.slow
async def test_the_guides_commands_install_both_charts_and_their_configs_run(
    helm, kubeconfig, kube_api, k8s_namespace, binderhub_chart, tmp_path
):
    """The install guide's helm and hubext commands, as written, with the
    local API server for the cluster and BinderHub's chart folder for
    jupyterhub/binderhub; then z2jh's and BinderHub's own config files run
    on the objects the API server holds."""
    admin = tmp_path / "admin"
    admin.mkdir()
    cwd = guide_workdir(admin)
    env = {"KUBECONFIG": str(kubeconfig)}
    ran = []
    try:
        for command in doc_commands():
            if not command.startswith(RUN_ON_THE_CLUSTER):
                continue
            command = command.replace(
                "--namespace binder", f"--namespace {k8s_namespace}"
            )
            command = command.replace(" jupyterhub/binderhub ", f" {binderhub_chart} ")
            result = await asyncio.to_thread(run_guide_command, command, cwd, helm, env)
            assert result.returncode == 0, f"{command}\n{result.stderr}"
            ran.append(command)
        assert len(ran) == 3, ran
        objects = await namespace_objects(kube_api, k8s_namespace)
        procs = {}
        for which, deployment, workdir in (
            ("hub", "hub", "/srv/jupyterhub"),
            ("binderhub", "binder", "/"),
        ):
            scratch = tmp_path / f"pod-{which}"
            scratch.mkdir()
            procs[which] = start_in_pod(
                which, objects, deployment, deployment, scratch, workdir
            )
        hub = effective_of("hub", await asyncio.to_thread(finish, procs["hub"]))
        binder = effective_of(
            "binderhub", await asyncio.to_thread(finish, procs["binderhub"])
        )
    finally:
        for release in ("binderhub", "hubext"):
            await asyncio.to_thread(
                subprocess.run,
                [helm, "uninstall", release, "--namespace", k8s_namespace],
                env={**os.environ, **env},
                capture_output=True,
                timeout=120,
            )
    assert hub["spawner_class"] == "hubext.spawner.HubextSpawner"
    assert hub["allow_named_servers"] is True
    assert hub["named_server_limit_per_user"] == "hubext.quota.named_server_limit"
    assert hub["pod"] == {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}
    assert hub["quota"] == binder["quota"]
    assert hub["quota"]["limit_for"]["bob@teaching-staff"] == 10
    assert binder["launcher"]["allow_named_servers"] is True
    assert binder["launcher"]["named_server_limit_per_user"] == 0
    assert binder["launcher"]["pre_launch_hook"] == "hubext.binderhub.pre_launch_hook"
    prefix = examples()["imagePrefix"]["imagePrefix"]
    assert binder["image_prefix"] == prefix
    assert hub["spawner"]["allowed_images"] == [prefix]
    # the image the admin built, from the overlay the guide's command made
    deployments = {
        o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"
    }
    [hub_ctr] = deployments["hub"]["spec"]["template"]["spec"]["containers"]
    assert hub_ctr["image"] == "registry.example.edu/hubext-hub:0.1.0"
