"""The real BinderHub web app on a loopback address, for the local stack.

``python -m devstack.binderhub_app -f binderhub_config.py`` is BinderHub's
own entry point (``binderhub.app.BinderHub``: its handlers, launcher, OAuth
with the hub, launch page and event stream), with two differences, both here
and nowhere else:

- it listens on one loopback address only (`LoopbackBinderHub.ip`,
  127.0.0.1 unless set; BinderHub itself binds every interface);
- `InstantBuild` stands in for the image build, and only for that:
  no image is built here (no Docker, no repo2docker, no registry), so it
  reports the image as built at once, and BinderHub goes on to launch it as
  it would after a real build. The test kubelet ignores the image anyway.

`python -m devstack up` and the tests (tests/fixtures/binderhub.py) both run
BinderHub this way, with the configuration `devstack.binderhub` writes.
"""

import tornado.ioloop
from binderhub.app import BinderHub
from binderhub.build import BuildExecutor, ProgressEvent
from tornado.httpserver import HTTPServer
from traitlets import TraitError, Unicode, validate

from devstack.net import is_loopback


class InstantBuild(BuildExecutor):
    """Stand-in for the image build (only): the image counts as built."""

    def submit(self):
        self.progress(
            ProgressEvent.Kind.BUILD_STATUS_CHANGE, ProgressEvent.BuildStatus.BUILT
        )


class LoopbackBinderHub(BinderHub):
    """BinderHub, listening on one loopback address instead of every interface."""

    ip = Unicode("127.0.0.1", config=True, help="The 127.0.0.0/8 address to bind.")

    @validate("ip")
    def _loopback_only(self, proposal):
        if not is_loopback(proposal.value):
            raise TraitError(f"{proposal.value!r} is not in 127.0.0.0/8")
        return proposal.value

    def start(self, run_loop=True):
        self.log.info("BinderHub starting on %s:%i", self.ip, self.port)
        self.http_server = HTTPServer(self.tornado_app, xheaders=True)
        self.http_server.listen(self.port, address=self.ip)
        if run_loop:
            tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    LoopbackBinderHub.launch_instance()
