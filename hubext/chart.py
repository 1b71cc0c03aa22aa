"""The hubext chart's generated files and its overlay for the BinderHub chart.

- `binderhub_values` is the values overlay an admin gives the official
  BinderHub chart: it mounts the hubext ConfigMap into the hub and into
  BinderHub and loads it with `hubext.z2jh` (``hubext chart
  binderhub-values`` prints it).
- `schema_json` and `values_reference` turn the chart's one schema source,
  ``values.schema.yaml``, into ``values.schema.json`` and the docs'
  reference page (``charts/generate.py`` writes both; a test keeps them in
  sync).
"""

from __future__ import annotations

import json

import yaml

CONFIG_DIR = "/etc/hubext/config"
TOKENS_DIR = "/etc/hubext/tokens"
SETTINGS_FILE = f"{CONFIG_DIR}/hubext.yaml"
TOKENS_FILE = f"{TOKENS_DIR}/tokens.yaml"
SMTP_DIR = "/etc/hubext/smtp"
SMTP_PASSWORD_FILE = f"{SMTP_DIR}/password"

HUB_SNIPPET = f"""\
import hubext.z2jh
hubext.z2jh.configure(
    c,
    "{SETTINGS_FILE}",
    tokens_file="{TOKENS_FILE}",
    smtp_password_file="{SMTP_PASSWORD_FILE}",
)
"""
BINDERHUB_SNIPPET = f"""\
import hubext.z2jh
hubext.z2jh.configure_binderhub(c, "{SETTINGS_FILE}")
"""


def _image(ref: str) -> dict:
    """`{name, tag}` of an image reference such as registry/org/hub:1.0."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(
            f"image {ref!r} has no tag: give it as NAME:TAG, "
            "e.g. registry.example.edu/hubext-hub:0.1.0"
        )
    return {"name": name, "tag": tag}


def binderhub_values(
    name: str = "hubext",
    tokens_secret: str | None = None,
    hub_image: str | None = None,
    binderhub_image: str | None = None,
    smtp_secret: str | None = None,
) -> dict:
    """The overlay for the official BinderHub chart.

    `name` is the hubext release's ConfigMap (the release name, see
    `hubext.fullname`), `tokens_secret` the Secret with the repository host
    tokens (default: the chart's), `smtp_secret` the one with the email
    notice's SMTP password (default: the chart's). Both images need hubext installed, and
    BinderHub must be authenticated (``config.BinderHub.auth_enabled``) for
    named servers to reach it.
    """
    tokens_secret = tokens_secret or f"{name}-repo-host-tokens"
    smtp_secret = smtp_secret or f"{name}-smtp"
    config_volume = {"name": "hubext-config", "configMap": {"name": name}}
    config_mount = {"name": "hubext-config", "mountPath": CONFIG_DIR, "readOnly": True}
    hub = {
        # BinderHub launches named servers only with these two: the chart
        # passes them to BinderHub as JUPYTERHUB_ALLOW_NAMED_SERVERS and
        # JUPYTERHUB_NAMED_SERVER_LIMIT_PER_USER, and BinderHub cannot start
        # with the first and an empty second. The limit itself is hubext's
        # (configure and configure_binderhub replace it in hub and BinderHub).
        "allowNamedServers": True,
        "namedServerLimitPerUser": 0,
        "extraConfig": {"hubext": HUB_SNIPPET},
        "extraVolumes": [
            config_volume,
            {
                "name": "hubext-tokens",
                "secret": {"secretName": tokens_secret, "optional": True},
            },
            {
                "name": "hubext-smtp",
                "secret": {"secretName": smtp_secret, "optional": True},
            },
        ],
        "extraVolumeMounts": [
            config_mount,
            {"name": "hubext-tokens", "mountPath": TOKENS_DIR, "readOnly": True},
            {"name": "hubext-smtp", "mountPath": SMTP_DIR, "readOnly": True},
        ],
    }
    if hub_image:
        hub["image"] = _image(hub_image)
    values = {
        # BinderHub logs an error in its config file and starts without the
        # file (no hook, no auth); JupyterHub stops. Make BinderHub stop too.
        "extraEnv": {"TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR": "true"},
        "extraConfig": {"hubext": BINDERHUB_SNIPPET},
        "extraVolumes": [config_volume],
        "extraVolumeMounts": [config_mount],
        "jupyterhub": {
            # the BinderHub chart turns on jupyterhub-idle-culler with
            # --cull-users: a user idle for an hour is deleted, every project
            # with them; hubext-idle removes projects after its own timeout
            "cull": {"enabled": False},
            "hub": hub,
        },
    }
    if binderhub_image:
        values["image"] = _image(binderhub_image)
    return values


def dump_yaml(data) -> str:
    """YAML with multi-line strings as blocks, keys in the order given."""

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    def text(dumper, value):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True)


OVERLAY_HEADER = """\
# Values for the official BinderHub chart, beside a hubext release named
# "hubext" in the same namespace:
#
#   helm upgrade --install binderhub jupyterhub/binderhub -f binderhub-values.yaml \\
#     -f your-binderhub-values.yaml
#
# Generated by charts/generate.py (hubext chart binderhub-values); for another
# release name, token or SMTP Secrets of your own, or the images, run
# `hubext chart binderhub-values --help`. The hub and BinderHub images must
# have hubext installed: set jupyterhub.hub.image and image in your values.
# BinderHub must be authenticated (config.BinderHub.auth_enabled: true) for
# it to launch the named servers the project quota counts.
"""


def schema_json(schema: dict) -> str:
    """``values.schema.json``: the schema with its anchors expanded."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _type_of(node: dict) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    kind = node.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else kind


def _leaves(node: dict, defaults, path: str = ""):
    """(dotted path, schema node, default) of every documented value."""
    for key, sub in node.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        default = defaults.get(key) if isinstance(defaults, dict) else None
        yield here, sub, default
        if sub.get("type") == "object" and "properties" in sub:
            yield from _leaves(sub, default, here)


def values_reference(schema: dict, defaults: dict) -> str:
    """The docs' Helm values reference (MyST), from the schema and values.yaml."""
    lines = [
        "# Helm values",
        "",
        "<!-- Generated by charts/generate.py from charts/hubext/values.schema.yaml;",
        "     edit the schema, not this page. -->",
        "",
        "Every value of the hubext chart, with the setting it fills. Helm",
        "checks values against this schema before rendering: an unknown key",
        "or a wrong type stops `helm install` with the value's path. See",
        "{doc}`../how-to/install-with-helm` for examples.",
        "",
    ]
    for path, node, default in _leaves(schema, defaults):
        depth = min(path.count(".") + 2, 4)
        lines += [f"{'#' * depth} `{path}`", ""]
        lines += [f"Type: {_type_of(node)}", ""]
        if not (node.get("type") == "object" and "properties" in node):
            lines += [f"Default: `{json.dumps(default, ensure_ascii=False)}`", ""]
        lines += [node.get("description", "").strip(), ""]
    return "\n".join(lines).rstrip() + "\n"
