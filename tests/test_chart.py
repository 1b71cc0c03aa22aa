"""The hubext Helm chart: the real helm CLI, the Kubernetes schemas, the
upstream charts' schemas, and the settings it hands to the hub.

helm comes from `devstack.build.build_helm()` (built once, cached). The
upstream schemas are read from ``../shared/upstream`` beside the clone (or
``$HUBEXT_UPSTREAM_SCHEMAS``); they are data of other projects and are not
copied into this repository.
"""

import copy
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from traitlets.config import Config

from hubext import chart, z2jh
from hubext.ahead import PREPARE_PATH, PrepareLaunchHandler
from hubext.controlpanel import ControlPanel
from hubext.idle.app import IdleService
from hubext.policypage import POLICY_PATH, PolicyHandler
from hubext.quota import QuotaPolicy, named_server_limit
from hubext.repofiles import RepoFileFetcher
from hubext.resources import ResourcePolicy
from hubext.spawner import HubextSpawner

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "hubext"
FULL = CHART / "ci" / "full-values.yaml"
K8S_VERSION = "1.35.0"


@pytest.fixture(scope="session")
def helm() -> str:
    from devstack.build import build_helm

    return str(build_helm())


def run_helm(helm, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def render(helm, *args) -> list[dict]:
    out = run_helm(helm, "template", "hubext", str(CHART), *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(docs, kind) -> dict:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def upstream_schema(name: str) -> dict:
    base = Path(
        os.environ.get("HUBEXT_UPSTREAM_SCHEMAS", ROOT.parent / "shared" / "upstream")
    )
    path = base / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: the upstream chart schemas are read from "
            "../shared/upstream beside the clone, or set HUBEXT_UPSTREAM_SCHEMAS"
        )
    return yaml.safe_load(path.read_text("utf-8"))


def without_required(schema):
    """The schema checking unknown keys and types only: upstream marks keys
    required because their own values.yaml supplies them."""
    if isinstance(schema, dict):
        return {k: without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [without_required(v) for v in schema]
    return schema


def schema_errors(values: dict, schema: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(without_required(schema))
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(values)
    ]


# -- the generated files ----------------------------------------------------


def test_generated_files_match_the_schema_source():
    result = subprocess.run(
        [sys.executable, "charts/generate.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_value_names_its_setting_and_every_object_is_closed():
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text("utf-8"))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text("utf-8"))
    plumbing = {"nameOverride", "fullnameOverride", "rbac", "idle.enabled"}
    described = {}
    for path, node, _ in chart._leaves(schema, defaults):
        assert node.get("description"), path
        described[path] = node["description"]
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            continue
        if path in plumbing or path.split(".")[0] in plumbing:
            continue
        # the value, or the mapping it belongs to, names the setting
        parts = path.split(".")
        ancestors = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        assert any("`c." in described[a] for a in ancestors), f"{path} names no setting"
    assert schema_errors(defaults, schema) == []


# -- helm --------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], ["-f", str(FULL)]], ids=["default", "full"])
def test_helm_lint_and_rendered_manifests_pass_the_kubernetes_schemas(helm, values):
    run_helm(helm, "lint", "--strict", str(CHART), *values)
    docs = render(helm, *values)
    kinds = sorted(d["kind"] for d in docs)
    if values:
        assert kinds == ["ConfigMap", "Role", "RoleBinding", "Secret", "Secret"]
    else:  # the hub chart's own Role covers what hubext needs
        assert kinds == ["ConfigMap", "Secret"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_settings_and_tokens_are_kept_apart(helm):
    docs = render(helm, "-f", str(FULL))
    settings = yaml.safe_load(of_kind(docs, "ConfigMap")["data"]["hubext.yaml"])
    assert "tokens" not in settings["repoHosts"]
    assert "glpat-example" not in yaml.safe_dump(settings)
    assert "rbac" not in settings and "fullnameOverride" not in settings
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert set(secrets) == {"hubext-full-repo-host-tokens", "hubext-full-smtp"}
    secret = secrets["hubext-full-repo-host-tokens"]
    import base64

    tokens = yaml.safe_load(base64.b64decode(secret["data"]["tokens.yaml"]))
    assert tokens == {"gitlab.example.edu": "glpat-example"}
    # the SMTP password only in its own Secret, under the key the hub reads
    smtp = secrets["hubext-full-smtp"]["data"]
    assert base64.b64decode(smtp["password"]) == b"smtp-secret-example"
    assert "smtp-secret-example" not in yaml.safe_dump(settings)
    assert set(settings["idle"]["email"]) == z2jh.EMAIL_VALUES
    # a host set to null in values is removed, as Helm merges maps
    assert set(settings["repoHosts"]["hosts"]) == {
        "gitlab.example.edu",
        "git.example.edu",
    }


def test_an_existing_token_secret_replaces_the_charts(helm):
    docs = render(helm, "--set", "repoHosts.existingSecret=site-tokens")
    assert [d["kind"] for d in docs] == ["ConfigMap"]


def test_an_smtp_password_gets_a_secret_and_an_existing_one_replaces_it(helm):
    docs = render(helm, "--set", "idle.email.password=pw")
    assert "hubext-smtp" in [d["metadata"]["name"] for d in docs]
    docs = render(helm, "--set", "idle.email.existingSecret=site-smtp")
    assert "hubext-smtp" not in [d["metadata"]["name"] for d in docs]
    settings = yaml.safe_load(of_kind(docs, "ConfigMap")["data"]["hubext.yaml"])
    assert "existingSecret" not in settings["idle"]["email"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "quota.defaultLimt=3"], "additional properties 'defaultLimt'"),
        (["--set", "colour=blue"], "additional properties 'colour'"),
        (["--set", "quota.defaultLimit=five"], "/quota/defaultLimit"),
        (["--set", "quota.defaultLimit=-1"], "/quota/defaultLimit"),
        (["--set", "quota.groupLimits.staff=ten"], "/quota/groupLimits/staff"),
        (["--set", "storage.size=10GB"], "/storage/size"),
        (["--set", "storage.enabled=maybe"], "/storage/enabled"),
        (["--set", "ssh.keyType=dsa"], "/ssh/keyType"),
        (["--set", "repoHosts.onError=ignore"], "/repoHosts/onError"),
        (
            ["--set", "repoHosts.hosts.gitlab\\.example\\.edu.provider=svn"],
            "/repoHosts/hosts/gitlab.example.edu/provider",
        ),
        (
            ["--set", "repoHosts.hosts.gitlab\\.example\\.edu.apiURL=https://x"],
            "additional properties 'apiURL'",
        ),
        (["--set", "idle.timeout=0"], "/idle/timeout"),
        (
            ["--set", "repoHosts.tokens.gitlab\\.example\\.edu=t"],
            "not in repoHosts.hosts",
        ),
        (
            [
                "--set",
                "repoHosts.tokens.github\\.com=t",
                "--set",
                "repoHosts.existingSecret=s",
            ],
            "either tokens or existingSecret",
        ),
        (
            [
                "--set",
                "idle.email.password=p",
                "--set",
                "idle.email.existingSecret=s",
            ],
            "idle.email: set either password or existingSecret",
        ),
        (["--set", "idle.email.smtpPort=0"], "/idle/email/smtpPort"),
        (["--set", "idle.email.smtpHots=x"], "additional properties 'smtpHots'"),
    ],
)
def test_helm_refuses_bad_values_naming_the_value(helm, args, expected):
    result = run_helm(helm, "template", "x", str(CHART), *args, check=False)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr


# -- the overlay for the official chart ----------------------------------------


def test_binderhub_overlay_is_accepted_by_the_upstream_schemas():
    overlay = yaml.safe_load((CHART / "binderhub-values.yaml").read_text("utf-8"))
    full = chart.binderhub_values(
        "site-hubext", "site-tokens", "reg.example.edu/hub:1.0", "reg.example.edu/b:2"
    )
    binderhub = upstream_schema("binderhub-chart-b9fad99.schema.yaml")
    z2jh_schema = upstream_schema("z2jh-4.2.0.values.schema.yaml")
    for values in (overlay, full):
        assert schema_errors(values, binderhub) == []
        assert schema_errors(values["jupyterhub"], z2jh_schema) == []


def test_the_upstream_check_catches_a_wrong_key_or_type():
    overlay = chart.binderhub_values()
    z2jh_schema = upstream_schema("z2jh-4.2.0.values.schema.yaml")
    wrong_key = copy.deepcopy(overlay["jupyterhub"])
    wrong_key["hub"]["extraVolumeMount"] = []
    wrong_type = copy.deepcopy(overlay["jupyterhub"])
    wrong_type["hub"]["extraConfig"] = "import hubext"
    assert any("extraVolumeMount" in e for e in schema_errors(wrong_key, z2jh_schema))
    assert any(
        e.startswith("hub.extraConfig") for e in schema_errors(wrong_type, z2jh_schema)
    )


def test_overlay_mounts_what_the_chart_renders(helm):
    docs = render(helm, "--set", "fullnameOverride=site")
    overlay = chart.binderhub_values("site")
    hub = overlay["jupyterhub"]["hub"]
    volumes = {v["name"]: v for v in hub["extraVolumes"]}
    assert (
        volumes["hubext-config"]["configMap"]["name"]
        == of_kind(docs, "ConfigMap")["metadata"]["name"]
    )
    assert volumes["hubext-tokens"]["secret"]["secretName"] == "site-repo-host-tokens"
    assert volumes["hubext-smtp"]["secret"] == {
        "secretName": "site-smtp",
        "optional": True,
    }
    rendered = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert rendered == {"site-repo-host-tokens"}  # no password: no Secret
    with_password = render(
        helm, "--set", "fullnameOverride=site", "--set", "idle.email.password=p"
    )
    assert "site-smtp" in {d["metadata"]["name"] for d in with_password}
    assert overlay["extraVolumes"] == [volumes["hubext-config"]]
    mounts = {m["mountPath"] for m in hub["extraVolumeMounts"]}
    assert mounts == {chart.CONFIG_DIR, chart.TOKENS_DIR, chart.SMTP_DIR}
    assert chart.SETTINGS_FILE in hub["extraConfig"]["hubext"]
    assert chart.TOKENS_FILE in hub["extraConfig"]["hubext"]
    assert chart.SMTP_PASSWORD_FILE in hub["extraConfig"]["hubext"]


def test_cli_prints_the_overlay_and_refuses_an_untagged_image():
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "hubext.cli", "chart", "binderhub-values", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )

    out = cli(
        *("--name", "uni-hubext", "--tokens-secret", "uni-tokens"),
        *("--smtp-secret", "uni-smtp"),
    )
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout) == chart.binderhub_values(
        "uni-hubext", "uni-tokens", smtp_secret="uni-smtp"
    )
    assert "secretName: uni-smtp" in out.stdout
    bad = cli("--hub-image", "reg.example.edu/hub")
    assert bad.returncode == 2
    assert "has no tag" in bad.stderr and "NAME:TAG" in bad.stderr


# -- hubext.z2jh ---------------------------------------------------------------


def configured(
    tmp_path, settings: dict, tokens=None, config=None, smtp_password="pw"
) -> Config:
    """`z2jh.configure` on `settings`, with the tokens and the SMTP password
    in files where the chart's Secrets would be mounted."""
    path = tmp_path / "hubext.yaml"
    path.write_text(yaml.safe_dump(settings))
    tokens_file = None
    if tokens is not None:
        tokens_file = tmp_path / "tokens.yaml"
        tokens_file.write_text(yaml.safe_dump(tokens))
    password_file = tmp_path / "smtp-password"
    if smtp_password is not None:
        password_file.write_text(smtp_password + "\n")
    c = config or Config()
    z2jh.configure(
        c, path, tokens_file=tokens_file, smtp_password_file=str(password_file)
    )
    return c


FULL_TRAITS = [
    ("HubextSpawner", "resources_file", ".binder/.resources"),
    ("HubextSpawner", "storage_enabled", True),
    ("HubextSpawner", "storage_class_name", "nfs-csi"),
    ("HubextSpawner", "storage_size", "50Gi"),
    ("HubextSpawner", "storage_access_modes", ["ReadWriteMany"]),
    ("HubextSpawner", "storage_claim_name_template", "{username}-home"),
    ("HubextSpawner", "storage_mount_path_template", "/home/{username}-shared"),
    ("HubextSpawner", "ssh_enabled", True),
    ("HubextSpawner", "ssh_key_type", "rsa-4096"),
    ("HubextSpawner", "ssh_dir", "/home/jovyan/.ssh"),
    ("HubextSpawner", "ssh_secret_name_template", "{username}-ssh"),
    ("HubextSpawner", "notebook_uid", 1001),
    ("HubextSpawner", "allowed_images", ["registry.example.edu/binder/"]),
    ("HubextSpawner", "refusal_wait", 5),
    (
        "HubextSpawner",
        "resource_policy",
        {
            "defaults": {"gpu": 0, "cpur": 0.5, "cpul": 4, "memr": 2, "meml": 8},
            "maxima": {"gpu": 2, "cpur": 16, "cpul": 16, "memr": 64, "meml": 128},
            "gpu_resource": "nvidia.com/gpu",
            "max_file_bytes": 2048,
        },
    ),
    ("QuotaPolicy", "default_limit", 3),
    ("QuotaPolicy", "user_limits", {"alice": 20}),
    ("QuotaPolicy", "group_limits", {"teaching-staff": 10, "research": 0}),
    ("QuotaPolicy", "control_panel_url", "https://hub.example.edu/hub/home"),
    ("ControlPanel", "binderhub_url", "https://binder.example.edu/"),
    (
        "RepoFileFetcher",
        "hosts",
        {
            "gitlab.example.edu": {"provider": "gitlab"},
            "git.example.edu": {
                "provider": "git",
                "username": "oauth2",
                "allow_http": False,
            },
        },
    ),
    ("RepoFileFetcher", "tokens", {"gitlab.example.edu": "glpat-example"}),
    ("RepoFileFetcher", "timeout", 5),
    ("RepoFileFetcher", "max_bytes", 16384),
    ("RepoFileFetcher", "on_error", "defaults"),
    ("RepoFileFetcher", "cache_size", 4096),
    # notebookUid over z2jh's c.KubeSpawner.uid / fs_gid (singleuser values)
    ("HubextSpawner", "uid", 1001),
    ("HubextSpawner", "gid", 1001),
    ("HubextSpawner", "fs_gid", 1001),
    ("JupyterHub", "spawner_class", "hubext"),
    ("JupyterHub", "allow_named_servers", True),
    ("JupyterHub", "named_server_limit_per_user", named_server_limit),
    ("JupyterHub", "tornado_settings", {"slow_spawn_timeout": 0}),
    (
        "JupyterHub",
        "extra_handlers",
        [(POLICY_PATH, PolicyHandler), (PREPARE_PATH, PrepareLaunchHandler)],
    ),
]


@pytest.fixture(scope="module")
def full_settings(helm):
    docs = render(helm, "-f", str(FULL))
    return yaml.safe_load(of_kind(docs, "ConfigMap")["data"]["hubext.yaml"])


@pytest.mark.parametrize("cls, trait, expected", FULL_TRAITS)
def test_configure_sets_each_trait_from_the_rendered_configmap(
    tmp_path, full_settings, cls, trait, expected
):
    c = configured(tmp_path, full_settings, {"gitlab.example.edu": "glpat-example"})
    assert c[cls][trait] == expected


def test_configure_sets_nothing_else(tmp_path, full_settings):
    c = configured(tmp_path, full_settings, {"gitlab.example.edu": "glpat-example"})
    expected = {(cls, trait) for cls, trait, _ in FULL_TRAITS}
    expected |= {("JupyterHub", "services"), ("JupyterHub", "load_roles")}
    expected |= {("JupyterHub", "template_paths"), ("JupyterHub", "template_vars")}
    assert {(cls, trait) for cls in c for trait in c[cls]} == expected


def test_configure_runs_the_idle_service_with_the_values(tmp_path, full_settings):
    existing = Config()
    existing.JupyterHub.services = [{"name": "binder", "api_token": "x"}]
    existing.JupyterHub.load_roles = [{"name": "binder", "services": ["binder"]}]
    existing.JupyterHub.tornado_settings = {"cookie_options": {"secure": True}}
    existing.JupyterHub.hub_bind_url = "http://:8081"
    existing.JupyterHub.base_url = "/jhub/"
    c = configured(tmp_path, full_settings, config=existing)
    services = c.JupyterHub.services
    assert [s["name"] for s in services] == ["binder", "hubext-idle"]
    assert services[1]["command"] == [
        sys.executable,
        "-m",
        "hubext.idle",
        "--url=http://localhost:8081/jhub/hub/api",
        "--timeout=259200",
        "--notice-before=43200",
        "--notice-url=http://mailer.example.edu/idle",
        "--interval=300",
        "--concurrency=20",
        "--state-file=/srv/jupyterhub/hubext-idle-state.json",
        "--metrics-port=9464",
        "--confirm-with-server",
        "--dry-run",
        "--smtp-host=smtp.example.edu",
        "--smtp-port=25",
        "--smtp-username=hub-notices",
        "--smtp-ca-file=/etc/ssl/campus-ca.pem",
        "--email-from=hub@example.edu",
        "--email-to-template={username}@example.edu",
        "--email-from-auth-state-key=email",
        "--control-panel-url=https://hub.example.edu/hub/home",
        f"--smtp-password-file={tmp_path / 'smtp-password'}",
    ]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert set(roles) == {"binder", "hubext-idle"}
    assert roles["hubext-idle"]["scopes"] == [
        *z2jh.IDLE_SCOPES,
        "tokens",
        "admin:auth_state",
    ]
    assert c.JupyterHub.tornado_settings == {
        "cookie_options": {"secure": True},
        "slow_spawn_timeout": 0,
    }
    # applying twice (a hub restart reads the same config) does not stack
    z2jh.configure(
        c, tmp_path / "hubext.yaml", smtp_password_file=tmp_path / "smtp-password"
    )
    assert [s["name"] for s in c.JupyterHub.services] == ["binder", "hubext-idle"]
    assert c.JupyterHub.extra_handlers == [
        (POLICY_PATH, PolicyHandler),
        (PREPARE_PATH, PrepareLaunchHandler),
    ]
    # the command parses with the service's own options
    app = IdleService()
    app.parse_command_line(services[1]["command"][4:])
    assert (app.timeout, app.notice_before, app.concurrency) == (259200, 43200, 20)
    assert app.dry_run and app.confirm_with_server
    email = app.email_settings()
    assert (email.host, email.port, email.starttls) == ("smtp.example.edu", 25, True)
    assert (email.sender, email.auth_state_key) == ("hub@example.edu", "email")
    assert "pw" not in " ".join(services[1]["command"])  # only the file's name


EMAIL = {"smtpHost": "smtp.example.edu", "from": "hub@example.edu"}
PANEL = {"controlPanelUrl": "https://hub.example.edu/hub/home"}


@pytest.mark.parametrize(
    "settings, password, expected",
    [
        ({"idle": {"email": EMAIL}}, "pw", "quota.controlPanelUrl is empty"),
        (
            {"idle": {"email": {**EMAIL, "username": "u"}}, "quota": PANEL},
            None,
            "idle.email.username is set but there is no password at",
        ),
        (
            {"idle": {"email": {**EMAIL, "password": "pw"}}, "quota": PANEL},
            "pw",
            "idle.email.password is in the settings file",
        ),
        ({"idle": {"email": {"smtp_host": "x"}}}, "pw", "Did you mean smtpHost?"),
    ],
)
def test_email_settings_that_cannot_work_fail_the_hub_at_start(
    tmp_path, settings, password, expected
):
    with pytest.raises(z2jh.SettingsError, match=expected):
        configured(tmp_path, settings, smtp_password=password)


def test_email_without_login_or_starttls(tmp_path):
    email = {**EMAIL, "toTemplate": "{username}@example.edu", "starttls": False}
    c = configured(tmp_path, {"idle": {"email": email}, "quota": PANEL})
    [service] = c.JupyterHub.services
    assert "--no-smtp-starttls" in service["command"]
    assert not any("password" in arg for arg in service["command"])
    [role] = c.JupyterHub.load_roles
    assert "admin:auth_state" not in role["scopes"]


def test_publish_policy_false_adds_no_page(tmp_path):
    c = configured(tmp_path, {"resources": {"publishPolicy": False}})
    assert c.JupyterHub.extra_handlers == [(PREPARE_PATH, PrepareLaunchHandler)]


def test_idle_disabled_adds_no_service(tmp_path):
    c = configured(tmp_path, {"idle": {"enabled": False}})
    assert "services" not in c.JupyterHub and "load_roles" not in c.JupyterHub


def test_chart_defaults_are_the_settings_defaults(tmp_path, helm):
    docs = render(helm)
    settings = yaml.safe_load(of_kind(docs, "ConfigMap")["data"]["hubext.yaml"])
    c = configured(tmp_path, settings)
    classes = {"HubextSpawner": HubextSpawner, "ControlPanel": ControlPanel}
    instances = {"QuotaPolicy": QuotaPolicy(), "RepoFileFetcher": RepoFileFetcher()}
    for cls, values in c.items():
        for trait, value in values.items():
            if cls == "JupyterHub" or trait == "resource_policy":
                continue
            if trait in ("uid", "gid", "fs_gid"):  # HubextSpawner's own default
                default = classes[cls].class_traits()["notebook_uid"].default()
                assert value == default, f"c.{cls}.{trait}"
                continue
            if cls in instances:
                default = getattr(instances[cls], trait)
            else:
                default = classes[cls].class_traits()[trait].default()
            assert value == default, f"c.{cls}.{trait}"
    policy = c.HubextSpawner.resource_policy
    assert ResourcePolicy.from_dict(policy) == ResourcePolicy.from_dict({})
    app = IdleService()
    app.parse_command_line(c.JupyterHub.services[0]["command"][3:])
    for trait in ("timeout", "notice_before", "interval", "concurrency"):
        assert getattr(app, trait) == IdleService.class_traits()[trait].default()
    assert app.state_file == IdleService.class_traits()["state_file"].default()


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"quota": {"defaultLimt": 3}}, "Did you mean defaultLimit?"),
        ({"storge": {}}, "Did you mean storage?"),
        ({"quota": 3}, "quota must be a mapping"),
    ],
)
def test_configure_refuses_unknown_settings(tmp_path, settings, expected):
    with pytest.raises(z2jh.SettingsError) as e:
        configured(tmp_path, settings)
    assert expected in str(e.value)


def test_configure_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(z2jh.SettingsError, match="hubext.yaml: the hubext settings"):
        z2jh.configure(Config(), tmp_path / "hubext.yaml")
    (tmp_path / "hubext.yaml").write_text("quota: {defaultLimit: 3\n")
    with pytest.raises(z2jh.SettingsError, match="not valid YAML"):
        z2jh.configure(Config(), tmp_path / "hubext.yaml")
    (tmp_path / "hubext.yaml").write_text("quota: {defaultLimit: 3}\n")
    (tmp_path / "tokens.yaml").write_text("- a list\n")
    with pytest.raises(z2jh.SettingsError, match="mapping of host name to token"):
        z2jh.configure(Config(), tmp_path / "hubext.yaml", tmp_path / "tokens.yaml")
    # no token file at all (optional Secret not created): no tokens
    c = Config()
    z2jh.configure(c, tmp_path / "hubext.yaml", tmp_path / "absent.yaml")
    assert "tokens" not in c.RepoFileFetcher


def binderhub_config() -> Config:
    """BinderHub's config as its chart starts it with named servers on (the
    Launcher's default comes from JUPYTERHUB_ALLOW_NAMED_SERVERS; this is the
    same as config)."""
    c = Config()
    c.Launcher.allow_named_servers = True
    return c


def test_configure_binderhub_sets_the_hook_and_the_same_quota(tmp_path, full_settings):
    from hubext.binderhub import pre_launch_hook

    path = tmp_path / "hubext.yaml"
    path.write_text(yaml.safe_dump(full_settings))
    c = binderhub_config()
    z2jh.configure_binderhub(c, path)
    assert c.Launcher.pre_launch_hook is pre_launch_hook
    # BinderHub's own limit (running servers, its own message) is off
    assert c.Launcher.named_server_limit_per_user == 0
    assert "use_named_servers" not in c.BinderHub
    policy = QuotaPolicy(config=c)
    assert policy.limit_for("bob", ["teaching-staff"]) == 10
    assert policy.limit_for("alice", []) == 20
    assert policy.default_limit == 3
    # the check before the build (hubext.prebuild), with the hub's policy
    # and hosts; repository host tokens stay with the hub
    from hubext.prebuild import HubextLaunchQuota

    assert c.BinderHub.launch_quota_class is HubextLaunchQuota
    hub = z2jh.hub_traits(full_settings)
    assert (
        c.HubextLaunchQuota.resource_policy == hub["HubextSpawner"]["resource_policy"]
    )
    assert c.RepoFileFetcher.hosts == hub["RepoFileFetcher"]["hosts"]
    assert "tokens" not in c.RepoFileFetcher
    assert set(c) == {
        "Launcher",
        "BinderHub",
        "QuotaPolicy",
        "HubextLaunchQuota",
        "RepoFileFetcher",
    }
    assert c.BinderHub.image_prefix == "registry.example.edu/binder/binder-"


@pytest.mark.parametrize(
    "env, config, on",
    [
        ("true", None, True),
        ("false", None, False),
        (None, None, False),
        ("false", True, True),
        ("true", False, False),
    ],
)
def test_configure_binderhub_refuses_a_binderhub_without_named_servers(
    tmp_path, monkeypatch, env, config, on
):
    """Without named servers every launch is the user's default server and
    the quota never applies: BinderHub must not start like that."""
    if env is None:
        monkeypatch.delenv("JUPYTERHUB_ALLOW_NAMED_SERVERS", raising=False)
    else:
        monkeypatch.setenv("JUPYTERHUB_ALLOW_NAMED_SERVERS", env)
    path = tmp_path / "hubext.yaml"
    path.write_text("{}\n")
    c = Config()
    if config is not None:
        c.Launcher.allow_named_servers = config
    if on:
        z2jh.configure_binderhub(c, path)
        assert c.Launcher.pre_launch_hook
    else:
        with pytest.raises(z2jh.SettingsError, match="auth_enabled: true"):
            z2jh.configure_binderhub(c, path)


@pytest.mark.parametrize(
    "values, allowed",
    [
        ({"imagePrefix": "reg.edu/binder/binder-"}, ["reg.edu/binder/binder-"]),
        ({"imagePrefix": "reg.edu/b-", "allowedImages": ["reg.edu/"]}, ["reg.edu/"]),
        ({"allowedImages": []}, []),
        ({"imagePrefix": "", "allowedImages": None}, None),
        ({}, None),
    ],
)
def test_image_prefix_is_set_once_for_hub_and_binderhub(tmp_path, values, allowed):
    """One value gives BinderHub its image prefix and the hub the same
    allowed prefix; with neither, the hub refuses images named at launch."""
    c = configured(tmp_path, values)
    spawner = c.HubextSpawner
    assert (
        spawner.get("allowed_images", HubextSpawner.allowed_images.default()) == allowed
    )
    path = tmp_path / "hubext.yaml"
    b = binderhub_config()
    z2jh.configure_binderhub(b, path)
    if values.get("imagePrefix"):
        assert b.BinderHub.image_prefix == values["imagePrefix"]
    else:
        assert "image_prefix" not in b.BinderHub


def test_a_second_different_image_prefix_fails_binderhub_at_start(tmp_path):
    path = tmp_path / "hubext.yaml"
    path.write_text("imagePrefix: reg.edu/binder/binder-\n")
    c = binderhub_config()
    c.BinderHub.image_prefix = "reg.edu/other-"
    with pytest.raises(z2jh.SettingsError, match="set the prefix once"):
        z2jh.configure_binderhub(c, path)
