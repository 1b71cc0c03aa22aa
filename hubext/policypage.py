"""The hub's resource policy, published as JSON for repository authors.

`hubext check --policy-url https://hub.example.edu/hub/hubext/policy` checks a
repository's `.resources` against what this hub allows, so an author learns
that `cpul=32` is above the maximum before launching, not at launch. The page
needs no login (a repository's CI has none) and shows only what the launch
page would tell anyone anyway: the defaults, the maxima, the largest file
and the file's name. It is built once per hub process from the hub's own
configuration of the spawner, so it always matches what launches get.

Install it with `configure(c)` in the hub's config (the chart does, unless
`resources.publishPolicy` is false).
"""

from __future__ import annotations

import json

from jupyterhub.handlers import BaseHandler

from .resources import ResourcePolicy

#: Where the page is, under the hub's prefix: /hub/hubext/policy.
POLICY_PATH = "/hubext/policy"
SETTINGS_KEY = "hubext_published_policy"
MAX_AGE = 300  # seconds a client may keep the answer


def configured_value(config, spawner_class, trait: str):
    """The value of `trait` the hub's spawner class gets from `config`:
    the most specific class section that sets it (as traitlets resolves
    config for a class and its bases), else the trait's default."""
    value = spawner_class.class_traits()[trait].default()
    for klass in reversed(spawner_class.__mro__):
        name = klass.__name__
        if name in config and trait in config[name]:
            value = config[name][trait]
    return value


def published_policy(config, spawner_class) -> dict:
    """The JSON document of the page: the policy as a `--policy` file
    takes it, and the name of the file the hub reads."""
    policy = ResourcePolicy.from_dict(
        configured_value(config, spawner_class, "resource_policy")
    )
    return {
        **policy.as_dict(),
        "resources_file": configured_value(config, spawner_class, "resources_file"),
    }


class PolicyHandler(BaseHandler):
    """GET /hub/hubext/policy: the policy document, no login needed."""

    def get(self):
        body = self.settings.get(SETTINGS_KEY)
        if body is None:
            from .spawner import HubextSpawner

            spawner_class = self.settings.get("spawner_class")
            if not (
                isinstance(spawner_class, type)
                and issubclass(spawner_class, HubextSpawner)
            ):
                spawner_class = HubextSpawner
            document = published_policy(self.settings.get("config", {}), spawner_class)
            body = json.dumps(document, indent=2, sort_keys=True) + "\n"
            self.settings[SETTINGS_KEY] = body
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", f"public, max-age={MAX_AGE}")
        self.finish(body)


def configure(c) -> None:
    """Add the page to a hub's config, keeping its other extra handlers."""
    handlers = list(c.JupyterHub.get("extra_handlers", []))
    if not any(entry[0] == POLICY_PATH for entry in handlers):
        handlers.append((POLICY_PATH, PolicyHandler))
    c.JupyterHub.extra_handlers = handlers
