"""Benchmark: spawn time of hubext's spawner against plain KubeSpawner.

One local control plane and test kubelet (devstack) serve two real
JupyterHubs with the same base configuration, each in its own namespace:
one runs `kubespawner.KubeSpawner`, the other hubext's spawner. Each launch
is made as BinderHub makes it (POST with its `user_options`, then the
progress stream) and timed from the POST to the stream's "ready" event.

- sequential: `--sequential N` launches per hub, in pairs (plain, hubext),
  the order flipped every pair; each server is stopped before the next;
- concurrent: `--concurrent C` launches at once on one hub, then on the
  other (`--rounds R`, the order flipped every round), stopped in between;
  each round starts once the machine is quiet again. `--returning` makes
  them users who launched before.

Every launch is a new user (quota: 5 projects each) and a new commit, so
hubext creates the user's PVC and SSH Secret and reads `.resources` from
the loopback GitHub stand-in each time: the cost of a user's first launch
with an uncached commit, its worst case. Where hubext's time goes comes from
the hubs themselves: their spawners are `benchmarks._common.Timed*`
subclasses, which only log how long each step took.

The test kubelet runs the local `jupyterhub-singleuser` in milliseconds
where a node's runtime takes a few hundred to create and start a container,
so it charges each container it starts (every init container and the
notebook) `--container-start` seconds, default 0.3: a model of containerd
starting a container from a cached image, without which an extra container
in hubext's pods would look free. The header prints the value used.

What each pod runs is `--notebook`: by default `modelled_notebook.py`, a
server that listens after `--server-start` seconds (default 2.0, what the
real server took here alone) and answers every request. On a cluster the
notebook starts on a node, off the hub's CPUs; here fifty real servers
starting at once spend 120 of a round's 130 CPU seconds beside the hub and
the API server, varying by a fifth from round to round, which buries what a
spawner adds. `--notebook singleuser` runs the real server instead.

JupyterHub and KubeSpawner wait for the pod and the server with an
exponential backoff drawn at random (0 to 0.2 s, doubling up to 5 s), which
adds up to seconds to a launch whichever spawner runs; both hubs here poll
every `--poll` seconds instead (default 0.1; 0 keeps the backoff). Each hub
makes one launch first that is not counted (imports, connection pools,
hubext's first load of its watches).

The ratio of medians is printed with a 95 % bootstrap interval, resampling
whole pairs (sequential) or whole rounds (concurrent: a round's launches
share its load, so they are not independent). A run tells a 5 % difference
only when its interval is narrower than that. Here 120 pairs give about
±0.5 %; rounds of 50 vary more: 24 rounds (the default) give about ±5 %,
48 about ±3.5 %, 12 rounds up to ±12 %.
Each concurrent round also prints the CPU seconds it cost, the machine's
and its parts' (`_common.CpuMeter`): how much of a busy round is work
rather than waiting, and whose.

    python benchmarks/spawn_overhead.py --sequential 120 --concurrent 50 --rounds 24
"""

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common  # noqa: E402
from tests.fixtures.hubext_hub import REPO, RESOURCES  # noqa: E402
from tests.helpers.launch import binder_user_options, launch, wait_for  # noqa: E402

KINDS = ("plain", "hubext")
SPAWNERS = {
    "plain": "benchmarks._common.TimedKubeSpawner",
    "hubext": "benchmarks._common.TimedHubextSpawner",
}
LABELS = {"plain": "KubeSpawner 7", "hubext": "hubext"}
WARM = "first"  # the server name of a launch made only to warm up
AHEAD_CONFIG = "from hubext import ahead\nahead.configure(c)\n"
#: --ahead, one at a time: the pause between BinderHub's check and its
#: launch, for both spawners (a build takes minutes; this is the least).
AHEAD_PAUSE = 0.5
HUBEXT_STEPS = ("fetch .resources", "ensure PVC", "ensure SSH Secret", "options step")


class Bench:
    """The two hubs, their namespaces and timing files, and the forge."""

    def __init__(self, api, forge, timeout: float, poll: float):
        self.api = api
        self.forge = forge
        self.timeout = timeout
        self.poll = poll
        self.hubs = {}
        self.namespaces = {}
        self.timings = {}
        self._commits = 0

    async def start(self, kubeconfig, workdir: Path) -> None:
        for kind in KINDS:
            ns = await _common.new_namespace(self.api, f"bench-{kind}")
            self.namespaces[kind] = ns
            self.timings[kind] = workdir / f"{kind}-timings.jsonl"
            config = _common.hubext_config(
                SPAWNERS[kind], ns, self.forge.url, self.timeout, poll=self.poll
            )
            if kind == "hubext":
                config += AHEAD_CONFIG
            env = {
                "KUBECONFIG": str(kubeconfig),
                _common.TIMINGS_ENV: str(self.timings[kind]),
            }
            self.hubs[kind] = await _common.start_hub(config, env, workdir / kind)

    async def stop(self) -> None:
        for hub in self.hubs.values():
            await hub.stop()

    def options(self) -> dict:
        """BinderHub's body for a launch of a commit never launched before."""
        self._commits += 1
        sha = f"{self._commits:040x}"
        self.forge.add(REPO, sha, ".resources", RESOURCES)
        return binder_user_options(REPO, sha)

    async def prepare(self, kind: str, user: str, options: dict) -> None:
        """What BinderHub's check before its build asks of the hub: for
        hubext, the launch posted to `hubext.ahead`; nothing for plain
        KubeSpawner (BinderHub as shipped asks the hub nothing there)."""
        if kind != "hubext":
            return
        hub = self.hubs[kind]
        code, body = await hub.api("POST", f"/hubext/prepare/{user}", body=options)
        if code != 200:
            raise RuntimeError(f"preparing {user}'s launch ahead: {code} {body}")

    async def launch(
        self, kind: str, user: str, server: str = "lab", options: dict | None = None
    ) -> float:
        """Seconds from the POST to the "ready" event; fails loudly."""
        hub = self.hubs[kind]
        options = options or self.options()
        began = time.perf_counter()
        event = await launch(hub, user, server, options, self.timeout)
        seconds = time.perf_counter() - began
        if not event.get("ready"):
            raise RuntimeError(
                f"{LABELS[kind]} launch of {user}/{server} did not become ready: "
                f"{event}\nhub log {hub.log_path}:\n{hub.log_text()[-3000:]}"
            )
        return seconds

    async def remove(self, kind: str, users: list[str], server: str = "lab") -> None:
        """Stop and delete the users' servers; wait until their pods are gone."""
        hub = self.hubs[kind]
        for user in users:
            code, body = await hub.api(
                "DELETE", f"/users/{user}/servers/{server}", body={"remove": True}
            )
            if code not in (202, 204, 404):
                raise RuntimeError(f"removing {user}/{server}: {code} {body}")

        async def pods_gone():
            return await _common.count_pods(self.api, self.namespaces[kind]) == 0

        await wait_for(pods_gone, self.timeout, f"{kind} pods removed")


async def warm_up(bench: Bench) -> None:
    """One launch per hub, not counted: a hub's first launch pays once for
    imports, connection pools and (hubext) the first load of its watches."""
    for kind in KINDS:
        user = f"{kind}-warm-up"
        await _common.create_users(bench.hubs[kind], [user])
        await bench.launch(kind, user)
        await bench.remove(kind, [user])


async def sequential(bench: Bench, n: int, ahead: bool = False) -> dict:
    """n paired launches per hub, one at a time; returns seconds by kind.
    With `ahead`, each launch is first prepared as BinderHub's check before
    its build asks (`Bench.prepare`), then both spawners wait `AHEAD_PAUSE`."""
    seconds = {kind: [] for kind in KINDS}
    for i in range(n):
        order = KINDS if i % 2 == 0 else KINDS[::-1]
        for kind in order:
            user = f"{kind}-seq-{i}"
            await _common.create_users(bench.hubs[kind], [user])
            options = bench.options()
            if ahead:
                await bench.prepare(kind, user, options)
                await asyncio.sleep(AHEAD_PAUSE)
            seconds[kind].append(await bench.launch(kind, user, options=options))
            await bench.remove(kind, [user])
    return seconds


async def concurrent(
    bench: Bench, c: int, rounds: int, returning: bool, settle: float, ahead=False
) -> dict:
    """c launches at once per hub and round; returns, by kind, each round's
    launch seconds, its wall time and the CPU seconds it cost.

    Each round starts on a quiet machine (`_common.settle`, waiting at most
    `settle` seconds). With `returning`, each round's users first launch
    once, uncounted, so the measured launch is a returning user's: their
    claim and key Secret exist and the hub has seen them (a new commit
    still). With `ahead`, each launch is first prepared as BinderHub's
    check before its build asks, all at once (`Bench.prepare`), before the
    wait for a quiet machine: the round is the launches after the builds.
    """
    seconds = {kind: [] for kind in KINDS}
    walls = {kind: [] for kind in KINDS}
    cpu = {kind: [] for kind in KINDS}
    meter = _common.CpuMeter({kind: bench.hubs[kind].proc.pid for kind in KINDS})
    for r in range(rounds if c else 0):
        order = KINDS if r % 2 == 0 else KINDS[::-1]
        for kind in order:
            users = [f"{kind}-r{r}-{i}" for i in range(c)]
            await _common.create_users(bench.hubs[kind], users)
            if returning:
                await asyncio.gather(*(bench.launch(kind, u, WARM) for u in users))
                await bench.remove(kind, users, WARM)
            options = [bench.options() for _ in users]
            if ahead:
                await asyncio.gather(
                    *(
                        bench.prepare(kind, u, o)
                        for u, o in zip(users, options, strict=True)
                    )
                )
            await _common.settle(timeout=settle)
            began, before = time.perf_counter(), meter.read()
            times = await asyncio.gather(
                *(
                    bench.launch(kind, u, options=o)
                    for u, o in zip(users, options, strict=True)
                )
            )
            walls[kind].append(time.perf_counter() - began)
            cpu[kind].append(_common.CpuMeter.spent(before, meter.read()))
            seconds[kind].append(list(times))
            await bench.remove(kind, users)
    return {"seconds": seconds, "walls": walls, "cpu": cpu}


def summarise(seq: dict, conc: dict, timings: dict) -> dict:
    """The numbers the table prints, as a dict (also written by --json)."""
    rows = []
    groups = {  # launches made under the same conditions, for the interval
        "sequential": {kind: [[t] for t in seq[kind]] for kind in KINDS},
        "concurrent": conc["seconds"],
    }
    for phase, by_kind in groups.items():
        plain, ours = by_kind["plain"], by_kind["hubext"]
        if not plain:
            continue
        flat_plain = [t for group in plain for t in group]
        flat_ours = [t for group in ours for t in group]
        row = {
            "phase": phase,
            "launches": len(flat_ours),
            "plain_median": _common.median(flat_plain),
            "plain_p90": _common.p90(flat_plain),
            "hubext_median": _common.median(flat_ours),
            "hubext_p90": _common.p90(flat_ours),
        }
        row["ratio"] = row["hubext_median"] / row["plain_median"]
        row["interval"] = _common.bootstrap_ratio(plain, ours)
        rows.append(row)
    pairs = [h / p for p, h in zip(seq["plain"], seq["hubext"], strict=True)]
    return {
        "rows": rows,
        "paired_sequential_ratio": _common.median(pairs) if pairs else None,
        "concurrent_walls": conc["walls"],
        "concurrent_cpu": conc["cpu"],
        "steps": step_stats(timings),
        # every launch's seconds: each pair's, each round's, by spawner
        "launches": {"sequential": seq, "concurrent": conc["seconds"]},
    }


def phase_of(server: str) -> str:
    """The phase a launch belonged to, from its user's and server's names;
    "ahead" for the steps of a launch prepared ahead (`hubext.ahead` runs
    them for the user, with no server name)."""
    if "-warm-up" in server or server.endswith(f"/{WARM}"):
        return "warm-up"
    if server.endswith("/"):
        return "ahead"
    return "sequential" if "-seq-" in server else "concurrent"


def step_stats(timings: dict) -> list[dict]:
    """Median and p90 of each spawner step, by phase and spawner."""
    seconds = {}
    for kind, path in timings.items():
        for record in _common.read_timings(path):
            phase = phase_of(record["server"])
            if phase == "warm-up":
                continue
            key = (phase, kind, record["step"])
            seconds.setdefault(key, []).append(record["seconds"])
    return [
        {
            "phase": phase,
            "spawner": kind,
            "step": step,
            "n": len(values),
            "median": _common.median(values),
            "p90": _common.p90(values),
        }
        for (phase, kind, step), values in sorted(
            seconds.items(), key=lambda item: (item[0][0] != "sequential", item[0])
        )
    ]


def conditions(args) -> str:
    """The header: what was launched, and under which modelled costs."""
    users = "returning" if args.returning else "new"
    ahead = (
        ", each launch prepared ahead as BinderHub's check before its build asks"
        if args.ahead
        else ""
    )
    if args.notebook == "modelled":
        pods = f"a modelled notebook server listening after {args.server_start:g} s"
    else:
        pods = "jupyterhub-singleuser"
    poll = f"every {args.poll:g} s" if args.poll else "with JupyterHub's backoff"
    return (
        f"spawn overhead: {args.sequential} sequential launches per spawner, "
        f"{args.concurrent} concurrent x {args.rounds} round(s) of {users} users"
        f"{ahead}; "
        "seconds from POST to the progress stream's ready event; test kubelet "
        f"container start cost {args.container_start:g} s per container; pods "
        f"run {pods}; the hubs poll {poll}"
    )


def report(summary: dict, args) -> None:
    print(conditions(args) + "\n")
    print(
        f"{'phase':<11} {'launches':>8}  {'plain median':>12} {'plain p90':>9}  "
        f"{'hubext median':>13} {'hubext p90':>10}  {'ratio':>5}"
    )
    for r in summary["rows"]:
        print(
            f"{r['phase']:<11} {r['launches']:>8}  {r['plain_median']:>12.3f} "
            f"{r['plain_p90']:>9.3f}  {r['hubext_median']:>13.3f} "
            f"{r['hubext_p90']:>10.3f}  {r['ratio']:>5.2f}"
        )
    print("\nratio of medians hubext/plain, with its 95 % bootstrap interval:")
    for r in summary["rows"]:
        low, high = r["interval"]
        how = "pairs resampled" if r["phase"] == "sequential" else "rounds resampled"
        print(f"  {r['phase']:<11} {r['ratio']:.3f} [{low:.3f}, {high:.3f}] ({how})")
    if summary["paired_sequential_ratio"] is not None:
        print(
            "\nsequential, median of the per-pair ratios hubext/plain: "
            f"{summary['paired_sequential_ratio']:.2f}"
        )
    walls = summary["concurrent_walls"]
    for kind in KINDS:
        if walls[kind]:
            text = ", ".join(f"{w:.1f}" for w in walls[kind])
            print(f"concurrent wall s ({kind}, per round): {text}")
    cpu = summary["concurrent_cpu"]
    if cpu["plain"]:
        parts = [p for p in cpu["plain"][0] if p not in KINDS]
        print("\nCPU seconds a concurrent round cost, median of the rounds")
        print("(the round's hub; the other hub idles meanwhile):")
        print(f"{'spawner':<8} {'hub':>7}" + "".join(f" {p:>17}" for p in parts))
        for kind in KINDS:
            hub = _common.median([r[kind] for r in cpu[kind]])
            line = f"{kind:<8} {hub:>7.2f}"
            for part in parts:
                line += f" {_common.median([r[part] for r in cpu[kind]]):>17.2f}"
            print(line)
    print("\nsteps inside the spawner (seconds)")
    print(
        f"{'phase':<11} {'spawner':<8} {'step':<22} {'n':>4} {'median':>8} {'p90':>8}"
    )
    for s in summary["steps"]:
        print(
            f"{s['phase']:<11} {s['spawner']:<8} {s['step']:<22} {s['n']:>4} "
            f"{s['median']:>8.3f} {s['p90']:>8.3f}"
        )


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=120, metavar="N")
    parser.add_argument("--concurrent", type=int, default=50, metavar="C")
    parser.add_argument("--rounds", type=int, default=24, metavar="R")
    parser.add_argument("--timeout", type=float, default=900, metavar="SECONDS")
    parser.add_argument(
        "--container-start",
        type=float,
        default=0.3,
        metavar="SECONDS",
        help="the test kubelet's modelled cost of starting each container "
        "(default 0.3, containerd with a cached image)",
    )
    parser.add_argument(
        "--notebook",
        choices=("modelled", "singleuser"),
        default="modelled",
        help="what each pod runs: 'modelled' (default), a server that listens "
        "after --server-start seconds (its start costs the hub's machine no CPU, "
        "as on a node); 'singleuser', the real jupyterhub-singleuser",
    )
    parser.add_argument(
        "--server-start",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="the modelled notebook server's time to listen (default 2.0)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="both hubs wait for the pod and the server by polling every "
        "SECONDS instead of JupyterHub's jittered exponential backoff "
        "(default 0.1; 0 keeps the backoff)",
    )
    parser.add_argument(
        "--returning",
        action="store_true",
        help="concurrent launches of users who launched before (their claim "
        "and key Secret exist) instead of new users",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=30,
        metavar="SECONDS",
        help="before each concurrent round, wait up to SECONDS for the machine "
        "to be quiet (under 15 %% busy; default 30, 0 does not wait)",
    )
    parser.add_argument(
        "--ahead",
        action="store_true",
        help="before each launch, post it to hubext's hub as BinderHub's check "
        "before its build does (hubext.ahead; nothing for plain KubeSpawner, "
        "as BinderHub as shipped asks the hub nothing there), and time the "
        "launch that follows the build",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the hub logs")
    args = parser.parse_args(argv)
    if args.sequential < 0 or args.concurrent < 0 or args.rounds < 1:
        parser.error("--rounds must be >= 1, --sequential and --concurrent >= 0")
    if not args.sequential and not args.concurrent:
        parser.error("nothing to measure: --sequential and --concurrent are both 0")
    if args.container_start < 0:
        parser.error("--container-start must be >= 0")
    if args.poll < 0:
        parser.error("--poll must be >= 0")
    if args.settle < 0:
        parser.error("--settle must be >= 0")
    if args.server_start < 0:
        parser.error("--server-start must be >= 0")
    return args


async def run(args) -> dict:
    _common.configure_http_client(2 * args.concurrent + 20)
    forge, server = _common.serve_forge()
    try:
        with contextlib.ExitStack() as stack:
            notebook = None
            if args.notebook == "modelled":
                notebook = stack.enter_context(
                    _common.modelled_notebook(args.server_start)
                )
            return await measure(args, forge, notebook)
    finally:
        server.stop()


async def measure(args, forge, notebook) -> dict:
    """Both hubs on one local cluster whose pods run `notebook`."""
    cluster = _common.local_cluster(
        container_start=args.container_start, notebook=notebook, node_process=True
    )
    async with cluster as (kubeconfig, api, _kubelet):
        bench = Bench(api, forge, args.timeout, args.poll)
        try:
            await bench.start(kubeconfig, args.workdir)
            await warm_up(bench)
            seq = await sequential(bench, args.sequential, args.ahead)
            conc = await concurrent(
                bench,
                args.concurrent,
                args.rounds,
                args.returning,
                args.settle,
                args.ahead,
            )
        finally:
            await bench.stop()
        return summarise(seq, conc, bench.timings)


def main(argv=None) -> dict:
    args = parse_args(argv)
    with _common.workdir(args.keep) as args.workdir:
        summary = asyncio.run(run(args))
    summary["container_start_seconds"] = args.container_start
    summary["poll_seconds"] = args.poll
    report(summary, args)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
