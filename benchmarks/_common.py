"""Shared parts of the spawn benchmarks: the local cluster, the forge, hubs.

Both `spawn_overhead.py` and `launch_burst.py` run real JupyterHubs
(`tests.fixtures.hubproc.make_hub`) against the local control plane
(devstack), reading `.resources` from the loopback GitHub stand-in
(`tests.fixtures.githosts.Forge`). The spawner subclasses below are what
those hubs load: they add timing records or take away the shared fetcher,
and nothing else, so the benchmarks can say where the time goes without
touching `hubext/spawner.py`.
"""

import asyncio
import contextlib
import functools
import inspect
import json
import math
import os
import random
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psutil  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402

from hubext.repofiles import RepoFileFetcher  # noqa: E402
from hubext.spawner import HubextSpawner  # noqa: E402

#: Where the hub process appends its timing records (one JSON object a line).
TIMINGS_ENV = "HUBEXT_BENCH_TIMINGS"

#: What both hubs share, whatever their spawner: same pods, same user,
#: timeouts long enough for 100 single-user servers starting on 2 cores.
COMMON_CONFIG = """
c.KubeSpawner.uid = 1000
c.KubeSpawner.fs_gid = 1000
c.KubeSpawner.slug_scheme = "safe"
c.KubeSpawner.start_timeout = {timeout}
c.KubeSpawner.http_timeout = {timeout}
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.log_level = "INFO"
"""

STEADY_POLL_CONFIG = """
from benchmarks import _common as _bench
_bench.poll_steadily({poll!r})
"""


# --- spawners the benchmark hubs load ----------------------------------------


class _Timed:
    """Appends `{"server", "step", "seconds"}` to `$HUBEXT_BENCH_TIMINGS`
    for the steps every KubeSpawner takes."""

    def record(self, step: str, began: float) -> None:
        path = os.environ.get(TIMINGS_ENV)
        if path:
            record = {
                "server": f"{self.user.name}/{self.name}",
                "step": step,
                "seconds": time.perf_counter() - began,
            }
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\n")

    @contextlib.asynccontextmanager
    async def timed(self, step: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.record(step, began)

    def timed_step(self, step: str, call):
        """One of hubext's steps, which answers at once or returns an
        awaitable: timed until its answer either way."""
        began = time.perf_counter()
        result = call()
        if not inspect.isawaitable(result):
            self.record(step, began)
            return result

        async def answer():
            try:
                return await result
            finally:
                self.record(step, began)

        return answer()

    async def _start(self):
        async with self.timed("start, to pod running"):
            return await super()._start()

    async def load_user_options(self):
        async with self.timed("options step"):
            await super().load_user_options()

    async def get_pod_manifest(self):
        async with self.timed("pod manifest"):
            return await super().get_pod_manifest()


class TimedKubeSpawner(_Timed, KubeSpawner):
    """Plain KubeSpawner, timed."""


class TimedHubextSpawner(_Timed, HubextSpawner):
    """HubextSpawner, timed, with each of its own steps timed as well."""

    def _effective_resources(self, launch):
        resources = functools.partial(super()._effective_resources, launch)
        return self.timed_step("fetch .resources", resources)

    def _ensure_storage(self):
        return self.timed_step("ensure PVC", super()._ensure_storage)

    def _ensure_ssh_identity(self):
        return self.timed_step("ensure SSH Secret", super()._ensure_ssh_identity)


class FreshFetcherSpawner(HubextSpawner):
    """HubextSpawner with a new fetcher per spawn: no cache, no sharing.

    The yardstick for the launch burst: what every launch would cost the
    git host if each spawn read `.resources` on its own.
    """

    def repo_file_fetcher(self) -> RepoFileFetcher:
        return RepoFileFetcher(config=self.config, log=self.log)


# --- polling ----------------------------------------------------------------


def poll_steadily(interval: float) -> None:
    """In this hub process, poll every `interval` seconds where JupyterHub
    and KubeSpawner back off exponentially with random jitter.

    Both wait that way for the pod to run and for the server to answer:
    waits drawn from 0 to 0.2 s, doubling up to 5 s, so a launch is seen
    ready up to seconds after it is. That noise is the same whichever
    spawner runs, and larger than the differences a spawn benchmark looks
    for; a steady poll leaves at most `interval` of it. The first wait is
    drawn from 0 to `interval`, so what is left is spread evenly: with a
    fixed phase every launch of one spawner fell on the same step of the
    poll's grid, and a 25 ms difference showed as one whole step (0.1 s,
    4 %) or none. Call it from the hub's config, before any spawn.
    """
    import jupyterhub.utils
    import kubespawner.spawner

    async def steady(
        pass_func,
        fail_message,
        start_wait=None,
        scale_factor=None,
        max_wait=None,
        timeout=10,
        timeout_tolerance=None,
        *args,
        **kwargs,
    ):  # the signature of jupyterhub.utils.exponential_backoff
        deadline = time.monotonic() + timeout
        wait = random.uniform(0, interval)  # a random phase, then steady
        while True:
            result = await jupyterhub.utils.maybe_future(pass_func(*args, **kwargs))
            if result:
                return result
            if time.monotonic() >= deadline:
                raise asyncio.TimeoutError(fail_message)
            await asyncio.sleep(wait)
            wait = interval

    jupyterhub.utils.exponential_backoff = steady
    kubespawner.spawner.exponential_backoff = steady


# --- numbers ------------------------------------------------------------------


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def bootstrap_ratio(
    plain: list[list[float]], ours: list[list[float]], resamples: int = 4000
) -> tuple[float, float]:
    """95 % bootstrap interval of median(ours) / median(plain).

    `plain[i]` and `ours[i]` are the launches made under the same i-th
    conditions: one launch each for a sequential pair, all of a round's
    for a concurrent round. Whole groups are resampled, with the same i for
    both, so the machine's drift cancels and launches that shared a round
    (and its load) are not counted as independent. A fixed seed makes the
    interval a function of the measurements.
    """
    if len(plain) != len(ours):
        raise ValueError(f"{len(plain)} groups of plain, {len(ours)} of ours")
    rng = random.Random(0)
    n = len(plain)
    ratios = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        p = [t for i in picks for t in plain[i]]
        o = [t for i in picks for t in ours[i]]
        ratios.append(median(o) / median(p))
    ratios.sort()
    return ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


class CpuMeter:
    """CPU seconds the machine and its parts spent, read twice and taken
    apart: where a busy round's time went, beside how long it took.

    `machine` is every core's busy time (not idle, not waiting on I/O).
    The parts are process trees: each hub `hubs` names (with its proxy),
    the API server and kine (found by name below this process); then the
    test kubelet's own process (`_node.py`, when it runs apart), the pods'
    processes it started (their namespace setup and modelled notebooks),
    and this process itself (the launches' clients, the git forge). A tree
    counts its processes alive now and the ones that ended and were waited
    for. With the kubelet in this process, the three last are one part.
    """

    CONTROL_PLANE = ("kube-apiserver", "kine")
    NODE = Path(__file__).with_name("_node.py").name

    def __init__(self, hubs: dict[str, int]):
        self.hubs = {name: psutil.Process(pid) for name, pid in hubs.items()}
        self.me = psutil.Process()

    def read(self) -> dict:
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0)
        seconds = {"machine": busy}
        for name, hub in self.hubs.items():
            seconds[name] = _tree_seconds(hub)
        seconds.update(dict.fromkeys(self.CONTROL_PLANE, 0.0))
        node = None
        for proc in self.me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.name() in self.CONTROL_PLANE:
                    seconds[proc.name()] += _tree_seconds(proc)
                elif node is None and self._is_node(proc):
                    node = proc
        parts = sum(seconds[k] for k in seconds if k != "machine")
        rest = _tree_seconds(self.me) - parts
        if node is None:
            seconds["kubelet and pods"] = rest
            return seconds
        kubelet, clients = _own_seconds(node), _own_seconds(self.me)
        seconds["kubelet"] = kubelet
        seconds["pods"] = rest - kubelet - clients
        seconds["clients"] = clients
        return seconds

    def _is_node(self, proc: "psutil.Process") -> bool:
        return any(arg.endswith(self.NODE) for arg in proc.cmdline()[:3])

    @staticmethod
    def spent(before: dict, after: dict) -> dict:
        return {key: after[key] - before[key] for key in before}


async def settle(
    busy_below: float = 15.0, window: float = 0.5, timeout: float = 30.0
) -> float:
    """Wait until the machine is nearly idle: less than `busy_below` % of
    its CPUs busy over a `window`; give up after `timeout`. Returns the
    seconds waited.

    A round that starts while the last one's servers are still being
    stopped and removed (the hub, the API server's and kine's writes, the
    kubelet killing processes) shares the machine with that work, by an
    amount that differs from round to round.
    """
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        busy = await asyncio.to_thread(psutil.cpu_percent, window)
        if busy < busy_below:
            break
    return time.monotonic() - began


def _own_seconds(proc: "psutil.Process") -> float:
    """CPU seconds of `proc` itself, without any child."""
    try:
        t = proc.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return t.user + t.system


def _tree_seconds(proc: "psutil.Process") -> float:
    """CPU seconds of `proc`, the children it waited for, and its live tree."""
    try:
        t = proc.cpu_times()
        children = proc.children()
    except psutil.NoSuchProcess:
        return 0.0
    own = t.user + t.system + t.children_user + t.children_system
    return own + sum(_tree_seconds(child) for child in children)


def read_timings(path: Path) -> list[dict]:
    """A hub's timing records: `{"server", "step", "seconds"}` each."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the local cluster and the forge --------------------------------------------


@contextlib.asynccontextmanager
async def local_cluster(
    with_kubelet: bool = True,
    container_start: float = 0,
    notebook: str | None = None,
    node_process: bool = False,
):
    """kube-apiserver on kine, and (optionally) the test kubelet.

    `container_start` is the kubelet's modelled runtime cost of starting
    each container, in seconds (`TestKubelet` explains the model);
    `notebook` the program its pods run (default: `jupyterhub-singleuser`);
    `node_process` runs the kubelet in a process of its own (`_node.py`), as
    a node would, rather than in this one's event loop. Yields
    `(kubeconfig, api_client, kubelet)`: the kubelet is None without one or
    in its own process; stops all on exit.
    """
    from kubernetes_asyncio import config

    from devstack import kubelet as devkubelet
    from devstack.controlplane import ControlPlane

    # 100 single-user servers starting at once on 2 cores take longer than
    # the kubelet's usual minute to listen.
    devkubelet.READY_TIMEOUT = 900
    cp = ControlPlane()
    await asyncio.to_thread(cp.start)
    api = kubelet = node = None
    try:
        api = await config.new_client_from_config(config_file=str(cp.kubeconfig))
        if with_kubelet and node_process:
            node = await _start_node(cp.kubeconfig, container_start, notebook)
        elif with_kubelet:
            kubelet = devkubelet.TestKubelet(
                api, singleuser=notebook, container_start_seconds=container_start
            )
            await kubelet.start()
        yield cp.kubeconfig, api, kubelet
    finally:
        if kubelet is not None:
            await kubelet.stop()
        if node is not None:
            await _stop_node(node)
        if api is not None:
            await api.close()
        await asyncio.to_thread(cp.stop)


async def _start_node(kubeconfig, container_start: float, notebook: str | None):
    argv = [
        sys.executable,
        str(Path(__file__).with_name("_node.py")),
        str(kubeconfig),
        "--container-start",
        str(container_start),
    ]
    if notebook:
        argv += ["--notebook", notebook]
    node = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(node.stdout.readline(), 120)
    if line.strip() != b"ready":
        await _stop_node(node)
        raise RuntimeError(f"the test kubelet's process did not start: {line!r}")
    node.drain = asyncio.create_task(_discard(node.stdout))  # never a full pipe
    return node


async def _discard(stream) -> None:
    while await stream.read(65536):
        pass


async def _stop_node(node) -> None:
    if node.returncode is None:
        node.terminate()
        try:
            await asyncio.wait_for(node.wait(), 60)
        except asyncio.TimeoutError:
            node.kill()
            await node.wait()


@contextlib.contextmanager
def modelled_notebook(start_seconds: float):
    """An executable the test kubelet can run as a pod's notebook server:
    `modelled_notebook.py`, listening after `start_seconds`.

    It lives in a directory of its own that the pods' users may enter, not
    in the benchmark's scratch directory, which holds the hubs' configs
    (with their admin tokens) and databases. Removed on exit.
    """
    script = Path(__file__).with_name("modelled_notebook.py")
    directory = Path(tempfile.mkdtemp(prefix="hubext-notebook-"))
    try:
        directory.chmod(0o755)
        program = directory / "modelled-notebook"
        program.write_text(
            "#!/bin/sh\n"
            f"exec {shlex.quote(sys.executable)} {shlex.quote(str(script))} "
            f'--start-seconds {start_seconds!r} "$@"\n'
        )
        program.chmod(0o755)
        yield program
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def new_namespace(api, prefix: str) -> str:
    """A fresh namespace with its `default` ServiceAccount (pods need it)."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    name = f"{prefix}-{secrets.token_hex(3)}"
    await core.create_namespace({"metadata": {"name": name}})
    try:  # the test kubelet makes it too; without a kubelet, nobody else does
        await core.create_namespaced_service_account(
            name, {"metadata": {"name": "default"}}
        )
    except ApiException as e:
        if e.status != 409:
            raise
    return name


async def count_pods(api, namespace: str) -> int:
    from kubernetes_asyncio import client

    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace)
    return len(pods.items)


def serve_forge():
    """The loopback GitHub stand-in, listening; returns (forge, server)."""
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from tests.fixtures.githosts import LOOPBACK, Forge, forge_app

    forge = Forge()
    sockets = bind_sockets(0, LOOPBACK)
    server = HTTPServer(forge_app(forge))
    server.add_sockets(sockets)
    forge.url = f"http://{LOOPBACK}:{sockets[0].getsockname()[1]}"
    return forge, server


def hubext_config(
    spawner: str,
    namespace: str,
    forge_url: str,
    timeout: float,
    limit: int = 5,
    poll: float = 0,
) -> str:
    """The test suite's hubext hub config, with `spawner` as spawner class;
    `poll` > 0 replaces the hub's backoff by a steady poll (`poll_steadily`)."""
    from tests.fixtures.hubext_hub import HUB_CONFIG, POLICY

    config = HUB_CONFIG.format(
        namespace=namespace, forge=forge_url, policy=POLICY, limit=limit
    )
    return (
        config
        + COMMON_CONFIG.format(timeout=timeout)
        + f"c.JupyterHub.spawner_class = {spawner!r}\n"
        + (STEADY_POLL_CONFIG.format(poll=poll) if poll > 0 else "")
    )


def configure_http_client(connections: int) -> None:
    """Let this process hold `connections` requests open at once (tornado's
    default of 10 would queue launches behind open progress streams)."""
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, max_clients=connections)


@contextlib.contextmanager
def workdir(keep: bool):
    """A scratch directory for hubs and timings; removed unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix="hubext-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"\nhub logs and timings kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


async def start_hub(config: str, env: dict, directory: Path):
    """A real JupyterHub with `config` after the test suite's base config."""
    from tests.fixtures.hubproc import make_hub

    hub = make_hub(config, env, directory)
    await hub.start()
    return hub


async def create_users(hub, names: list[str]) -> None:
    code, body = await hub.api("POST", "/users", body={"usernames": names})
    if code not in (201, 409):
        raise RuntimeError(f"creating {len(names)} users: {code} {body}")
