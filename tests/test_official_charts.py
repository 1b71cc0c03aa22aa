"""hubext with the official charts: BinderHub's chart (b9fad99, with z2jh
4.2.0 as its dependency) rendered by the real helm with hubext's overlay, and
the hubext chart beside it; then z2jh's own ``jupyterhub_config.py`` and
BinderHub's own ``binderhub_config.py`` executed on the rendered objects.

Each config file runs unmodified in a subprocess in a private mount
namespace (`devstack.mountns`, as the test kubelet runs containers) in
which every ConfigMap and Secret volume of the rendered Deployment is
mounted at its ``mountPath``, with the Deployment's environment and the
Service variables Kubernetes adds; ``tests/helpers/chart_effective.py``
loads it with the real JupyterHub or BinderHub application and reports what
instances built from it do: the HubextSpawner and its pod manifest,
BinderHub's Launcher imported under the rendered environment. Nothing here
connects anywhere.

The charts come from ``$HUBEXT_UPSTREAM_DIR`` (default
``../shared/upstream`` beside the clone); their chartpress placeholders are
filled as a release would. ``python -m tests.test_official_charts`` prints
the effective-configuration table.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from devstack import mountns
from hubext import chart, z2jh
from hubext.ahead import PREPARE_PATH
from hubext.idle.app import IdleService
from hubext.policypage import POLICY_PATH

# the official images run JupyterHub 5 (z2jh 4.2.0's hub image: 5.3.0), so
# their config files run again on it (dev/test)
pytestmark = [pytest.mark.hub_version]

ROOT = Path(__file__).resolve().parent.parent
HUBEXT_CHART = ROOT / "charts" / "hubext"
FULL = HUBEXT_CHART / "ci" / "full-values.yaml"
DRIVER = ROOT / "tests" / "helpers" / "chart_effective.py"
INSTALL_DOC = ROOT / "docs" / "how-to" / "install-with-helm.md"
VALUES_DOC = ROOT / "docs" / "reference" / "helm-values.md"
K8S_VERSION = "1.35.0"
NAMESPACE = "binder"

BINDERHUB_TARBALL = ("binderhub-b9fad99.tar.gz", "binderhub/helm-chart/binderhub/")
Z2JH_TARBALL = ("z2jh-4.2.0.tar.gz", "zero-to-jupyterhub-k8s-4.2.0/jupyterhub/")
# What chartpress would write: z2jh's release, and for BinderHub the version
# its chartpress.yaml gives b9fad99 (baseVersion 1.0.0-0.dev, 3958 commits up
# to af9ca8b1, the last one touching the chart's paths; b9fad99 merges it)
Z2JH_VERSION = "4.2.0"
BINDERHUB_CHART_VERSION = "1.0.0-0.dev.git.3958.haf9ca8b1"

#: An authenticated BinderHub, as BinderHub's "Enabling Authentication" guide
#: configures it; the install guide shows the same block.
SITE_MARKER = "# your-binderhub-values.yaml"


def upstream_dir() -> Path:
    return Path(
        os.environ.get("HUBEXT_UPSTREAM_DIR", ROOT.parent / "shared" / "upstream")
    )


def extract_chart(tarball: str, prefix: str, dest: Path) -> Path:
    """The chart folder `prefix` of an upstream tarball, at `dest`."""
    path = upstream_dir() / tarball
    if not path.exists():
        pytest.fail(
            f"{path} is missing: the upstream charts are read from "
            "../shared/upstream beside the clone, or set HUBEXT_UPSTREAM_DIR"
        )
    dest.mkdir(parents=True)
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if not member.name.startswith(prefix) or member.name == prefix:
                continue
            relative = member.name[len(prefix) :]
            target = dest / relative
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    return dest


def fill_placeholder(path: Path, placeholder: str, value: str) -> None:
    text = path.read_text("utf-8")
    assert placeholder in text, f"{path}: no {placeholder} to fill"
    path.write_text(text.replace(placeholder, value), "utf-8")


@pytest.fixture(scope="session")
def helm() -> str:
    from devstack.build import build_helm

    return str(build_helm())


@pytest.fixture(scope="session")
def binderhub_chart(tmp_path_factory) -> Path:
    return official_binderhub_chart(tmp_path_factory.mktemp("official-charts"))


def official_binderhub_chart(base: Path) -> Path:
    """BinderHub's chart with z2jh at charts/jupyterhub, placeholders filled."""
    binderhub = extract_chart(*BINDERHUB_TARBALL, base / "binderhub")
    z2jh_chart = extract_chart(*Z2JH_TARBALL, binderhub / "charts" / "jupyterhub")
    for chart_dir, version, tag in (
        (binderhub, BINDERHUB_CHART_VERSION, BINDERHUB_CHART_VERSION),
        (z2jh_chart, Z2JH_VERSION, Z2JH_VERSION),
    ):
        fill_placeholder(chart_dir / "Chart.yaml", "0.0.1-set.by.chartpress", version)
        fill_placeholder(chart_dir / "values.yaml", "set-by-chartpress", tag)
    return binderhub


def helm_template(helm, release, chart_dir, values: list, tmp_path) -> list[dict]:
    args = []
    for n, item in enumerate(values):
        path = tmp_path / f"{release}-values-{n}.yaml"
        path.write_text(yaml.safe_dump(item) if isinstance(item, dict) else item)
        args += ["-f", str(path)]
    result = subprocess.run(
        [helm, "template", release, str(chart_dir), "--namespace", NAMESPACE]
        # what a 1.35 API server tells helm install; BinderHub's chart asks
        # for it (else it renders policy/v1beta1, gone since 1.25)
        + ["--kube-version", K8S_VERSION]
        + ["--api-versions", "policy/v1/PodDisruptionBudget", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def doc_yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text("utf-8"), re.S)


def site_values() -> dict:
    """The admin's own BinderHub values the install guide shows."""
    [block] = [b for b in doc_yaml_blocks(INSTALL_DOC) if b.startswith(SITE_MARKER)]
    return yaml.safe_load(block)


# -- a pod's view of the rendered objects --------------------------------------


def find(objects, kind, name) -> dict | None:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    return None


def object_files(obj: dict) -> dict[str, bytes]:
    files = {}
    for key, value in (obj.get("data") or {}).items():
        files[key] = (
            base64.b64decode(value) if obj["kind"] == "Secret" else value.encode()
        )
    for key, value in (obj.get("stringData") or {}).items():
        files[key] = value.encode()
    for key, value in (obj.get("binaryData") or {}).items():
        files[key] = base64.b64decode(value)
    return files


def pod_view(objects, deployment: str, container: str, scratch: Path):
    """The mounts and environment the container of `deployment` gets."""
    dep = find(objects, "Deployment", deployment)
    assert dep, f"no Deployment {deployment}"
    spec = dep["spec"]["template"]["spec"]
    [ctr] = [c for c in spec["containers"] if c["name"] == container]
    volumes = {}
    for vol in spec.get("volumes", []):
        where = scratch / "volumes" / vol["name"]
        source = vol.get("configMap") or vol.get("secret")
        if source is None:
            if "persistentVolumeClaim" in vol or "emptyDir" in vol:
                where.mkdir(parents=True)
                volumes[vol["name"]] = where
            continue  # hostPath and the like: nothing of the host is shown
        kind = "ConfigMap" if "configMap" in vol else "Secret"
        name = source.get("name") or source.get("secretName")
        obj = find(objects, kind, name)
        if obj is None:
            assert source.get("optional"), f"{kind} {name} of {deployment} missing"
            obj = {"kind": kind}
        files = object_files(obj)
        if source.get("items"):
            files = {i["path"]: files[i["key"]] for i in source["items"]}
        where.mkdir(parents=True)
        for key, content in files.items():
            (where / key).write_bytes(content)
        volumes[vol["name"]] = where
    mounts = []
    for vm in ctr.get("volumeMounts", []):
        if vm["name"] not in volumes:
            continue
        source = volumes[vm["name"]]
        if vm.get("subPath"):
            source = source / vm["subPath"]
        mounts.append(
            mountns.Mount(
                str(source),
                os.path.normpath(vm["mountPath"]),
                vm.get("readOnly", False),
                is_file=source.is_file(),
            )
        )
    # what the kubelet adds: the service account's token, namespace and CA
    account = scratch / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("service-account-token")
    (account / "namespace").write_text(NAMESPACE)
    (account / "ca.crt").write_bytes(cluster_ca(scratch))
    mounts.append(
        mountns.Mount(
            str(account), "/var/run/secrets/kubernetes.io/serviceaccount", True
        )
    )
    return mounts, container_env(objects, ctr, f"{deployment}-0")


def cluster_ca(scratch: Path) -> bytes:
    """A CA certificate, as the cluster's the kubelet puts in every pod."""
    from devstack import certs

    return certs.generate(scratch / "pki").ca_cert.read_bytes()


def container_env(objects, ctr: dict, pod_name: str) -> dict[str, str]:
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    for svc in objects:
        if svc["kind"] != "Service":
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = "127.0.0.1"
        env[f"{prefix}_SERVICE_PORT"] = str(svc["spec"]["ports"][0]["port"])
    for item in ctr.get("env", []):
        if "value" in item:
            env[item["name"]] = "" if item["value"] is None else str(item["value"])
            continue
        ref = item.get("valueFrom", {})
        if "fieldRef" in ref:
            field = ref["fieldRef"]["fieldPath"]
            env[item["name"]] = {
                "metadata.namespace": NAMESPACE,
                "metadata.name": pod_name,
            }[field]
        elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
            kind = "Secret" if "secretKeyRef" in ref else "ConfigMap"
            key_ref = ref.get("secretKeyRef") or ref.get("configMapKeyRef")
            obj = find(objects, kind, key_ref["name"])
            assert obj, f"{kind} {key_ref['name']} for ${item['name']} missing"
            env[item["name"]] = object_files(obj)[key_ref["key"]].decode()
        else:
            env[item["name"]] = ""  # never empty-handed: a key we do not know
    return env


def start_in_pod(which, objects, deployment, container, scratch, workdir="/"):
    """Start the driver for `which` in the pod's view (a Popen)."""
    mounts, env = pod_view(objects, deployment, container, scratch)
    script = mountns.setup_script(
        mounts, str(scratch / "layers"), os.path.exists, workdir
    )
    env |= {
        "PATH": os.environ["PATH"],
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    argv = mountns.run_argv(
        script, mountns.Identity(), [sys.executable, str(DRIVER), which]
    )
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def run_in_pod(which, *args) -> subprocess.CompletedProcess:
    return finish(start_in_pod(which, *args))


def effective_of(which, proc: subprocess.CompletedProcess) -> dict:
    marker = "EFFECTIVE-CONFIG "
    lines = [line for line in proc.stdout.splitlines() if line.startswith(marker)]
    assert proc.returncode == 0 and lines, (
        f"{which} config failed (exit {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    return json.loads(lines[-1][len(marker) :])


# -- one install --------------------------------------------------------------


class Install:
    """Both releases rendered, and the effective config of hub and BinderHub."""

    def __init__(self, helm, binderhub_chart, tmp_path, hubext_values, **overlay):
        self.tmp = tmp_path
        extra = overlay.pop("extra_binderhub_values", [])
        self.extra_objects = overlay.pop("extra_objects", [])
        self.overlay = chart.binderhub_values("hubext", **overlay)
        self.hubext = helm_template(
            helm, "hubext", HUBEXT_CHART, [hubext_values], tmp_path
        )
        self.binderhub = helm_template(
            helm,
            "binderhub",
            binderhub_chart,
            [self.overlay, site_values(), *extra],
            tmp_path,
        )
        self.objects = self.hubext + self.binderhub + self.extra_objects
        self._hub = self._binder = None

    def args(self, which) -> tuple:
        deployment, container, workdir = {
            "hub": ("hub", "hub", "/srv/jupyterhub"),
            "binderhub": ("binder", "binder", "/"),
        }[which]
        scratch = self.tmp / f"pod-{which}-{len(list(self.tmp.glob('pod-*')))}"
        scratch.mkdir()
        return (self.objects, deployment, container, scratch, workdir)

    def _run_both(self) -> None:
        # side by side: each spends most of its time importing
        procs = {w: start_in_pod(w, *self.args(w)) for w in ("hub", "binderhub")}
        done = {w: finish(p) for w, p in procs.items()}
        self._hub = effective_of("hub", done["hub"])
        self._binder = effective_of("binderhub", done["binderhub"])

    @property
    def hub(self) -> dict:
        if self._hub is None:
            self._run_both()
        return self._hub

    @property
    def binder(self) -> dict:
        if self._binder is None:
            self._run_both()
        return self._binder


@pytest.fixture(scope="module")
def full(helm, binderhub_chart, tmp_path_factory) -> Install:
    """Every hubext value set (charts/hubext/ci/full-values.yaml)."""
    values = yaml.safe_load(FULL.read_text("utf-8"))
    values["fullnameOverride"] = "hubext"  # the overlay's default name
    return Install(helm, binderhub_chart, tmp_path_factory.mktemp("full"), values)


#: BinderHub's authentication guide: "namedServerLimitPerUser: 5"
BINDERHUB_GUIDE_LIMIT = "jupyterhub:\n  hub:\n    namedServerLimitPerUser: 5\n"


@pytest.fixture(scope="module")
def defaults(helm, binderhub_chart, tmp_path_factory) -> Install:
    """No hubext values; BinderHub's values as its own guide has them."""
    return Install(
        helm,
        binderhub_chart,
        tmp_path_factory.mktemp("defaults"),
        {},
        extra_binderhub_values=[BINDERHUB_GUIDE_LIMIT],
    )


# -- rendering -------------------------------------------------------------------


def test_every_rendered_object_passes_the_kubernetes_schemas(full):
    kinds = {obj["kind"] for obj in full.objects}
    assert {"Deployment", "ConfigMap", "Secret", "Service"} <= kinds
    for obj in full.objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_overlay_mounts_the_hubext_configmap_in_hub_and_binderhub(full):
    settings = find(full.objects, "ConfigMap", "hubext")
    assert settings, "the hubext chart renders the ConfigMap the overlay mounts"
    for deployment, container in (("hub", "hub"), ("binder", "binder")):
        mounts, _ = pod_view(
            full.objects, deployment, container, full.tmp / f"view-{deployment}"
        )
        [mount] = [m for m in mounts if m.target == chart.CONFIG_DIR]
        assert (Path(mount.source) / "hubext.yaml").read_text() == settings["data"][
            "hubext.yaml"
        ]


# -- the effective configuration ---------------------------------------------------


def test_the_hub_spawns_with_hubext(full):
    assert full.hub["spawner_class"] == "hubext.spawner.HubextSpawner"


def test_named_servers_are_on_in_the_hub_with_hubexts_limit(full):
    assert full.hub["allow_named_servers"] is True
    assert full.hub["named_server_limit_per_user"] == "hubext.quota.named_server_limit"


def test_binderhub_launches_named_servers_with_the_quota_hook(full):
    launcher = full.binder["launcher"]
    assert full.binder["auth_enabled"] is True
    assert launcher["allow_named_servers"] is True
    assert launcher["create_user"] is False
    assert launcher["pre_launch_hook"] == "hubext.binderhub.pre_launch_hook"
    # BinderHub's own check (running servers only, its own message) is off,
    # so hubext's hook answers with the project count
    assert launcher["named_server_limit_per_user"] == 0


def test_binderhub_refuses_before_the_build_what_the_hub_refuses(full):
    assert full.binder["launch_quota_class"] == "hubext.prebuild.HubextLaunchQuota"
    spawner = full.hub["spawner"]
    assert full.binder["before_build"] == {
        "resources_file": spawner["resources_file"],
        "maxima": spawner["maxima"],
        "defaults": spawner["defaults"],
        "hosts": full.hub["repo_hosts"]["hosts"],
    }


def test_hub_and_binderhub_apply_the_same_quota(full):
    assert full.hub["quota"] == full.binder["quota"]
    assert full.hub["quota"]["limit_for"] == {
        "alice": 20,
        "bob@teaching-staff": 10,
        "carol": 3,
    }


def test_notebook_uid_sets_uid_gid_and_fsgroup_over_z2jhs_singleuser_values(full):
    assert full.hub["spawner"]["notebook_uid"] == 1001
    spawner = full.hub["spawner"]
    assert (spawner["uid"], spawner["gid"], spawner["fs_gid"]) == (1001, 1001, 1001)
    assert full.hub["pod"] == {"runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 1001}


def test_the_default_notebook_uid_also_beats_z2jhs_fsgid_100(defaults):
    assert defaults.hub["pod"] == {
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
    }


def test_the_idle_service_runs_with_its_role_and_the_stock_culler_does_not(full):
    services = full.hub["services"]
    assert "jupyterhub-idle-culler" not in services
    command = services[z2jh.IDLE_SERVICE]["command"]
    assert command[1:4] == ["-m", "hubext.idle", "--url=http://localhost:8081/hub/api"]
    app = IdleService()
    app.parse_command_line(command[3:])
    assert (app.timeout, app.notice_before, app.dry_run) == (259200, 43200, True)
    role = full.hub["roles"][z2jh.IDLE_SERVICE]
    assert role["services"] == [z2jh.IDLE_SERVICE]
    # whatever hubext.z2jh asks for, as JupyterHub accepted it
    assert role["scopes"] == [*z2jh.IDLE_SCOPES, "tokens", "admin:auth_state"]


def test_the_email_notice_gets_the_values_and_the_secrets_password(full):
    """The command z2jh gives the service, parsed by the service; the
    password read from where the overlay mounts the chart's Secret."""
    assert full.hub["idle_email"] == {
        "host": "smtp.example.edu",
        "port": 25,
        "starttls": True,
        "username": "hub-notices",
        "password": "smtp-secret-example",
        "sender": "hub@example.edu",
        "to_template": "{username}@example.edu",
        "auth_state_key": "email",
        "control_panel_url": "https://hub.example.edu/hub/home",
    }


def test_the_hub_publishes_the_values_policy(full):
    assert full.hub["extra_handlers"] == [
        [POLICY_PATH, "hubext.policypage.PolicyHandler"],
        [PREPARE_PATH, "hubext.ahead.PrepareLaunchHandler"],
    ]
    assert full.hub["published_policy"] == {
        "defaults": {"gpu": 0, "cpur": 0.5, "cpul": 4, "memr": 2, "meml": 8},
        "maxima": {"gpu": 2, "cpur": 16, "cpul": 16, "memr": 64, "meml": 128},
        "max_file_bytes": 2048,
        "gpu_resource": "nvidia.com/gpu",
        "resources_file": ".binder/.resources",
    }


def test_binderhubs_hub_role_covers_the_quota_hook(full):
    role = full.hub["roles"]["binder"]
    assert role["scopes"] == ["servers", "admin:users"]
    assert {"read:servers", "read:users:groups"} <= set(role["expanded"])
    # hubext.ahead answers a hub service with `servers` only: BinderHub is one
    assert role["services"] == ["binder"] and "servers" in role["expanded"]
    # the token BinderHub uses is the one the hub gave its service
    assert full.binder["hub_api_token"] == full.hub["services"]["binder"]["api_token"]


def test_the_control_panel_replaces_the_home_page(full):
    assert full.hub["home_template"].startswith(str(ROOT / "hubext" / "templates"))


def test_refusals_reach_the_launch_page(full):
    assert full.hub["slow_spawn_timeout"] == 0


# -- BinderHub's own named-server settings ---------------------------------------------


def test_binderhub_cannot_start_on_allow_named_servers_alone(
    helm, binderhub_chart, tmp_path
):
    """Why the overlay sets namedServerLimitPerUser: with allowNamedServers
    only, the chart gives BinderHub an empty limit and its Launcher fails
    at import."""
    install = Install(
        helm,
        binderhub_chart,
        tmp_path,
        {},
        extra_binderhub_values=[
            "jupyterhub:\n  hub:\n    namedServerLimitPerUser: null\n"
        ],
    )
    proc = run_in_pod("binderhub", *install.args("binderhub"))
    assert proc.returncode != 0
    assert "invalid literal for int()" in proc.stderr, proc.stderr[-3000:]


def test_binderhubs_documented_limit_does_not_pre_empt_hubexts_message(defaults):
    """BinderHub's guide sets namedServerLimitPerUser: 5; hubext's hook and
    the hub's limit still decide, with hubext's message."""
    env = container_env(
        defaults.objects,
        find(defaults.objects, "Deployment", "binder")["spec"]["template"]["spec"][
            "containers"
        ][0],
        "binder-0",
    )
    assert env["JUPYTERHUB_NAMED_SERVER_LIMIT_PER_USER"] == "5"
    launcher = defaults.binder["launcher"]
    assert launcher["allow_named_servers"] is True
    assert launcher["named_server_limit_per_user"] == 0
    assert defaults.hub["named_server_limit_per_user"] == (
        "hubext.quota.named_server_limit"
    )


def test_an_unauthenticated_binderhub_fails_at_start(helm, binderhub_chart, tmp_path):
    """Unauthenticated, the chart gives BinderHub no named servers: every
    launch would be a default server the quota never sees."""
    install = Install(
        helm,
        binderhub_chart,
        tmp_path,
        {},
        extra_binderhub_values=["config:\n  BinderHub:\n    auth_enabled: false\n"],
    )
    proc = run_in_pod("binderhub", *install.args("binderhub"))
    assert proc.returncode != 0
    assert "does not launch named servers" in proc.stderr, proc.stderr[-3000:]


def test_without_the_overlays_env_binderhub_would_start_without_its_config(
    helm, binderhub_chart, tmp_path
):
    """Why the overlay sets TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR:
    otherwise BinderHub logs the error and runs without its config file, so
    without authentication and without the quota hook."""
    install = Install(
        helm,
        binderhub_chart,
        tmp_path,
        {},
        extra_binderhub_values=[
            "config:\n  BinderHub:\n    auth_enabled: false\n"
            "extraEnv:\n  TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR: 'false'\n"
        ],
    )
    proc = run_in_pod("binderhub", *install.args("binderhub"))
    binder = effective_of("binderhub", proc)
    assert "does not launch named servers" in proc.stderr
    assert binder["launcher"]["pre_launch_hook"] is None


# -- every value the docs show --------------------------------------------------------


def examples() -> dict[str, dict]:
    """The hubext values examples of the install guide, by their first key."""
    text = INSTALL_DOC.read_text("utf-8").split("## Examples", 1)[1]
    text = text.split("\n## ", 1)[0]
    found = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        values = yaml.safe_load(block)
        key = next(iter(values))
        if key in ("repoHosts", "idle"):  # two examples each, told apart
            key = f"{key}.{next(iter(values[key]))}"
        assert key not in found, f"two examples of {key}: give each its own test"
        found[key] = values
    return found


def check_image_prefix(install, values):
    prefix = values["imagePrefix"]
    assert install.binder["image_prefix"] == prefix
    assert install.hub["spawner"]["allowed_images"] == [prefix]


def check_resources(install, values):
    from hubext.resources import DEFAULT_MAXIMA

    maxima = install.hub["spawner"]["maxima"]
    for key, value in values["resources"]["maxima"].items():
        assert maxima[key] == value
        # "allow more": every maximum the example sets is above the default
        assert value > getattr(DEFAULT_MAXIMA, key), key


def check_quota(install, values):
    for side in (install.hub, install.binder):
        quota = side["quota"]
        assert quota["limit_for"] == {
            "alice": 20,
            "bob@teaching-staff": 10,
            "carol": 5,
        }
        assert quota["control_panel_url"] == values["quota"]["controlPanelUrl"]


def check_storage(install, values):
    spawner = install.hub["spawner"]
    assert spawner["storage_class_name"] == values["storage"]["storageClassName"]
    assert spawner["storage_size"] == values["storage"]["size"]


def check_repo_hosts(install, values):
    repo_hosts = install.hub["repo_hosts"]
    assert set(repo_hosts["hosts"]) == {"gitlab.example.edu"}
    assert repo_hosts["tokens"] == values["repoHosts"]["tokens"]
    configmap = find(install.objects, "ConfigMap", "hubext")["data"]["hubext.yaml"]
    assert values["repoHosts"]["tokens"]["gitlab.example.edu"] not in configmap


def check_existing_secret(install, values):
    assert install.hub["repo_hosts"]["tokens"] == {"github.com": "ghp-site"}


def check_idle(install, values):
    command = install.hub["services"][z2jh.IDLE_SERVICE]["command"]
    app = IdleService()
    app.parse_command_line(command[3:])
    assert app.timeout == values["idle"]["timeout"]
    assert app.notice_before == values["idle"]["noticeBefore"]
    assert app.notice_url == values["idle"]["noticeUrl"]


def check_idle_email(install, values):
    email = values["idle"]["email"]
    effective = install.hub["idle_email"]
    assert (effective["host"], effective["port"]) == (email["smtpHost"], 587)
    assert effective["starttls"] is True
    assert effective["username"] == email["username"]
    assert effective["password"] == email["password"]  # read from the Secret
    assert effective["sender"] == email["from"]
    assert effective["to_template"] == email["toTemplate"]
    panel = examples()["quota"]["quota"]["controlPanelUrl"]
    assert effective["control_panel_url"] == panel
    configmap = find(install.objects, "ConfigMap", "hubext")["data"]["hubext.yaml"]
    assert email["password"] not in configmap


EXAMPLE_CHECKS = {
    "imagePrefix": check_image_prefix,
    "resources": check_resources,
    "quota": check_quota,
    "storage": check_storage,
    "repoHosts.hosts": check_repo_hosts,
    "repoHosts.existingSecret": check_existing_secret,
    "idle.timeout": check_idle,
    "idle.email": check_idle_email,
}


def test_every_example_of_the_install_guide_has_a_test():
    assert set(examples()) == set(EXAMPLE_CHECKS)


def merged(values: list[dict]) -> dict:
    out: dict = {}
    for item in values:
        for key, value in item.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged([out[key], value])
            else:
                assert key not in out, f"two examples set {key}"
                out[key] = value
    return out


@pytest.fixture(scope="module")
def examples_install(helm, binderhub_chart, tmp_path_factory) -> Install:
    """One install with every example but existingSecret, which excludes the
    tokens of the GitLab example (the chart refuses both)."""
    values = merged(
        [v for k, v in examples().items() if k != "repoHosts.existingSecret"]
    )
    return Install(helm, binderhub_chart, tmp_path_factory.mktemp("examples"), values)


@pytest.fixture(scope="module")
def existing_secret_install(helm, binderhub_chart, tmp_path_factory) -> Install:
    """The existingSecret example, with the admin's own Secret as the guide
    says (tokens.yaml in it) and the overlay made with --tokens-secret."""
    values = examples()["repoHosts.existingSecret"]
    name = values["repoHosts"]["existingSecret"]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"tokens.yaml": "github.com: ghp-site\n"},
    }
    return Install(
        helm,
        binderhub_chart,
        tmp_path_factory.mktemp("existing-secret"),
        values,
        extra_objects=[secret],
        tokens_secret=name,
    )


@pytest.mark.parametrize("key", sorted(EXAMPLE_CHECKS))
def test_each_example_of_the_install_guide_takes_effect(request, examples_install, key):
    values = examples()[key]
    if key == "repoHosts.existingSecret":
        install = request.getfixturevalue("existing_secret_install")
    else:
        install = examples_install
    EXAMPLE_CHECKS[key](install, values)


def reference_defaults() -> dict[str, object]:
    """`Default:` of every value on the generated Helm values reference."""
    defaults = {}
    for path, value in re.findall(
        r"^#+ `([^`]+)`\n\nType: [^\n]*\n\nDefault: `(.*)`$",
        VALUES_DOC.read_text("utf-8"),
        re.M,
    ):
        defaults[path] = json.loads(value)
    return defaults


def test_the_reference_defaults_are_what_the_hub_runs_with(defaults):
    """Each value's default on the reference page is the effective setting of
    a hub installed without values."""
    shown = reference_defaults()
    spawner = defaults.hub["spawner"]
    checked = 0
    for path, cls, trait in z2jh.DIRECT:
        if cls != "HubextSpawner" or trait not in spawner:
            continue
        assert spawner[trait] == shown[path], path
        checked += 1
    assert checked >= 10
    for key in ("gpu", "cpur", "cpul", "memr", "meml"):
        assert spawner["maxima"][key] == shown[f"resources.maxima.{key}"]
        assert spawner["defaults"][key] == shown[f"resources.defaults.{key}"]
    assert defaults.hub["pod"]["runAsUser"] == shown["notebookUid"]
    assert defaults.hub["pod"]["fsGroup"] == shown["notebookUid"]
    assert defaults.hub["quota"]["default_limit"] == shown["quota.defaultLimit"]
    assert set(defaults.hub["repo_hosts"]["hosts"]) == set(shown["repoHosts.hosts"])
    command = defaults.hub["services"][z2jh.IDLE_SERVICE]["command"]
    app = IdleService()
    app.parse_command_line(command[3:])
    assert app.timeout == shown["idle.timeout"]
    assert app.interval == shown["idle.interval"]


# -- the table -------------------------------------------------------------------------


def effective_table(install: Install) -> str:
    hub, binder = install.hub, install.binder
    spawner = hub["spawner"]
    idle_role = hub["roles"][z2jh.IDLE_SERVICE]
    rows = [
        ("hub", "JupyterHub.spawner_class", hub["spawner_class"]),
        ("hub", "JupyterHub.allow_named_servers", hub["allow_named_servers"]),
        (
            "hub",
            "JupyterHub.named_server_limit_per_user",
            hub["named_server_limit_per_user"],
        ),
        ("hub", "tornado_settings.slow_spawn_timeout", hub["slow_spawn_timeout"]),
        (
            "hub",
            "HubextSpawner uid / gid / fs_gid",
            f"{spawner['uid']} / {spawner['gid']} / {spawner['fs_gid']}",
        ),
        (
            "hub",
            "pod runAsUser / runAsGroup / fsGroup",
            " / ".join(
                str(hub["pod"][k]) for k in ("runAsUser", "runAsGroup", "fsGroup")
            ),
        ),
        ("hub", "HubextSpawner.allowed_images", spawner["allowed_images"]),
        ("hub", "services", ", ".join(sorted(hub["services"]))),
        ("hub", "role hubext-idle", ", ".join(idle_role["scopes"])),
        ("hub", "role binder", ", ".join(hub["roles"]["binder"]["scopes"])),
        ("hub", "/hub/home template", os.path.relpath(hub["home_template"], ROOT)),
        ("hub", "quota alice / staff / others", _limits(hub)),
        ("binderhub", "env JUPYTERHUB_ALLOW_NAMED_SERVERS", _env(install, "ALLOW")),
        (
            "binderhub",
            "env JUPYTERHUB_NAMED_SERVER_LIMIT_PER_USER",
            _env(install, "NAMED_SERVER_LIMIT_PER_USER"),
        ),
        ("binderhub", "BinderHub.auth_enabled", binder["auth_enabled"]),
        (
            "binderhub",
            "Launcher.allow_named_servers",
            binder["launcher"]["allow_named_servers"],
        ),
        (
            "binderhub",
            "Launcher.named_server_limit_per_user",
            binder["launcher"]["named_server_limit_per_user"],
        ),
        (
            "binderhub",
            "Launcher.pre_launch_hook",
            binder["launcher"]["pre_launch_hook"],
        ),
        ("binderhub", "BinderHub.launch_quota_class", binder["launch_quota_class"]),
        ("binderhub", "BinderHub.image_prefix", binder["image_prefix"]),
        ("binderhub", "quota alice / staff / others", _limits(binder)),
    ]
    lines = ["| where | setting | effective value |", "|---|---|---|"]
    lines += [f"| {w} | `{s}` | `{v}` |" for w, s, v in rows]
    return "\n".join(lines)


def _env(install: Install, suffix: str) -> str:
    spec = find(install.objects, "Deployment", "binder")["spec"]["template"]["spec"]
    env = container_env(install.objects, spec["containers"][0], "binder-0")
    [value] = [v for k, v in env.items() if k.startswith("JUPYTERHUB_" + suffix)]
    return value


def _limits(side) -> str:
    limits = side["quota"]["limit_for"]
    return f"{limits['alice']} / {limits['bob@teaching-staff']} / {limits['carol']}"


def test_effective_config_table(full, capsys):
    table = effective_table(full)
    with capsys.disabled():
        print(
            f"\nEffective configuration (charts/hubext/ci/full-values.yaml):\n{table}"
        )
    assert "`hubext.spawner.HubextSpawner`" in table


# -- the guide's commands ----------------------------------------------------------------


def doc_commands(path: Path = INSTALL_DOC) -> list[str]:
    """Every `$ ` command of the guide's console blocks, continuations joined."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", path.read_text("utf-8"), re.S):
        current = None
        for line in block.splitlines():
            line = line.strip()
            if current is not None:
                current += " " + line.rstrip("\\").strip()
            elif line.startswith("$ "):
                current = line[2:].rstrip("\\").strip()
            if current is not None and not line.endswith("\\"):
                commands.append(re.sub(r"\s+", " ", current))
                current = None
    return commands


#: Commands that cannot run here, and why; every other one is run by a test.
NOT_RUN = {
    "helm repo add": "reaches the chart repository on the internet",
    "helm repo update": "reaches the chart repository on the internet",
    "python -m pip install build": "installs from the package index",
    "python -m build": "fetches its build backend from the package index; "
    "dev/release-check runs it",
    "docker build": "needs a Docker daemon and the base images from their "
    "registry; dev/release-check lints the Dockerfiles and runs their install "
    "step against each image's pinned requirements",
    "docker push": "reaches the site's image registry",
    "helm package": "dev/release-check runs it",
    "kubectl": "the local control plane has no controllers to restart pods",
}
#: Run by test_chart_cluster.py against the local API server.
RUN_ON_THE_CLUSTER = ("helm upgrade --install", "hubext chart binderhub-values")
#: Run here.
RUN_HERE = ("helm lint", "helm template")


def test_every_command_of_the_install_guide_is_run_or_says_why_not():
    commands = doc_commands()
    assert len(commands) >= 9
    for command in commands:
        assert any(
            command.startswith(p) for p in (*NOT_RUN, *RUN_ON_THE_CLUSTER, *RUN_HERE)
        ), f"no test runs {command!r}"


def guide_workdir(tmp_path: Path) -> Path:
    """A directory as an admin's: the checkout's charts/, hubext-values.yaml
    (the guide's examples) and your-binderhub-values.yaml."""
    (tmp_path / "charts").symlink_to(ROOT / "charts")
    values = merged(
        [v for k, v in examples().items() if k != "repoHosts.existingSecret"]
    )
    (tmp_path / "hubext-values.yaml").write_text(yaml.safe_dump(values))
    [site] = [b for b in doc_yaml_blocks(INSTALL_DOC) if b.startswith(SITE_MARKER)]
    (tmp_path / "your-binderhub-values.yaml").write_text(site)
    return tmp_path


def run_guide_command(command, cwd, helm, env=None) -> subprocess.CompletedProcess:
    path = f"{Path(helm).parent}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env={**os.environ, "PATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_guides_check_commands_run(helm, tmp_path):
    cwd = guide_workdir(tmp_path)
    ran = 0
    for command in doc_commands():
        if command.startswith(RUN_HERE):
            result = run_guide_command(command, cwd, helm)
            assert result.returncode == 0, f"{command}\n{result.stderr}"
            ran += 1
    assert ran == 2


def test_the_guide_and_the_notes_name_the_tested_chart_versions(binderhub_chart):
    chart_yaml = yaml.safe_load((binderhub_chart / "Chart.yaml").read_text("utf-8"))
    [dependency] = chart_yaml["dependencies"]
    assert (dependency["name"], dependency["version"]) == ("jupyterhub", Z2JH_VERSION)
    guide = " ".join(doc_commands())
    assert (
        f"jupyterhub/binderhub --namespace binder --version {BINDERHUB_CHART_VERSION}"
        in guide
    )
    notes = (HUBEXT_CHART / "templates" / "NOTES.txt").read_text("utf-8")
    assert BINDERHUB_CHART_VERSION in notes and "--version" in notes


if __name__ == "__main__":
    import tempfile

    from devstack.build import build_helm

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        full_values = yaml.safe_load(FULL.read_text("utf-8"))
        full_values["fullnameOverride"] = "hubext"
        (base / "run").mkdir()
        install = Install(
            str(build_helm()),
            official_binderhub_chart(base / "charts"),
            base / "run",
            full_values,
        )
        print(effective_table(install))
