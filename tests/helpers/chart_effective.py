"""Run inside a pod's filesystem view: load the official chart's own config
file the way its program does and print the effective configuration as JSON.

    python chart_effective.py hub        # z2jh's jupyterhub_config.py
    python chart_effective.py binderhub  # BinderHub's binderhub_config.py

tests/test_official_charts.py runs it in a private mount namespace in which
the rendered ConfigMaps and Secrets are mounted where the Deployments mount
them, with the Deployment's environment. The files are executed unmodified,
by the real JupyterHub and BinderHub applications' config loaders; what is
printed is read back from instances built from the loaded config (a
HubextSpawner and its pod manifest, BinderHub's Launcher), not from the
config dict.
"""

import asyncio
import json
import sys

MARKER = "EFFECTIVE-CONFIG "
HUB_CONFIG = "/usr/local/etc/jupyterhub/jupyterhub_config.py"
BINDERHUB_CONFIG = "/etc/binderhub/config/binderhub_config.py"


def qualname(obj) -> str | None:
    if obj is None:
        return None
    if isinstance(obj, str):
        return obj
    return f"{obj.__module__}.{obj.__qualname__}"


def quota(config) -> dict:
    from hubext.quota import QuotaPolicy

    policy = QuotaPolicy(config=config)
    return {
        "default_limit": policy.default_limit,
        "user_limits": dict(policy.user_limits),
        "group_limits": dict(policy.group_limits),
        "control_panel_url": policy.control_panel_url,
        "limit_for": {
            "alice": policy.limit_for("alice", []),
            "bob@teaching-staff": policy.limit_for("bob", ["teaching-staff"]),
            "carol": policy.limit_for("carol", []),
        },
    }


def home_template(app) -> str:
    """The file JupyterHub renders for /hub/home, found as its loader does."""
    from jinja2 import Environment, FileSystemLoader

    paths = list(app.template_paths)
    base = app._template_paths_default()[0]
    if base not in paths:
        paths.append(base)
    return FileSystemLoader(paths).get_source(Environment(), "home.html")[1]


def idle_email(command: list[str]) -> dict | None:
    """The idle service's email settings as it parses its own command, and
    the password as it would read it (the mounted Secret's file); None
    without email."""
    from pathlib import Path

    from hubext.idle.app import IdleService

    app = IdleService()
    app.parse_command_line(command[3:])
    settings = app.email_settings()
    if not settings.host:
        return None
    password = ""
    if settings.password_file:
        password = Path(settings.password_file).read_text().strip()
    return {
        "host": settings.host,
        "port": settings.port,
        "starttls": settings.starttls,
        "username": settings.username,
        "password": password,
        "sender": settings.sender,
        "to_template": settings.to_template,
        "auth_state_key": settings.auth_state_key,
        "control_panel_url": settings.control_panel_url,
    }


async def hub() -> dict:
    from jupyterhub.app import JupyterHub
    from jupyterhub.scopes import _check_scopes_exist, expand_scopes

    from hubext import policypage
    from hubext.repofiles import RepoFileFetcher
    from hubext.resources import ResourcePolicy

    app = JupyterHub()
    app.load_config_file(HUB_CONFIG)
    spawner = app.spawner_class(_mock=True, config=app.config)
    pod = spawner.api.api_client.sanitize_for_serialization(
        await spawner.get_pod_manifest()
    )
    security = pod["spec"].get("securityContext") or {}
    [notebook] = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    notebook_security = notebook.get("securityContext") or {}
    roles = {}
    for role in app.load_roles:
        _check_scopes_exist(role.get("scopes", []), who_for=role["name"])
        roles[role["name"]] = {
            "scopes": list(role.get("scopes", [])),
            "expanded": sorted(expand_scopes(role.get("scopes", []))),
            "services": list(role.get("services", [])),
        }
    services = {
        s["name"]: {
            "command": s.get("command"),
            "api_token": s.get("api_token"),
        }
        for s in app.services
    }
    fetcher = RepoFileFetcher(config=app.config)
    policy = ResourcePolicy.from_dict(spawner.resource_policy)
    return {
        "spawner_class": qualname(app.spawner_class),
        "allow_named_servers": app.allow_named_servers,
        "named_server_limit_per_user": qualname(app.named_server_limit_per_user)
        if callable(app.named_server_limit_per_user)
        else app.named_server_limit_per_user,
        "slow_spawn_timeout": app.tornado_settings.get("slow_spawn_timeout"),
        "services": services,
        "roles": roles,
        "home_template": home_template(app),
        "extra_handlers": [[h[0], qualname(h[1])] for h in app.extra_handlers],
        "published_policy": policypage.published_policy(app.config, app.spawner_class),
        "idle_email": idle_email(services["hubext-idle"]["command"])
        if "hubext-idle" in services
        else None,
        "spawner": {
            "uid": spawner.uid,
            "gid": spawner.gid,
            "fs_gid": spawner.fs_gid,
            "notebook_uid": spawner.notebook_uid,
            "allowed_images": spawner.allowed_images,
            "resources_file": spawner.resources_file,
            "storage_enabled": spawner.storage_enabled,
            "storage_class_name": spawner.storage_class_name,
            "storage_size": spawner.storage_size,
            "storage_access_modes": list(spawner.storage_access_modes),
            "storage_claim_name_template": spawner.storage_claim_name_template,
            "storage_mount_path_template": spawner.storage_mount_path_template,
            "ssh_enabled": spawner.ssh_enabled,
            "ssh_key_type": spawner.ssh_key_type,
            "ssh_dir": spawner.ssh_dir,
            "ssh_secret_name_template": spawner.ssh_secret_name_template,
            "refusal_wait": spawner.refusal_wait,
            "maxima": policy.maxima.as_dict(),
            "defaults": policy.defaults.as_dict(),
            "cmd": spawner.cmd,
        },
        "pod": {
            "runAsUser": notebook_security.get("runAsUser"),
            "runAsGroup": notebook_security.get("runAsGroup"),
            "fsGroup": security.get("fsGroup"),
        },
        "quota": quota(app.config),
        "repo_hosts": {
            "hosts": fetcher.hosts,
            "tokens": dict(fetcher.tokens),
        },
    }


def binderhub() -> dict:
    # imported under the Deployment's environment: the Launcher reads
    # JUPYTERHUB_ALLOW_NAMED_SERVERS and ..._LIMIT_PER_USER at import
    from binderhub.app import BinderHub
    from binderhub.launcher import Launcher

    app = BinderHub()
    app.load_config_file(BINDERHUB_CONFIG)
    launcher = Launcher(
        parent=app,
        hub_url=app.hub_url,
        hub_url_local=app.hub_url_local,
        hub_api_token=app.hub_api_token,
        create_user=not app.auth_enabled,
    )
    from hubext.repofiles import RepoFileFetcher
    from hubext.resources import ResourcePolicy

    check = app.launch_quota_class(parent=app)
    policy = ResourcePolicy.from_dict(getattr(check, "resource_policy", {}))
    return {
        "auth_enabled": app.auth_enabled,
        "image_prefix": app.image_prefix,
        "launch_quota_class": qualname(app.launch_quota_class),
        # what the check before the build refuses (hubext.prebuild)
        "before_build": {
            "resources_file": getattr(check, "resources_file", None),
            "maxima": policy.maxima.as_dict(),
            "defaults": policy.defaults.as_dict(),
            "hosts": RepoFileFetcher(config=app.config).hosts,
        },
        "hub_api_token": app.hub_api_token,
        "launcher": {
            "allow_named_servers": launcher.allow_named_servers,
            "named_server_limit_per_user": launcher.named_server_limit_per_user,
            "pre_launch_hook": qualname(launcher.pre_launch_hook),
            "create_user": launcher.create_user,
        },
        "quota": quota(app.config),
    }


def main(which: str) -> None:
    result = asyncio.run(hub()) if which == "hub" else binderhub()
    print(MARKER + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
