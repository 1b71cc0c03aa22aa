"""Refusals before the image build, through BinderHub's launch quota hook.

BinderHub asks its launch quota class (``c.BinderHub.launch_quota_class``)
twice per launch: before it builds an image, and again before it asks the
hub for a server. A `LaunchQuotaExceeded` raised there fails the launch page
at once, with its message shown once. Any later refusal, from the hub or
from ``pre_launch_hook``, comes after the build and is retried 4 times
(about 30 s of "Launching your Binder...").

`HubextLaunchQuota` answers there what the hub would refuse later:

- a full project quota (the user's projects, read from the hub as
  ``pre_launch_hook`` reads them);
- whatever the hub refuses when the launch is posted to it ahead of the
  build (`hubext.ahead`): a `.resources` file the site policy refuses (bad
  syntax, a value above the site maximum, a file too large), a host the hub
  may not read from, the cluster refusing the user's claim or key. The hub
  also makes the launch ready there, before the image build. A hub without
  that endpoint gets the older check: BinderHub reads `.resources` itself,
  with the same `RepoFileFetcher` settings and resource policy as the hub's.

BinderHub hands the check the image name, the repository URL and the repo
config, but not the signed-in user nor the resolved launch request. So
`HubextLaunchQuota` wraps BinderHub's ``BuildHandler.check_quota`` once,
which then keeps both in a context variable while the check runs (each
request runs in a task of its own, so the value never leaks into another
request). If a later BinderHub no longer has that method, the check logs it
once and leaves the refusals to the hub.

The check is advisory. It refuses only what the hub would refuse for sure
(a cause the user must fix); a host that does not answer, a hub that
cannot be asked, or any other failure lets the launch go on to the hub,
whose checks hold under concurrent launches.
"""

from __future__ import annotations

import contextvars
import functools
import json
from dataclasses import dataclass

from binderhub.quota import KubernetesLaunchQuota, LaunchQuotaExceeded
from tornado.httpclient import AsyncHTTPClient
from traitlets import Dict, Unicode, validate

from .binderhub import hub_request, project_refusal
from .quota import QuotaPolicy
from .repofiles import RepoFileError, RepoFileFetcher
from .resources import ResourceFileError, ResourcePolicy, parse_resources


@dataclass(frozen=True)
class BinderLaunch:
    """Who launches what, as BinderHub's build handler knows it."""

    username: str  # "" when BinderHub is not authenticated
    repo_url: str
    persistent_request: str  # v2/<provider>/<spec>/<resolved commit>
    image: str

    def user_options(self) -> dict:
        """The launch as the hub's spawner will receive it."""
        return {
            "repo_url": self.repo_url,
            "binder_persistent_request": self.persistent_request,
            "image": self.image,
        }


_current_launch: contextvars.ContextVar[BinderLaunch | None] = contextvars.ContextVar(
    "hubext_binder_launch", default=None
)


def _launch_of(handler) -> BinderLaunch:
    user = handler.current_user
    return BinderLaunch(
        username=user.get("name", "") if isinstance(user, dict) else "",
        repo_url=getattr(handler, "repo_url", "") or "",
        persistent_request=getattr(handler, "binder_persistent_request", "") or "",
        image=getattr(handler, "image_name", "") or "",
    )


def remember_launches(handler_class) -> bool:
    """Make ``handler_class.check_quota`` keep its launch for the check.

    Returns False when the class has no such method (then nothing changes).
    Safe to call more than once.
    """
    original = getattr(handler_class, "check_quota", None)
    if original is None:
        return False
    if getattr(original, "_hubext_remembers", False):
        return True

    @functools.wraps(original)
    async def check_quota(self, provider):
        token = _current_launch.set(_launch_of(self))
        try:
            return await original(self, provider)
        finally:
            _current_launch.reset(token)

    check_quota._hubext_remembers = True
    handler_class.check_quota = check_quota
    return True


class HubextLaunchQuota(KubernetesLaunchQuota):
    """BinderHub's launch quota, plus hubext's refusals before the build.

    BinderHub's own quotas (``total_quota``, per-repository ``quota``) are
    checked first, as before. Set the same resource policy and repository
    files setting as the hub's (the chart's BinderHub config does)::

        c.BinderHub.launch_quota_class = "hubext.prebuild.HubextLaunchQuota"
        c.HubextLaunchQuota.resource_policy = {...}  # = c.HubextSpawner's
        c.RepoFileFetcher.hosts = {...}  # = the hub's
        c.QuotaPolicy.default_limit = 5  # = the hub's
    """

    resource_policy = Dict(
        config=True,
        help="""The hub's `HubextSpawner.resource_policy`, to refuse the
        same `.resources` files before the build.""",
    )

    @validate("resource_policy")
    def _validate_resource_policy(self, proposal):
        try:
            ResourcePolicy.from_dict(proposal["value"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"c.HubextLaunchQuota.resource_policy: {e}") from None
        return proposal["value"]

    resources_file = Unicode(
        ".resources",
        config=True,
        help="The hub's `HubextSpawner.resources_file`.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from binderhub.builder import BuildHandler

        self._knows_launches = remember_launches(BuildHandler)
        if not self._knows_launches:
            self.log.warning(
                "hubext: this BinderHub has no BuildHandler.check_quota, so "
                "quota and .resources refusals come after the build, from the hub"
            )
        self._fetcher = None

    async def check_repo_quota(self, image_name, repo_config, repo_url):
        result = await super().check_repo_quota(image_name, repo_config, repo_url)
        launch = _current_launch.get()
        if launch is None:
            return result
        await self._check_projects(launch)
        if not await self._prepare_on_hub(launch):
            await self._check_resources(launch)
        return result

    async def _check_projects(self, launch: BinderLaunch) -> None:
        launcher = getattr(self.parent, "launcher", None)
        if not launch.username or launcher is None or not launcher.allow_named_servers:
            return
        policy = QuotaPolicy(config=self.config)
        refusal = await project_refusal(launcher, launch.username, policy)
        if refusal is not None:
            raise LaunchQuotaExceeded(
                refusal.message,
                quota=refusal.quota,
                used=refusal.used,
                status="hubext_projects",
            )

    async def _prepare_on_hub(self, launch: BinderLaunch) -> bool:
        """Post the launch to the hub (`hubext.ahead`), which checks it and
        makes it ready before the image build; refuse what the hub refuses
        for sure. False when the hub has no such endpoint (then the check
        runs here); True otherwise, also when the hub could not be asked."""
        launcher = getattr(self.parent, "launcher", None)
        if not launch.username or launcher is None:
            return False
        body = json.dumps(launch.user_options())
        request = hub_request(
            launcher, "hubext/prepare/", launch.username, method="POST", body=body
        )
        url = request.url
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except Exception as e:  # a timeout, a cut connection: advisory only
            self.log.info("hubext: could not ask the hub at %s (%s)", url, e)
            return True
        answer = _json_object(response.body)
        if response.code in (403, 404):
            if not self._warned_no_endpoint:
                self._warned_no_endpoint = True
                self.log.warning(
                    "hubext: the hub answered %s to %s; BinderHub checks "
                    ".resources itself. The hub's config needs "
                    "hubext.ahead.configure(c), and BinderHub's hub token the "
                    "servers scope",
                    response.code,
                    url,
                )
            return False
        if response.code == 200 and not answer.get("prepared"):
            return False  # nothing done there (not hubext's spawner, say)
        if response.code == 409 and answer.get("permanent"):
            message = str(answer.get("message") or "refused by the hub")
            self.log.info("hubext: the hub refused %s: %s", launch.repo_url, message)
            raise LaunchQuotaExceeded(
                message, quota=0, used=0, status="hubext_resources"
            )
        if response.code not in (200, 409):
            self.log.warning(
                "hubext: the hub answered %s to %s; the launch goes on",
                response.code,
                url,
            )
        return True

    _warned_no_endpoint = False

    async def _check_resources(self, launch: BinderLaunch) -> None:
        try:
            data = await self.fetcher().fetch(
                launch.user_options(), self.resources_file
            )
            parse_resources(
                data,
                ResourcePolicy.from_dict(self.resource_policy),
                filename=self.resources_file,
            )
        except ResourceFileError as e:
            refusal = e.message
        except RepoFileError as e:
            if not e.permanent:
                self.log.info(
                    "hubext: could not check %s before the build (%s); "
                    "the hub checks it at launch",
                    self.resources_file,
                    e.message,
                )
                return
            refusal = e.message
        except Exception:
            self.log.exception("hubext: the check before the build failed")
            return
        else:
            return
        self.log.info(
            "hubext: refused %s before the build: %s", launch.repo_url, refusal
        )
        raise LaunchQuotaExceeded(refusal, quota=0, used=0, status="hubext_resources")

    def fetcher(self) -> RepoFileFetcher:
        """For a hub without `hubext.ahead`: BinderHub reads the file itself."""
        if self._fetcher is None:
            self._fetcher = RepoFileFetcher(config=self.config, log=self.log)
        return self._fetcher


def _json_object(body: bytes) -> dict:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
