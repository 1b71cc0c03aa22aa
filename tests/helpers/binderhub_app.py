"""BinderHub's entry point for the tests: devstack's, so there is one copy.

``python -m devstack.binderhub_app -f binderhub_config.py`` runs BinderHub
on loopback with `InstantBuild` standing in for the image build only; see
`devstack.binderhub_app`. The names stay importable from here.
"""

from devstack.binderhub_app import InstantBuild, LoopbackBinderHub

__all__ = ["InstantBuild", "LoopbackBinderHub"]

if __name__ == "__main__":
    LoopbackBinderHub.launch_instance()
