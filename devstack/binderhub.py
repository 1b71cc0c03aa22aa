"""BinderHub as the hub's authenticated service, configured for loopback.

One place for what both `python -m devstack up` and the tests
(tests/fixtures/binderhub.py) need to run the real BinderHub web app
(`devstack.binderhub_app`) next to a hub, as BinderHub's chart configures an
authenticated BinderHub:

- `hub_config()`: the hub's side, appended to (or loaded by) the hub's
  config: the `binder` service with its API token and OAuth client (no
  confirmation page), the roles BinderHub's chart gives it (`servers`,
  `admin:users`) and users (`access:services!service=binder`), the
  loopback git server as the one host the hub reads `.resources` from, and
  the endpoint BinderHub's check before its build posts launches to
  (`hubext.ahead`);
- `binderhub_config()`: BinderHub's config file: auth with the hub, only
  the generic git provider, BinderHub's own `FakeRegistry` and
  `InstantBuild` standing in for the image build, and `quota`, the lines
  that give BinderHub hubext's project quota;
- `binderhub_env()`: the environment BinderHub's chart gives it;
- `BinderHubService`: the process, for `python -m devstack up`.
"""

import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

from .hub import REPO_ROOT
from .proc import Service

SERVICE = "binder"

HUB_CONFIG = """
c.JupyterHub.services.append({{
    "name": "{service}",
    "api_token": "{token}",
    "oauth_client_id": "service-{service}",
    "oauth_redirect_uri": "{binder_url}/oauth_callback",
    "oauth_no_confirm": True,
}})
c.JupyterHub.load_roles.extend([
    # BinderHub's chart: what the authenticated BinderHub needs
    {{"name": "binder", "services": ["{service}"], "scopes": ["servers", "admin:users"]}},
    {{"name": "user", "scopes": ["self", "access:services!service={service}"]}},
])
c.RepoFileFetcher.hosts = {{"{git_host}": {{"provider": "git", "allow_http": True}}}}
# BinderHub's check before its build posts each launch here (hubext.ahead)
from hubext import ahead
ahead.configure(c)
"""

BINDERHUB_CONFIG = """\
from binderhub.registry import FakeRegistry
from binderhub.repoproviders import GitRepoProvider

from devstack.binderhub_app import InstantBuild

c.LoopbackBinderHub.ip = "{ip}"
c.BinderHub.port = {port}
c.BinderHub.base_url = "/"
c.BinderHub.hub_url = "{hub_url}/"
c.BinderHub.auth_enabled = True
c.HubOAuth.hub_host = "{hub_url}"
c.HubOAuth.base_url = "/"
c.BinderHub.repo_providers = {{"git": GitRepoProvider}}
c.BinderHub.image_prefix = "{image_prefix}"
c.BinderHub.build_token_secret = "{build_token_secret}"
# no Kubernetes builds, no image registry: BinderHub's own fake registry
# (no image is ever found) and a build that only reports the image as built
c.BinderHub.builder_required = False
c.BinderHub.use_registry = True
c.BinderHub.registry_class = FakeRegistry
c.DockerRegistry.url = "http://127.0.0.1:9"  # never asked; loopback anyway
c.BinderHub.build_class = InstantBuild
{quota}
# BinderHub's default is 4 attempts, 4 s apart and doubling (28 s before a
# refusal shows); the same 4 attempts from 2 s (14 s) keep the tests short
# and stay above the 1 s after which hubext removes a refused server
# (hubext.lifecycle.REMOVAL_GRACE), as in production
c.Launcher.retry_delay = 2
c.BinderHub.log_level = "DEBUG"
"""

#: the local stack's quota in BinderHub: hubext's hook, with the limit of
#: `c.QuotaPolicy.default_limit` in jupyterhub_config.py
DEV_QUOTA = """\
from hubext.binderhub import pre_launch_hook
from hubext.prebuild import HubextLaunchQuota

# hubext's checks before the build (a bad .resources or a full quota fails the
# page at once) and before the launch, with the dev hub's values: its quota,
# its one repository host; its resource policy in jupyterhub_config.py is the
# built-in one, so c.HubextLaunchQuota.resource_policy stays at its default
c.BinderHub.launch_quota_class = HubextLaunchQuota
c.Launcher.pre_launch_hook = pre_launch_hook
c.QuotaPolicy.default_limit = 5
c.RepoFileFetcher.hosts = {{"{git_host}": {{"provider": "git", "allow_http": True}}}}
# BinderHub's check before its build posts each launch here (hubext.ahead)
from hubext import ahead
ahead.configure(c)
"""


def hub_config(token: str, binder_url: str, git_host: str) -> str:
    """The hub's side of BinderHub at `binder_url` (`git_host`: host:port
    of the git server whose `.resources` files the hub may read)."""
    return HUB_CONFIG.format(
        service=SERVICE, token=token, binder_url=binder_url, git_host=git_host
    )


def binderhub_config(binder_url: str, hub_url: str, image_prefix: str, quota: str):
    """BinderHub's config file, listening at `binder_url`'s address."""
    where = urlsplit(binder_url)
    return BINDERHUB_CONFIG.format(
        ip=where.hostname,
        port=where.port,
        hub_url=hub_url,
        image_prefix=image_prefix,
        build_token_secret=secrets.token_hex(32),
        quota=quota,
    )


def binderhub_env(
    token: str,
    binder_url: str,
    hub_api_url: str,
    named_server_limit: int,
    namespace: str,
    kubeconfig: Path,
) -> dict:
    """BinderHub's environment, as BinderHub's chart sets it for an
    authenticated BinderHub (`named_server_limit`: BinderHub's own check,
    an integer it needs; 0 turns it off and leaves the quota to hubext)."""
    return {
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_SERVICE_NAME": SERVICE,
        "JUPYTERHUB_API_URL": hub_api_url + "/",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_CLIENT_ID": f"service-{SERVICE}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{binder_url}/oauth_callback",
        "JUPYTERHUB_ALLOW_NAMED_SERVERS": "true",
        "JUPYTERHUB_NAMED_SERVER_LIMIT_PER_USER": str(named_server_limit),
        "BUILD_NAMESPACE": namespace,
        "KUBECONFIG": str(kubeconfig),
        # BinderHub's `git ls-remote`: no user or system git config
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }


class BinderHubService(Service):
    """BinderHub in a subprocess, in `state`, with `config` as its config
    file; `start()` returns once its /versions answers."""

    what = "BinderHub"

    def __init__(self, url: str, state: Path, config: str, env: dict):
        base = dict(os.environ)
        base.pop("JUPYTERHUB_API_TOKEN", None)
        base["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), base.get("PYTHONPATH")) if p
        )
        super().__init__(state, "binderhub.log", {**base, **env})
        self.url = url
        self.config = config

    def start(self, timeout: float = 60) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "binderhub_config.py").write_text(self.config)
        argv = [sys.executable, "-m", "devstack.binderhub_app"]
        self.spawn(
            argv + ["-f", "binderhub_config.py"], f"{self.url}/versions", timeout
        )
