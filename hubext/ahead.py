"""A launch made ready while BinderHub builds its image.

BinderHub asks its launch quota class before it builds (`hubext.prebuild`).
From there it posts the launch to the hub::

    POST /hub/api/hubext/prepare/{username}
    {"repo_url": ..., "binder_persistent_request": ..., "image": ...}

and the hub does, ahead of the launch, what the launch itself would do
before its pod: the options checked as the spawner checks them, the
commit's `.resources` read into the spawner's cache and checked against the
site policy, the user's claim and SSH key Secret made. An image build takes
minutes, so when the launch comes the hub knows all of it, and the launch
makes no request of its own before the pod. It also means one read of
`.resources` per commit, where BinderHub and the hub each read it before.

Answers:

- 200 ``{"granted": "<the launch page's resources line>"}``;
- 409 ``{"message": ..., "refused": true, "permanent": bool}``: the launch
  would be refused; ``permanent`` when the same launch always would (a bad
  or oversized `.resources`, a host the hub may not read from, the
  cluster refusing the user's claim or key), so BinderHub fails its page
  now; false for what may pass (a host that did not answer).

Who may ask: a token with the ``servers`` scope for that user (BinderHub's
own, or the user's). Everything it does, that user's own launch would do;
it starts no server and counts against no quota.

Install it with `configure(c)` in the hub's config (the chart does).
"""

from __future__ import annotations

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from .errors import UserFacingError
from .repofiles import RepoFileError

#: Where the endpoint is, under the hub's prefix: /hub/api/hubext/prepare/{name}.
PREPARE_PATH = r"/api/hubext/prepare/([^/]+)"


class PrepareLaunchHandler(APIHandler):
    """POST /hub/api/hubext/prepare/{name}: a BinderHub launch, made ready."""

    @needs_scope("servers")
    async def post(self, user_name):
        from .spawner import HubextSpawner

        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"No such user: {user_name}")
        spawner_class = self.settings.get("spawner_class")
        if not (
            isinstance(spawner_class, type) and issubclass(spawner_class, HubextSpawner)
        ):
            raise web.HTTPError(404, "This hub's spawner is not hubext's")
        options = self.get_json_body()
        if not isinstance(options, dict):
            raise web.HTTPError(400, "Expected the launch options as a JSON object")
        spawner = spawner_class(
            user=user,
            hub=self.settings.get("hub"),
            authenticator=self.authenticator,
            config=self.settings.get("config"),
            user_options=options,
        )
        try:
            granted = await spawner.prepare_ahead()
        except UserFacingError as e:
            permanent = e.permanent if isinstance(e, RepoFileError) else True
            self.log.info(
                "Launch for %s refused ahead of the build: %s %s",
                user.name,
                e.message,
                e.fields,
            )
            self.set_status(409)
            self.write({"message": e.message, "refused": True, "permanent": permanent})
            return
        self.write({"granted": granted})


def configure(c) -> None:
    """Add the endpoint to a hub's config, keeping its other extra handlers."""
    handlers = list(c.JupyterHub.get("extra_handlers", []))
    if not any(entry[0] == PREPARE_PATH for entry in handlers):
        handlers.append((PREPARE_PATH, PrepareLaunchHandler))
    c.JupyterHub.extra_handlers = handlers
