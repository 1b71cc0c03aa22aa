"""Run the real BinderHub web app on loopback, for the tests.

``python -m tests.helpers.binderhub_app -f binderhub_config.py`` is
BinderHub's own entry point (``binderhub.app.BinderHub``: its handlers,
launcher, OAuth with the hub, launch page and event stream), with two
differences, both here and nowhere else:

- it listens on 127.0.0.1 only (BinderHub itself binds every interface);
- `InstantBuild` stands in for the image build, and only for that:
  no image is built here (no Docker, no repo2docker, no registry), so it
  reports the image as built at once, and BinderHub goes on to launch it as
  it would after a real build.
"""

import tornado.ioloop
from binderhub.app import BinderHub
from binderhub.build import BuildExecutor, ProgressEvent
from tornado.httpserver import HTTPServer

LOOPBACK = "127.0.0.1"


class InstantBuild(BuildExecutor):
    """Stand-in for the image build (only): the image counts as built."""

    def submit(self):
        self.progress(
            ProgressEvent.Kind.BUILD_STATUS_CHANGE, ProgressEvent.BuildStatus.BUILT
        )


class LoopbackBinderHub(BinderHub):
    """BinderHub, listening on 127.0.0.1 instead of every interface."""

    def start(self, run_loop=True):
        self.log.info("BinderHub starting on %s:%i", LOOPBACK, self.port)
        self.http_server = HTTPServer(self.tornado_app, xheaders=True)
        self.http_server.listen(self.port, address=LOOPBACK)
        if run_loop:
            tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    LoopbackBinderHub.launch_instance()
