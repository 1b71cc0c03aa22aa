"""Which refusals BinderHub's check before the build may end a launch with
(`hubext.ahead.is_permanent`): only those the launch after the build would
surely meet again; the rest wait for it, and BinderHub's retries."""

from types import SimpleNamespace

import pytest
from traitlets.config import Configurable

from hubext import binderhub, prebuild
from hubext.ahead import is_permanent
from hubext.errors import UserFacingError
from hubext.launchoptions import LaunchOptionsError
from hubext.names import OwnerMismatch
from hubext.repofiles import RepoFileError
from hubext.resources import ResourceFileError, ResourcePolicy, parse_resources
from hubext.sshkeys import SshKeyError
from hubext.storage import StorageUnavailable


def _resource_error() -> ResourceFileError:
    with pytest.raises(ResourceFileError) as caught:
        parse_resources(
            b"cpul=64\n", ResourcePolicy.from_dict({"maxima": {"cpul": 16}})
        )
    return caught.value


@pytest.mark.parametrize(
    "error, permanent",
    [
        (_resource_error(), True),
        (LaunchOptionsError("The launch option 'image' must be a string"), True),
        (OwnerMismatch("alice-nfs-pvc is recorded as another user's"), True),
        (RepoFileError("too large", permanent=True), True),
        (RepoFileError("github.com did not answer"), False),
        (StorageUnavailable("being deleted; launch again in a minute"), False),
        (SshKeyError("The cluster refused to create your SSH key"), False),
        (UserFacingError("The cluster refused to create your storage volume"), False),
    ],
    ids=[
        "bad .resources",
        "bad launch options",
        "another user's object",
        "file too large",
        "host did not answer",
        "claim being deleted",
        "key Secret refused",
        "claim refused by the cluster",
    ],
)
def test_only_sure_refusals_end_the_launch_before_the_build(error, permanent):
    assert is_permanent(error) is permanent


class _BinderHub(Configurable):
    """Stands in for BinderHub's app object: only its `launcher`, which the
    check reads the hub's address and token from."""

    def __init__(self, hub_url: str, **kwargs):
        super().__init__(**kwargs)
        self.launcher = SimpleNamespace(
            hub_url=hub_url, hub_url_local="", hub_api_token="t", log=None
        )


async def test_a_hub_that_does_not_answer_lets_the_launch_go_on(
    silent_server, monkeypatch
):
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    monkeypatch.setattr(binderhub, "REQUEST_TIMEOUT", 0.5)
    check = prebuild.HubextLaunchQuota(parent=_BinderHub(silent_server.url))
    launch = prebuild.BinderLaunch(
        username="alice",
        repo_url="https://github.com/physics/wave-lab",
        persistent_request="v2/gh/physics/wave-lab/" + "a" * 40,
        image="registry.example.edu/binder/x:" + "a" * 40,
    )
    # a timeout is no refusal, and the hub was asked: no check here either
    assert await check._prepare_on_hub(launch) is True
