"""Benchmark: how long the BinderHub launch page takes to say a launch failed.

The real BinderHub web app (devstack.binderhub_app, `InstantBuild` standing
in for the image build) runs as the authenticated service of a real
JupyterHub with hubext's spawner, on the local control plane and test
kubelet. Each refusal is launched as the page launches it (sign in, the
page's build token, its event stream) and timed from the request to the
"failed" event; the number of times the message reached the page is
counted. Three BinderHub configurations, one after the other, against the
same hub, at BinderHub's default retry delay (4 s, doubling):

- BinderHub as shipped: no hubext setting in BinderHub; the hub refuses;
- pre_launch_hook: hubext's hook before each launch attempt (the project
  quota only), as before the check before the build existed;
- hubext: `HubextLaunchQuota` before the build, and the hook.

Two refusals: a `.resources` with a mistake, and a 2nd project at a quota
of 1 (the user holds one, stopped).

    python benchmarks/refusal_time.py --launches 5
"""

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common  # noqa: E402
from devstack import binderhub as devbinder  # noqa: E402
from devstack import gitserver  # noqa: E402
from tests.fixtures.binderhub import (  # noqa: E402
    IMAGE_PREFIX,
    BrowserSession,
    RunningBinderHub,
)
from tests.fixtures.githosts import make_repository  # noqa: E402
from tests.fixtures.hubproc import free_port  # noqa: E402
from tests.helpers import processes  # noqa: E402

HOOK = """\
from hubext.binderhub import pre_launch_hook

c.Launcher.pre_launch_hook = pre_launch_hook
c.QuotaPolicy.default_limit = 1
"""
BEFORE_BUILD = (
    HOOK
    + """\
from hubext.prebuild import HubextLaunchQuota

c.BinderHub.launch_quota_class = HubextLaunchQuota
c.HubextLaunchQuota.resource_policy = {policy!r}
c.RepoFileFetcher.hosts = {hosts!r}
"""
)
VARIANTS = ("BinderHub as shipped", "pre_launch_hook", "hubext")
#: BinderHub's own retry delay (devstack's config shortens it for the tests)
DEFAULT_RETRY_DELAY = 4
BAD_RESOURCES = b"cpur=1\nmemr=4G\n"


def quota_lines(variant: str, git_host: str) -> str:
    from tests.fixtures.hubext_hub import POLICY

    if variant == "BinderHub as shipped":
        return ""
    if variant == "pre_launch_hook":
        return HOOK
    hosts = {git_host: {"provider": "git", "allow_http": True}}
    return BEFORE_BUILD.format(policy=POLICY, hosts=hosts)


async def refusal(
    session: BrowserSession, spec: str, timeout: float, says: str
) -> tuple:
    """(seconds to "failed", how many times the page showed the refusal's
    own words `says`)."""
    began = time.perf_counter()
    result = await asyncio.to_thread(session.launch, spec, timeout)
    seconds = time.perf_counter() - began
    if not result.failed:
        raise RuntimeError(f"the launch of {spec} did not fail:\n{result.text}")
    return seconds, result.text.count(says), result.final["message"].strip()


async def bench(
    launches: int, workdir: Path, timeout: float, retry_delay: float
) -> list[dict]:
    (workdir / "git").mkdir()
    git = gitserver.GitServer(root=workdir / "git")
    git.commits = make_repository(workdir / "git")
    bad = git.add_commit("bad", {".resources": BAD_RESOURCES})
    git_http = gitserver.serve(git)
    git_host = git.url.split("://", 1)[1]
    rows = []
    async with _common.local_cluster() as (kubeconfig, api, _kubelet):
        namespace = await _common.new_namespace(api, "bench-refusal")
        binder_url = f"http://127.0.0.1:{free_port()}"
        token = secrets.token_hex(32)
        config = _common.hubext_config(
            "hubext", namespace, "http://127.0.0.1:9", timeout, limit=1
        ) + devbinder.hub_config(token, binder_url, git_host)
        hub = await _common.start_hub(
            config, {"KUBECONFIG": str(kubeconfig)}, workdir / "hub"
        )
        env = processes.child_env(
            devbinder.binderhub_env(
                token, binder_url, hub.api_url, 0, namespace, kubeconfig
            )
        )
        try:
            for variant in VARIANTS:
                rows += await one_variant(
                    Stand(hub, git, git_host, binder_url, env, workdir, bad, timeout),
                    variant,
                    launches,
                    retry_delay,
                )
        finally:
            await hub.stop()
            git_http.stop()
    return rows


@dataclass
class Stand:
    """What every BinderHub configuration is measured against."""

    hub: object
    git: object
    git_host: str
    binder_url: str
    env: dict
    workdir: Path
    bad: str  # the commit with the bad .resources
    timeout: float


async def one_variant(
    stand: Stand, variant: str, launches: int, retry_delay: float
) -> list[dict]:
    hub, git, binder_url, timeout = (
        stand.hub,
        stand.git,
        stand.binder_url,
        stand.timeout,
    )
    directory = stand.workdir / variant.replace(" ", "-")
    directory.mkdir()
    (directory / "config.py").write_text(
        devbinder.binderhub_config(
            binder_url, hub.url, IMAGE_PREFIX, quota_lines(variant, stand.git_host)
        )
        + f"c.Launcher.retry_delay = {retry_delay}\n"
    )
    binder = RunningBinderHub(
        url=binder_url, hub=hub, dir=directory, git_server=git, env=stand.env
    )
    await binder.start()
    try:
        user = f"u{VARIANTS.index(variant)}"
        session = BrowserSession(binder, user)
        await asyncio.to_thread(session.sign_in)

        async def timed(refused, spec, says) -> dict:
            times, shown = [], []
            for _ in range(launches):
                seconds, count, final = await refusal(session, spec, timeout, says)
                times.append(seconds)
                shown.append(count)
            return {
                "variant": variant,
                "refusal": refused,
                "seconds": times,
                "shown": shown,
                "final": final,
            }

        # with no project held (each refused attempt is removed again)
        rows = [await timed(".resources mistake", binder.spec(stand.bad), "memr=4G")]
        # the one project the quota allows, then stopped (it still counts)
        held = await asyncio.to_thread(session.launch, binder.spec("HEAD"), timeout)
        if not held.ready:
            raise RuntimeError(f"{variant}: the first launch failed:\n{held.text}")
        code, _ = await hub.api("DELETE", f"/users/{user}/servers/{held.server_name}")
        if code not in (202, 204):
            raise RuntimeError(f"{variant}: stopping the held project: {code}")
        rows.append(
            await timed(
                "2nd project at 1 of 1", binder.spec("HEAD"), "You have 1 of 1 project"
            )
        )
        return rows
    finally:
        await binder.stop()


def table(rows: list[dict]) -> str:
    head = (
        f"{'refusal':<22} {'BinderHub config':<22} {'n':>3} {'median s':>9} "
        f"{'max s':>7} {'message shown':>14}"
    )
    lines = [head]
    for r in sorted(rows, key=lambda r: (r["refusal"], VARIANTS.index(r["variant"]))):
        lines.append(
            f"{r['refusal']:<22} {r['variant']:<22} {len(r['seconds']):>3} "
            f"{statistics.median(r['seconds']):>9.2f} {max(r['seconds']):>7.2f} "
            f"{statistics.median(r['shown']):>13g}x"
        )
    lines += ["", "the page's last line, as shown:"]
    for r in sorted(rows, key=lambda r: (r["refusal"], VARIANTS.index(r["variant"]))):
        lines.append(f"  {r['refusal']} / {r['variant']}: {r['final']}")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=5, help="per refusal")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument(
        "--retry-delay",
        type=float,
        default=DEFAULT_RETRY_DELAY,
        help="BinderHub's c.Launcher.retry_delay (its default: 4)",
    )
    parser.add_argument("--keep", action="store_true", help="keep logs")
    args = parser.parse_args(argv)
    with _common.workdir(args.keep) as workdir:
        rows = asyncio.run(
            bench(args.launches, workdir, args.timeout, args.retry_delay)
        )
    print(table(rows), flush=True)
    return rows


if __name__ == "__main__":
    main()
