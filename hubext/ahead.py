"""A launch made ready before BinderHub builds its image.

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

- 200 ``{"prepared": true, "granted": "<the launch page's resources line>"}``;
- 200 ``{"prepared": false, "reason": ...}``: nothing done (no such user,
  or the hub's spawner is not hubext's); BinderHub then checks by itself;
- 409 ``{"message": ..., "refused": true, "permanent": bool}``: the launch
  would be refused; ``permanent`` when the same launch after the build
  surely would be too (a bad or oversized `.resources`, a host the hub may
  not read from, bad launch options, a claim or Secret recorded as another
  user's), so BinderHub fails its page now; false for what may pass (a
  host that did not answer, the cluster refusing or still deleting the
  user's claim or key), which the launch after the build meets again, with
  BinderHub's retries;
- 413 for a body over `MAX_BODY_BYTES`.

Who may ask: a hub service (BinderHub) whose token has the ``servers``
scope for that user. Not users themselves: what a launch reads from the
repository hosts and makes in the cluster stays behind the hub's own
limits on launches (the project quota, one start at a time per server).
Everything it does, that user's own launch would do; it starts no server
and counts against no quota.

Install it with `configure(c)` in the hub's config (the chart does).
"""

from __future__ import annotations

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from .errors import UserFacingError
from .launchoptions import LaunchOptionsError
from .names import OwnerMismatch
from .repofiles import RepoFileError
from .resources import ResourceFileError

#: Where the endpoint is, under the hub's prefix: /hub/api/hubext/prepare/{name}.
PREPARE_PATH = r"/api/hubext/prepare/([^/]+)"
#: BinderHub's launch options are a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
#: Refusals the same launch after the build would surely meet again.
PERMANENT_REFUSALS = (ResourceFileError, LaunchOptionsError, OwnerMismatch)


def is_permanent(error: UserFacingError) -> bool:
    """Whether to fail BinderHub's page now rather than after the build."""
    if isinstance(error, RepoFileError):
        return error.permanent
    return isinstance(error, PERMANENT_REFUSALS)


class PrepareLaunchHandler(APIHandler):
    """POST /hub/api/hubext/prepare/{name}: a BinderHub launch, made ready."""

    @needs_scope("servers")
    async def post(self, user_name):
        from .spawner import HubextSpawner

        if not isinstance(self.current_user, orm.Service):
            raise web.HTTPError(403, "Only a hub service (BinderHub) prepares launches")
        if len(self.request.body or b"") > MAX_BODY_BYTES:
            raise web.HTTPError(413, f"Launch options over {MAX_BODY_BYTES} bytes")
        user = self.find_user(user_name)
        spawner_class = self.settings.get("spawner_class")
        if user is None:
            self.write({"prepared": False, "reason": "no such user"})
            return
        if not (
            isinstance(spawner_class, type) and issubclass(spawner_class, HubextSpawner)
        ):
            self.write({"prepared": False, "reason": "the spawner is not hubext's"})
            return
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
            permanent = is_permanent(e)
            self.log.info(
                "Launch for %s refused ahead of the build: %s %s",
                user.name,
                e.message,
                e.fields,
            )
            self.set_status(409)
            self.write({"message": e.message, "refused": True, "permanent": permanent})
            return
        self.write({"prepared": True, "granted": granted})


def configure(c) -> None:
    """Add the endpoint to a hub's config, keeping its other extra handlers."""
    handlers = list(c.JupyterHub.get("extra_handlers", []))
    if not any(entry[0] == PREPARE_PATH for entry in handlers):
        handlers.append((PREPARE_PATH, PrepareLaunchHandler))
    c.JupyterHub.extra_handlers = handlers
