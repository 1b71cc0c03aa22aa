# JupyterHub configuration for hubext's local stack (`bash dev/up`).
#
# Every hubext setting is listed with its default value, so this file is also
# a starting point for a real deployment: on Kubernetes the Helm chart writes
# the same settings from its values. Environment variables set by
# `python -m devstack up` point the hub at the local control plane.
import os
import sys

from hubext.quota import named_server_limit

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

# --- the hub -----------------------------------------------------------------
# Loopback only: the local stack never listens on or connects to anything else.
c.JupyterHub.bind_url = os.environ.get("HUBEXT_HUB_URL", "http://127.0.0.1:8000")
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("HUBEXT_HUB_PORT", "8081"))
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.ConfigurableHTTPProxy.api_url = os.environ.get(
    "HUBEXT_PROXY_API_URL", "http://127.0.0.1:8001"
)
c.JupyterHub.db_url = os.environ.get("HUBEXT_DB_URL", "sqlite:///jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.environ.get(
    "HUBEXT_COOKIE_SECRET_FILE", "jupyterhub_cookie_secret"
)

# Sign in with any username and no password: for the local stack only.
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"admin"}

# Projects are named servers. Spawn failures reach BinderHub's launch page
# through the progress stream only when the POST answers at once.
c.JupyterHub.allow_named_servers = True
c.JupyterHub.default_server_name = ""
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

# --- project quota (hubext.quota) ------------------------------------------------
# The hub refuses a 6th project with hubext's message; BinderHub's
# pre_launch_hook (hubext.binderhub) shows the same text on the launch page.
# (The local stack's BinderHub has the same limit: devstack/binderhub.py.)
c.JupyterHub.named_server_limit_per_user = named_server_limit
c.QuotaPolicy.default_limit = 5
c.QuotaPolicy.user_limits = {}
c.QuotaPolicy.group_limits = {}
c.QuotaPolicy.control_panel_url = ""

# --- the spawner (hubext.spawner.HubextSpawner) ---------------------------------
c.JupyterHub.spawner_class = "hubext"
c.KubeSpawner.namespace = os.environ.get("HUBEXT_NAMESPACE", "hubext-dev")
# The test kubelet runs jupyterhub-singleuser from the local virtualenv and
# ignores the image; a real cluster pulls the image BinderHub built.
c.KubeSpawner.image = os.environ.get("HUBEXT_IMAGE", "quay.io/jupyter/base-notebook")
c.KubeSpawner.start_timeout = 120
c.KubeSpawner.http_timeout = 60

c.HubextSpawner.resource_policy = {
    "defaults": {"gpu": 0, "cpur": 1, "cpul": 8, "memr": 1, "meml": 16},
    "maxima": {"gpu": 0, "cpur": 32, "cpul": 32, "memr": 256, "meml": 256},
    "gpu_resource": "nvidia.com/gpu",
}
c.HubextSpawner.resources_file = ".resources"
# BinderHub's image prefix: launches may only name images under it
c.HubextSpawner.allowed_images = [
    os.environ.get("HUBEXT_IMAGE_PREFIX", "registry.example.edu/binder/binder-")
]
c.HubextSpawner.storage_enabled = True
c.HubextSpawner.storage_class_name = None
c.HubextSpawner.storage_size = "10Gi"
c.HubextSpawner.storage_access_modes = ["ReadWriteMany"]
c.HubextSpawner.storage_claim_name_template = "{username}-nfs-pvc"
c.HubextSpawner.storage_mount_path_template = "/home/{username}-nfs-pvc"
c.HubextSpawner.ssh_enabled = True
c.HubextSpawner.ssh_key_type = "ed25519"
c.HubextSpawner.ssh_dir = "/home/jovyan/.ssh"
c.HubextSpawner.ssh_secret_name_template = "{username}-ssh-key"
c.HubextSpawner.notebook_uid = 1000

# --- reading .resources from the launched repository (hubext.repofiles) ---------
# The local stack reaches no outside host, so no repository host is allowed
# here; `python -m devstack up` allows its loopback git server below. Launches
# without BinderHub's options use the defaults. A deployment lists its hosts,
# e.g. {"github.com": {"provider": "github"}}.
c.RepoFileFetcher.hosts = {}
c.RepoFileFetcher.tokens = {}
c.RepoFileFetcher.timeout = 10.0
c.RepoFileFetcher.max_bytes = 65536
c.RepoFileFetcher.on_error = "fail"
c.RepoFileFetcher.cache_size = 1024
c.RepoFileFetcher.max_connections = 10

# --- idle project removal (hubext.idle), a hub-managed service -------------------
# Removes named servers idle for 7 days, running or stopped; default servers
# are only stopped. The role holds only the scopes the service uses.
c.JupyterHub.load_roles = [
    {
        "name": "hubext-idle",
        "scopes": [
            "list:users",
            "read:users:activity",
            "read:servers",
            "delete:servers",
        ],
        "services": ["hubext-idle"],
    }
]
c.JupyterHub.services = [
    {
        "name": "hubext-idle",
        "command": [
            sys.executable,
            "-m",
            "hubext.idle",
            "--timeout=604800",
            "--notice-before=86400",
            "--state-file=hubext-idle-state.json",
        ],
    }
]

# --- control panel (hubext.controlpanel) on /hub/home ---------------------------
# "3 of 5 projects", each project's repo, resources and removal date, and the
# user's SSH public key. The removal date uses hubext-idle's --timeout above.
from hubext.controlpanel import configure as configure_control_panel  # noqa: E402

configure_control_panel(c)
c.ControlPanel.show_ssh_key = True
c.ControlPanel.date_format = "%Y-%m-%d %H:%M UTC"

# --- the resource policy as JSON on /hub/hubext/policy (hubext.policypage) -------
# For `hubext check --policy-url http://127.0.0.1:8000/hub/hubext/policy`.
from hubext import policypage  # noqa: E402

policypage.configure(c)

# --- launches made ready before BinderHub's build (hubext.ahead) ------------------
# BinderHub's check before its build posts each launch to
# /hub/api/hubext/prepare/{user}: .resources read and checked, claim and key
# Secret made, so the launch after the build asks nothing before its pod.
from hubext import ahead  # noqa: E402

ahead.configure(c)

# --- BinderHub, the hub's authenticated service ----------------------------------
# `python -m devstack up` runs BinderHub next to the hub and writes the hub's
# side of it to the file named by HUBEXT_EXTRA_CONFIG: the `binder` service
# with its API token and OAuth client, the roles BinderHub's chart gives it
# and users, and the sample git server as the one repository host (see
# devstack/binderhub.py). On Kubernetes, BinderHub's chart sets the same.
if os.environ.get("HUBEXT_EXTRA_CONFIG"):
    load_subconfig(os.environ["HUBEXT_EXTRA_CONFIG"])  # noqa: F821 (JupyterHub's)
