"""hubext settings from the chart's ConfigMap, for the official charts.

The hubext Helm chart renders its values into one YAML file (a ConfigMap);
the official BinderHub chart's hub and BinderHub mount it and call, from
their ``extraConfig``::

    import hubext.z2jh
    hubext.z2jh.configure(c, "/etc/hubext/config/hubext.yaml",
                          tokens_file="/etc/hubext/tokens/tokens.yaml")

and, in BinderHub::

    hubext.z2jh.configure_binderhub(c, "/etc/hubext/config/hubext.yaml")

`hub_traits` is the whole mapping from values to settings, pure so that a
table test can check it; `configure` adds what needs the live config (the
lists of services and roles the hub chart has already set).
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

#: (value path, class, trait) for every value copied as it is.
DIRECT = (
    ("resources.file", "HubextSpawner", "resources_file"),
    ("storage.enabled", "HubextSpawner", "storage_enabled"),
    ("storage.storageClassName", "HubextSpawner", "storage_class_name"),
    ("storage.size", "HubextSpawner", "storage_size"),
    ("storage.accessModes", "HubextSpawner", "storage_access_modes"),
    ("storage.claimNameTemplate", "HubextSpawner", "storage_claim_name_template"),
    ("storage.mountPathTemplate", "HubextSpawner", "storage_mount_path_template"),
    ("ssh.enabled", "HubextSpawner", "ssh_enabled"),
    ("ssh.keyType", "HubextSpawner", "ssh_key_type"),
    ("ssh.dir", "HubextSpawner", "ssh_dir"),
    ("ssh.secretNameTemplate", "HubextSpawner", "ssh_secret_name_template"),
    ("notebookUid", "HubextSpawner", "notebook_uid"),
    ("refusalWait", "HubextSpawner", "refusal_wait"),
    ("quota.defaultLimit", "QuotaPolicy", "default_limit"),
    ("quota.userLimits", "QuotaPolicy", "user_limits"),
    ("quota.groupLimits", "QuotaPolicy", "group_limits"),
    ("quota.controlPanelUrl", "QuotaPolicy", "control_panel_url"),
    ("controlPanel.binderhubUrl", "ControlPanel", "binderhub_url"),
    ("repoHosts.timeout", "RepoFileFetcher", "timeout"),
    ("repoHosts.maxBytes", "RepoFileFetcher", "max_bytes"),
    ("repoHosts.onError", "RepoFileFetcher", "on_error"),
    ("repoHosts.cacheSize", "RepoFileFetcher", "cache_size"),
)

#: Values of `resources` and the key of `resource_policy` each one fills.
RESOURCE_POLICY_KEYS = {
    "defaults": "defaults",
    "maxima": "maxima",
    "gpuResource": "gpu_resource",
    "maxFileBytes": "max_file_bytes",
}

#: Values of one entry of `repoHosts.hosts` and the key each one becomes.
HOST_KEYS = {
    "provider": "provider",
    "apiUrl": "api_url",
    "allowHttp": "allow_http",
    "username": "username",
}

#: Values of `idle` and the `hubext-idle` option each one becomes.
IDLE_OPTIONS = {
    "timeout": "--timeout",
    "noticeBefore": "--notice-before",
    "noticeUrl": "--notice-url",
    "interval": "--interval",
    "concurrency": "--concurrency",
    "stateFile": "--state-file",
    "metricsPort": "--metrics-port",
}
IDLE_FLAGS = {"confirmWithServer": "--confirm-with-server", "dryRun": "--dry-run"}
#: Values of `idle.email` and the `hubext-idle` option each one becomes.
EMAIL_OPTIONS = {
    "smtpHost": "--smtp-host",
    "smtpPort": "--smtp-port",
    "username": "--smtp-username",
    "caFile": "--smtp-ca-file",
    "from": "--email-from",
    "toTemplate": "--email-to-template",
    "authStateKey": "--email-from-auth-state-key",
}
#: `idle.email` values that stay in the chart's Secret, never in the ConfigMap.
EMAIL_SECRET_VALUES = {"password", "existingSecret"}
IDLE_SERVICE = "hubext-idle"
IDLE_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]

TOP_LEVEL = {
    "resources",
    "quota",
    "controlPanel",
    "storage",
    "ssh",
    "notebookUid",
    "imagePrefix",
    "allowedImages",
    "refusalWait",
    "repoHosts",
    "idle",
}
SECTIONS = {
    "resources": set(RESOURCE_POLICY_KEYS) | {"file", "publishPolicy"},
    "quota": {"defaultLimit", "userLimits", "groupLimits", "controlPanelUrl"},
    "controlPanel": {"binderhubUrl"},
    "storage": {
        "enabled",
        "storageClassName",
        "size",
        "accessModes",
        "claimNameTemplate",
        "mountPathTemplate",
    },
    "ssh": {"enabled", "keyType", "dir", "secretNameTemplate"},
    "repoHosts": {"hosts", "timeout", "maxBytes", "onError", "cacheSize"},
    "idle": set(IDLE_OPTIONS) | set(IDLE_FLAGS) | {"enabled", "email"},
}
EMAIL_VALUES = set(EMAIL_OPTIONS) | {"starttls"}


class SettingsError(ValueError):
    """The hubext settings file cannot be used; the message says where and why."""


def _unknown(key: str, where: str, known) -> SettingsError:
    """The error for an unknown dotted `key`, with the closest of `known`
    (the names known at the key's last level)."""
    hint = difflib.get_close_matches(key.rpartition(".")[2], sorted(known), n=1)
    maybe = f" Did you mean {hint[0]}?" if hint else ""
    return SettingsError(
        f"{where}: unknown value {key!r}.{maybe} The chart's values.schema.json "
        "lists every value; fix the hubext chart values and upgrade the release."
    )


def check_settings(settings: dict, where: str = "hubext settings") -> None:
    """Refuse unknown keys, naming the closest known one (a hand-edited
    ConfigMap skips Helm's schema check)."""
    if not isinstance(settings, dict):
        raise SettingsError(f"{where}: expected a mapping of values, not {settings!r}")
    for key, value in settings.items():
        if key not in TOP_LEVEL:
            raise _unknown(key, where, TOP_LEVEL)
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise SettingsError(f"{where}: {key} must be a mapping, not {value!r}")
            for sub in value:
                if sub not in SECTIONS[key]:
                    raise _unknown(f"{key}.{sub}", where, SECTIONS[key])
    email = _get(settings, "idle.email")
    if email is not _MISSING and email is not None:
        if not isinstance(email, dict):
            raise SettingsError(f"{where}: idle.email must be a mapping, not {email!r}")
        for sub in email:
            if sub in EMAIL_SECRET_VALUES:
                raise SettingsError(
                    f"{where}: idle.email.{sub} is in the settings file, where"
                    " anyone who can read ConfigMaps sees it; the chart keeps it"
                    " in its Secret: set it in the hubext chart's values only"
                )
            if sub not in EMAIL_VALUES:
                raise _unknown(f"idle.email.{sub}", where, EMAIL_VALUES)


_MISSING = object()


def _get(settings: dict, path: str):
    """The value at a dotted path, or `_MISSING` when any part is missing."""
    value = settings
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def resource_policy(resources: dict) -> dict:
    """`c.HubextSpawner.resource_policy` from the `resources` values."""
    return {
        key: resources[value_key]
        for value_key, key in RESOURCE_POLICY_KEYS.items()
        if resources.get(value_key) is not None
    }


def allowed_images(settings: dict):
    """`c.HubextSpawner.allowed_images`: `allowedImages` when given, else
    BinderHub's `imagePrefix`; `_MISSING` when neither is set."""
    listed = settings.get("allowedImages")
    if listed is not None:
        return list(listed)
    prefix = settings.get("imagePrefix")
    return [prefix] if prefix else _MISSING


def repo_hosts(hosts: dict) -> dict:
    """`c.RepoFileFetcher.hosts` from `repoHosts.hosts`; a host set to null
    (how Helm values remove a default entry) is left out."""
    return {
        name: {HOST_KEYS[k]: v for k, v in entry.items() if v is not None}
        for name, entry in hosts.items()
        if entry is not None
    }


def hub_traits(settings: dict, tokens: dict | None = None) -> dict:
    """Every hubext setting of the hub, as {class: {trait: value}}.

    A value missing from `settings` leaves its trait at its default.
    """
    check_settings(settings)
    traits: dict[str, dict] = {}
    for path, cls, trait in DIRECT:
        value = _get(settings, path)
        if value is not _MISSING:
            traits.setdefault(cls, {})[trait] = value
    images = allowed_images(settings)
    if images is not _MISSING:
        traits.setdefault("HubextSpawner", {})["allowed_images"] = images
    if settings.get("resources"):
        policy = resource_policy(settings["resources"])
        if policy:
            traits.setdefault("HubextSpawner", {})["resource_policy"] = policy
    hosts = _get(settings, "repoHosts.hosts")
    if hosts is not _MISSING:
        traits.setdefault("RepoFileFetcher", {})["hosts"] = repo_hosts(hosts)
    if tokens:
        traits.setdefault("RepoFileFetcher", {})["tokens"] = dict(tokens)
    return traits


def _options(values: dict, options: dict) -> list[str]:
    return [
        f"{option}={values[key]}"
        for key, option in options.items()
        if values.get(key) is not None and values.get(key) != ""
    ]


def email_options(
    email: dict, control_panel_url: str, password_file: str | None
) -> list[str]:
    """`hubext-idle` options for the email notice from `idle.email`; none
    without `smtpHost`. The link in the message is `quota.controlPanelUrl`,
    the password the file the chart's Secret is mounted as."""
    if not email.get("smtpHost"):
        return []
    if not control_panel_url:
        raise SettingsError(
            "idle.email.smtpHost is set but quota.controlPanelUrl is empty: the"
            " email links to the control panel, so set quota.controlPanelUrl to"
            " its address, e.g. https://hub.example.edu/hub/home"
        )
    command = _options(email, EMAIL_OPTIONS)
    command.append(f"--control-panel-url={control_panel_url}")
    if email.get("starttls") is False:
        command.append("--no-smtp-starttls")
    if email.get("username"):
        if not password_file or not Path(password_file).is_file():
            raise SettingsError(
                f"idle.email.username is set but there is no password at"
                f" {password_file}: set idle.email.password, or"
                " idle.email.existingSecret and give its name to"
                " `hubext chart binderhub-values --smtp-secret`"
            )
        command.append(f"--smtp-password-file={password_file}")
    return command


def idle_service(
    idle: dict,
    hub_api_url: str = "",
    control_panel_url: str = "",
    smtp_password_file: str | None = None,
) -> tuple[dict, dict]:
    """The `hubext-idle` service and its role, for the hub's lists."""
    command = [sys.executable, "-m", "hubext.idle"]
    if hub_api_url:
        command.append(f"--url={hub_api_url}")
    command += _options(idle, IDLE_OPTIONS)
    command += [flag for key, flag in IDLE_FLAGS.items() if idle.get(key)]
    email = idle.get("email") or {}
    command += email_options(email, control_panel_url, smtp_password_file)
    scopes = list(IDLE_SCOPES)
    if idle.get("confirmWithServer"):
        scopes.append("tokens")  # to mint a token for one server
    if email.get("smtpHost") and email.get("authStateKey"):
        scopes.append("admin:auth_state")  # the address, from auth_state
    service = {"name": IDLE_SERVICE, "command": command}
    role = {"name": IDLE_SERVICE, "scopes": scopes, "services": [IDLE_SERVICE]}
    return service, role


def local_hub_api_url(hub_bind_url: str, base_url: str = "/") -> str:
    """The hub API as seen from inside the hub's pod.

    In the official chart the hub listens on all addresses (``http://:8081``)
    and the hub's own Service is not reachable from the hub pod under its
    network policy, so a managed service talks to it on localhost.
    """
    parts = urlsplit(hub_bind_url)
    host = parts.hostname or "localhost"
    if host in ("0.0.0.0", "::"):
        host = "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'http'}://{host}{port}{base_url.rstrip('/')}/hub/api"


def read_yaml(path, what: str, missing_ok: bool = False):
    """A YAML file's content; errors name the file and what it was for."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise SettingsError(
            f"{path}: the {what} file is missing: mount the hubext chart's "
            "ConfigMap there (see `hubext chart binderhub-values`)"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SettingsError(f"{path}: the {what} file is not valid YAML: {e}") from None


def _set_traits(c, traits: dict) -> None:
    for cls, values in traits.items():
        for trait, value in values.items():
            c[cls][trait] = value


def _replace_named(c_section, key: str, entry: dict) -> None:
    """Put `entry` into the list `key` of a config section, replacing an
    entry of the same name (the hub chart may have set the list already)."""
    current = list(c_section[key]) if key in c_section else []
    current = [e for e in current if e.get("name") != entry["name"]]
    c_section[key] = current + [entry]


def _set_notebook_ids(c, settings: dict) -> None:
    """uid, gid and fsGroup of the notebook pods from `notebookUid`.

    z2jh's hub config sets ``c.KubeSpawner.uid`` and ``c.KubeSpawner.fs_gid``
    from ``singleuser.uid``/``fsGid`` (1000/100), and config beats
    HubextSpawner's defaults derived from `notebook_uid`; config for the
    subclass beats config for KubeSpawner, so setting them here wins.
    """
    from hubext.spawner import HubextSpawner

    uid = settings.get("notebookUid")
    if uid is None:
        uid = HubextSpawner.class_traits()["notebook_uid"].default_value
    for trait in ("uid", "gid", "fs_gid"):
        c.HubextSpawner[trait] = uid


def configure(c, path, tokens_file=None, smtp_password_file=None) -> dict:
    """Configure a hub (``c``, its traitlets config) from the chart's settings.

    Returns the settings read. Sets HubextSpawner as the spawner, the
    notebook's uid, gid and fsGroup (`notebookUid`, over z2jh's
    ``singleuser.uid``/``fsGid``), the project quota as JupyterHub's
    named-server limit, the progress stream for refusals
    (``slow_spawn_timeout = 0``), the idle service (its email password read
    from `smtp_password_file`), the control panel on ``/hub/home``, the
    published resource policy on ``/hub/hubext/policy`` and the launch
    preparation for BinderHub on ``/hub/api/hubext/prepare/{name}``.
    """
    from hubext import ahead, policypage
    from hubext.controlpanel import configure as configure_control_panel
    from hubext.quota import named_server_limit

    settings = read_yaml(path, "hubext settings") or {}
    tokens = None
    if tokens_file is not None:
        tokens = read_yaml(tokens_file, "repository host tokens", missing_ok=True)
        if tokens is not None and not isinstance(tokens, dict):
            raise SettingsError(
                f"{tokens_file}: expected a mapping of host name to token, "
                "such as {gitlab.example.edu: glpat-...}"
            )
    _set_traits(c, hub_traits(settings, tokens))
    _set_notebook_ids(c, settings)
    hub = c.JupyterHub
    hub.spawner_class = "hubext"
    hub.allow_named_servers = True
    hub.named_server_limit_per_user = named_server_limit
    tornado = dict(hub.tornado_settings) if "tornado_settings" in hub else {}
    tornado["slow_spawn_timeout"] = 0
    hub.tornado_settings = tornado
    idle = settings.get("idle") or {}
    if idle.get("enabled", True):
        url = ""
        if "hub_bind_url" in hub:
            base = hub.base_url if "base_url" in hub else "/"
            url = local_hub_api_url(hub.hub_bind_url, base)
        panel_url = _get(settings, "quota.controlPanelUrl")
        service, role = idle_service(
            idle,
            url,
            control_panel_url="" if panel_url is _MISSING else panel_url or "",
            smtp_password_file=smtp_password_file,
        )
        _replace_named(hub, "services", service)
        _replace_named(hub, "load_roles", role)
    # after the idle service, whose --timeout gives the panel's removal dates
    configure_control_panel(c)
    if _get(settings, "resources.publishPolicy") is not False:
        policypage.configure(c)
    ahead.configure(c)
    return settings


def _set_image_prefix(c, prefix: str | None) -> None:
    """BinderHub's image prefix from hubext's `imagePrefix`, so the hub and
    BinderHub agree on it; a different one in BinderHub's own values fails
    here rather than refusing every launch later."""
    if not prefix:
        return
    current = c.BinderHub.image_prefix if "image_prefix" in c.BinderHub else None
    if current and current != prefix:
        raise SettingsError(
            f"BinderHub's config.BinderHub.image_prefix is {current!r} but hubext's "
            f"imagePrefix is {prefix!r}: set the prefix once, in hubext's "
            "imagePrefix, and remove config.BinderHub.image_prefix"
        )
    c.BinderHub.image_prefix = prefix


def _named_servers_on(c) -> bool:
    """Whether BinderHub's Launcher will launch named servers: its config, or
    else the default it read from ``JUPYTERHUB_ALLOW_NAMED_SERVERS``, which
    the BinderHub chart sets from ``jupyterhub.hub.allowNamedServers`` when
    ``config.BinderHub.auth_enabled`` is true."""
    if "allow_named_servers" in c.Launcher:
        return bool(c.Launcher.allow_named_servers)
    return os.environ.get("JUPYTERHUB_ALLOW_NAMED_SERVERS", "false") == "true"


def prebuild_traits(hub: dict) -> dict:
    """What BinderHub's check before the build needs of the hub's traits
    (`hub_traits`): the quota, the resource policy and where repository
    files are read from. The repository host tokens stay with the hub: a
    private repository is checked by the hub only."""
    spawner = hub.get("HubextSpawner", {})
    quota_check = {
        trait: spawner[trait]
        for trait in ("resource_policy", "resources_file")
        if trait in spawner
    }
    return {
        "QuotaPolicy": hub.get("QuotaPolicy", {}),
        "HubextLaunchQuota": quota_check,
        "RepoFileFetcher": hub.get("RepoFileFetcher", {}),
    }


def configure_binderhub(c, path) -> dict:
    """Configure BinderHub (``c``) to refuse what the hub would refuse, with
    the same limits as the hub: the project quota and the repository's
    `.resources`, before the image build (`hubext.prebuild`), and the quota
    again right before the launch (`hubext.binderhub`). Returns the
    settings read.

    BinderHub's own named-server limit (``Launcher.named_server_limit_per_user``,
    from ``jupyterhub.hub.namedServerLimitPerUser``) counts running servers
    only and answers before the hook with its own message, so it is turned
    off: the hook and the hub count every project. Without named servers
    every launch would go to the user's default server and the quota would
    never apply, so that fails here, at BinderHub's start.
    """
    from hubext.binderhub import pre_launch_hook
    from hubext.prebuild import HubextLaunchQuota

    if not _named_servers_on(c):
        raise SettingsError(
            "BinderHub does not launch named servers, so every launch would go "
            "to the user's default server and the project quota would never "
            "apply: set config.BinderHub.auth_enabled: true and keep "
            "jupyterhub.hub.allowNamedServers: true (the hubext overlay sets it)"
        )
    settings = read_yaml(path, "hubext settings") or {}
    traits = hub_traits(settings)
    _set_traits(c, prebuild_traits(traits))
    # the same refusals before the build, shown once (hubext.prebuild)
    c.BinderHub.launch_quota_class = HubextLaunchQuota
    c.Launcher.pre_launch_hook = pre_launch_hook
    c.Launcher.named_server_limit_per_user = 0
    _set_image_prefix(c, settings.get("imagePrefix"))
    return settings
