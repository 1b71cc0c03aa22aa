"""Benchmark: requests to the git host when many users launch one commit.

`--users` users launch the same repo@commit at once through a real
JupyterHub running hubext's spawner (POSTs with BinderHub's `user_options`,
all concurrently) against the local control plane. The repository's host is
the loopback GitHub stand-in, which counts every request it gets. Printed
side by side, for three hubs started in turn:

- hubext as shipped: one fetcher per hub process, with its cache and its
  sharing of in-flight requests;
- the same with `c.RepoFileFetcher.cache_size = 0`: in-flight sharing only;
- a spawner that makes a new fetcher per spawn (`benchmarks._common.
  FreshFetcherSpawner`): no cache and no sharing, the yardstick.

The burst ends once every launch has passed the repo-file step, seen as its
pod existing (KubeSpawner creates it right after hubext's steps). No test
kubelet runs, so the pods stay Pending and no single-user server starts;
storage and SSH are off, so the spawner's only I/O before the pod is the
file read being counted.

    python benchmarks/launch_burst.py --users 100
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes_asyncio import client  # noqa: E402

from benchmarks import _common  # noqa: E402
from hubext.spawner import RESOURCES_ANNOTATION  # noqa: E402
from tests.fixtures.hubext_hub import REPO, RESOURCES, SHA  # noqa: E402
from tests.helpers.launch import binder_user_options, server_name  # noqa: E402

#: (name, spawner class, extra hub config)
VARIANTS = (
    ("hubext", "hubext", ""),
    ("hubext, cache_size=0", "hubext", "c.RepoFileFetcher.cache_size = 0\n"),
    ("fresh fetcher per spawn", "benchmarks._common.FreshFetcherSpawner", ""),
)
BURST_CONFIG = """
c.HubextSpawner.storage_enabled = False
c.HubextSpawner.ssh_enabled = False
"""
#: What the stand-in's `.resources` asks for, as the pod annotation says it.
EXPECTED = '"cpur": 2.0'


async def burst(api, kubeconfig, forge, variant, args) -> dict:
    """One hub, `args.users` concurrent launches; the forge's request count."""
    label, spawner, extra = variant
    users, timeout = args.users, args.timeout
    ns = await _common.new_namespace(api, "bench-burst")
    config = _common.hubext_config(spawner, ns, forge.url, timeout) + BURST_CONFIG
    env = {"KUBECONFIG": str(kubeconfig)}
    hub = await _common.start_hub(config + extra, env, args.workdir / ns)
    try:
        names = [f"burst-{i}" for i in range(users)]
        await _common.create_users(hub, names)
        before = len(forge.requests)
        began = time.perf_counter()
        codes = await asyncio.gather(*(_post(hub, user) for user in names))
        refused = [c for c in codes if c not in (201, 202)]
        if refused:
            raise RuntimeError(f"{label}: the hub refused launches: {refused[:5]}")
        pods = await _all_pods(api, ns, users, timeout, hub)
        seconds = time.perf_counter() - began
        used_file = sum(
            EXPECTED in (p.metadata.annotations or {}).get(RESOURCES_ANNOTATION, "")
            for p in pods
        )
        return {
            "variant": label,
            "users": users,
            "requests": len(forge.requests) - before,
            "pods_with_file_resources": used_file,
            "seconds": seconds,
        }
    finally:
        await hub.stop()


async def _post(hub, user: str) -> int:
    options = binder_user_options(REPO, SHA)
    path = f"/users/{user}/servers/{server_name(REPO)}"
    code, _ = await hub.api("POST", path, body=options)
    return code


async def _all_pods(api, namespace: str, users: int, timeout: float, hub):
    """Wait until every launch has its pod; return the pods."""
    core = client.CoreV1Api(api)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        pods = (await core.list_namespaced_pod(namespace)).items
        if len(pods) >= users:
            return pods
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"only {len(pods)} of {users} pods after {timeout}s; hub log "
        f"{hub.log_path}:\n{hub.log_text()[-3000:]}"
    )


def report(results: list[dict]) -> None:
    users = results[0]["users"]
    print(
        f"launch burst: {users} users launch {REPO}@{SHA[:7]} at once "
        "(GitHub stand-in on loopback)\n"
    )
    print(
        f"{'variant':<26} {'requests to the git host':>24} "
        f"{'pods with the file':>18} {'burst s':>8}"
    )
    for r in results:
        print(
            f"{r['variant']:<26} {r['requests']:>24} "
            f"{r['pods_with_file_resources']:>18} {r['seconds']:>8.2f}"
        )


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100, metavar="N")
    parser.add_argument("--timeout", type=float, default=300, metavar="SECONDS")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the hub logs")
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error("--users must be >= 1")
    return args


async def run(args) -> list[dict]:
    _common.configure_http_client(args.users + 20)
    forge, server = _common.serve_forge()
    forge.add(REPO, SHA, ".resources", RESOURCES)
    results = []
    try:
        async with _common.local_cluster(with_kubelet=False) as (kubeconfig, api, _):
            for variant in VARIANTS:
                results.append(await burst(api, kubeconfig, forge, variant, args))
    finally:
        server.stop()
    return results


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    with _common.workdir(args.keep) as args.workdir:
        results = asyncio.run(run(args))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
