"""A test kubelet: runs each pod as a real `jupyterhub-singleuser`.

No container runtime is available here, and hubext's pods all run the
single-user notebook server, so this kubelet starts that server from the
local virtualenv instead of the pod's image. Each pod gets its own loopback
address 127.0.0.N (N >= 2) and the port its container declares, its
environment (with simple `valueFrom` references resolved), and a temporary
home directory. Its volumes are made on disk (`devstack.volumes`), its init
containers' commands run for real, in order, and every container runs in
its own mount namespace with its volume mounts (`subPath` resolved safely
inside the volume), as its own user (`devstack.containers`); `exec` runs a
command inside a running pod. Each container start can be charged a
modelled runtime cost (`container_start_seconds`). Once the server
listens, the pod's status becomes Running and Ready with that address as
`podIP`; a failed mount, a refused `subPath` or a failed init container
makes it Failed; a deleted pod's process is stopped and the deletion
completed (grace period 0).

It also stands in for the few controller duties the tests rely on: a
`default` ServiceAccount in every namespace (the ServiceAccount admission
plugin requires it), finishing namespace deletion, and marking PVCs Bound.
It only ever binds to or connects to 127.0.0.0/8 addresses.
"""

import asyncio
import itertools
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from . import containers, podspec, volumes
from .net import AddressLease, port_is_free

log = logging.getLogger("devstack.kubelet")

NODE_NAME = "hubext-dev-node"
HOST_IP = "127.0.0.1"
READY_TIMEOUT = 60
#: Tries of a status update whose connection dropped; first pause (doubling).
STATUS_ATTEMPTS, STATUS_BACKOFF = 5, 0.2
#: A tmpfs for the kubelet's pods' files, if the machine has one (else /tmp).
_MEMORY = (
    "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
)
#: Seconds the kubelet keeps an idle connection to the API server. A node's
#: kubelet sends every request over one long-lived HTTP/2 connection; this
#: client opens an HTTP/1.1 connection per request in flight and closed idle
#: ones after 15 s, so each burst of pods paid a TLS handshake per request.
API_KEEPALIVE = 120
#: The default of `TestKubelet(container_start_seconds=...)`, when set.
CONTAINER_START_ENV = "HUBEXT_KUBELET_CONTAINER_START_SECONDS"
# Kinds removed from a namespace before its deletion is finished.
_NAMESPACED_KINDS = (
    "pod",
    "service",
    "persistent_volume_claim",
    "secret",
    "config_map",
    "service_account",
    "event",
)


def default_singleuser() -> str:
    """`jupyterhub-singleuser` next to this Python, else from PATH."""
    beside = Path(sys.executable).parent / "jupyterhub-singleuser"
    if beside.exists():
        return str(beside)
    return shutil.which("jupyterhub-singleuser") or "jupyterhub-singleuser"


@dataclass
class PodProcess:
    """The process standing in for one pod."""

    namespace: str
    name: str
    ip: str
    port: int
    workdir: Path
    lease: AddressLease | None = field(default=None, repr=False)
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task | None = field(default=None, repr=False)
    view: containers.View | None = field(default=None, repr=False)
    env: dict = field(default_factory=dict, repr=False)
    #: `time.monotonic()` when the kubelet took the pod, and when each
    #: container's process was started (after its start cost), by name.
    taken_at: float = field(default_factory=time.monotonic, repr=False)
    started_at: dict = field(default_factory=dict, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "singleuser.log"


class TestKubelet:
    """Watch pods (all namespaces, or one) and run them on loopback.

    `container_start_seconds` models what a runtime spends creating and
    starting a container from a cached image (sandbox and mounts, then the
    exec: a few hundred ms on containerd); it is waited before each init
    container and the main one, which local programs would make look free.
    A model, not a measurement: default 0 (or the variable named by
    `CONTAINER_START_ENV`) keeps tests fast; the spawn benchmark uses 0.3.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str | None = None,
        singleuser: str | None = None,
        container_start_seconds: float | None = None,
    ):
        if container_start_seconds is None:
            container_start_seconds = float(os.environ.get(CONTAINER_START_ENV) or 0)
        if container_start_seconds < 0:
            raise ValueError(
                f"container_start_seconds={container_start_seconds}: must be >= 0"
            )
        self.container_start_seconds = container_start_seconds
        self.api = api
        _keep_connections(api, API_KEEPALIVE)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.singleuser = singleuser or default_singleuser()
        # in memory where the machine has it, as a node keeps Secret volumes
        self.workdir = Path(tempfile.mkdtemp(prefix="hubext-kubelet-", dir=_MEMORY))
        self.workdir.chmod(0o711)  # pods' users reach their own directories
        self.claims = self.workdir / "claims"  # the stand-in NFS exports
        self.pods: dict[str, PodProcess] = {}  # by pod uid
        self._done: set[str] = set()  # uids finished or given up on
        self._tasks: list[asyncio.Task] = []
        self._offset = random.randrange(253)

    async def start(self) -> None:
        """Register the node and start watching."""
        await self._register_node()
        watches = [(self._pods_list(), self._on_pod), (self._pvcs_list(), self._on_pvc)]
        if self.namespace is None:
            watches.append((self.core.list_namespace, self._on_namespace))
        for func, handler in watches:
            self._tasks.append(asyncio.create_task(self._watch(func, handler)))

    async def stop(self) -> None:
        """Stop watching and kill every process this kubelet started."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*(self._kill(p) for p in list(self.pods.values())))
        self.pods.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def find(self, namespace: str, name: str) -> PodProcess | None:
        """The process of a pod, if this kubelet runs it."""
        for pod in self.pods.values():
            if (pod.namespace, pod.name) == (namespace, name):
                return pod
        return None

    async def exec(self, namespace: str, pod: str, argv: list[str]):
        """Run `argv` in a running pod, like `kubectl exec`: (rc, stdout, stderr).

        The command sees the notebook container's mounts and runs as its
        user, with its environment and HOME.
        """
        running = self.find(namespace, pod)
        if running is None or running.proc is None or running.view is None:
            raise LookupError(f"pod {namespace}/{pod} is not running here")
        if running.proc.returncode is not None:
            raise LookupError(f"pod {namespace}/{pod} has exited")
        return await containers.exec_in(
            running.proc.pid, running.view.identity, argv, running.env
        )

    def _pods_list(self):
        if self.namespace:
            return lambda **kw: self.core.list_namespaced_pod(self.namespace, **kw)
        return self.core.list_pod_for_all_namespaces

    def _pvcs_list(self):
        if self.namespace:
            return lambda **kw: self.core.list_namespaced_persistent_volume_claim(
                self.namespace, **kw
            )
        return self.core.list_persistent_volume_claim_for_all_namespaces

    async def _watch(self, list_func, handler) -> None:
        """Follow one kind forever, surviving timeouts and expired versions.

        A watch without a resource version first replays every existing
        object as ADDED, so a restart re-reads the world; handlers are
        idempotent.
        """
        version = ""
        while True:
            try:
                async with watch.Watch().stream(
                    _undecoded(list_func), resource_version=version, timeout_seconds=300
                ) as stream:
                    async for event in stream:
                        obj = event["raw_object"]
                        version = obj["metadata"].get("resourceVersion", version)
                        await self._safely(handler, event["type"], obj)
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status == 410:
                    version = ""
                else:
                    log.warning("watch failed (%s), retrying", e)
                    await asyncio.sleep(1)
            except Exception as e:  # connection reset, apiserver restart
                log.warning("watch interrupted (%s), retrying", e)
                await asyncio.sleep(1)

    async def _safely(self, handler, kind: str, obj: dict) -> None:
        try:
            await handler(kind, obj)
        except asyncio.CancelledError:
            raise
        except Exception:
            meta = obj.get("metadata", {})
            log.exception(
                "handling %s %s/%s failed",
                kind,
                meta.get("namespace"),
                meta.get("name"),
            )

    async def _register_node(self) -> None:
        """A Node object, so pods can be bound and report a hostIP."""
        try:
            await self.core.create_node(podspec.node_manifest(NODE_NAME))
        except ApiException as e:
            if e.status != 409:
                raise
        status = podspec.node_status(NODE_NAME, HOST_IP)
        await self.core.patch_node_status(NODE_NAME, status)

    # -- pods ------------------------------------------------------------

    async def _on_pod(self, kind: str, pod: dict) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if kind == "DELETED":
            running = self.pods.pop(uid, None)
            if running:
                await self._kill(running)
            self._done.discard(uid)
            return
        if meta.get("deletionTimestamp"):
            await self._finish_deletion(pod)
            return
        if uid in self.pods or uid in self._done:
            return
        node = pod["spec"].get("nodeName")
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if (node and node != NODE_NAME) or phase != "Pending":
            self._done.add(uid)  # another node's, or handled before a restart
            return
        running = self._allocate(pod)
        self.pods[uid] = running
        running.task = asyncio.create_task(self._run_pod(pod, running))

    def _allocate(self, pod: dict) -> PodProcess:
        """Lease 127.0.0.N (N >= 2) on the pod's port, while nothing binds it.

        The lease keeps other kubelets on the machine off the address until
        this pod's process is gone; each starts its search at its own random
        N, so they rarely have to skip each other's addresses.
        """
        port = podspec.container_port(podspec.main_container(pod))
        used = {p.ip for p in self.pods.values()}
        first = [f"127.0.0.{n}" for n in range(2, 255)]
        first = first[self._offset :] + first[: self._offset]
        rest = (f"127.0.{c}.{d}" for c in range(1, 256) for d in range(1, 255))
        for ip in itertools.chain(first, rest):
            if ip in used:
                continue
            lease = AddressLease.take(ip, port)
            if lease is None:
                continue
            if not port_is_free(ip, port):
                lease.release()
                continue
            meta = pod["metadata"]
            workdir = self.workdir / meta["uid"]
            workdir.mkdir(parents=True)
            ns, name = meta["namespace"], meta["name"]
            return PodProcess(ns, name, ip, port, workdir, lease)
        raise RuntimeError(f"no free loopback address for port {port}")

    async def _run_pod(self, pod: dict, running: PodProcess) -> None:
        """Run one pod; API errors are logged, never lost in a task."""
        meta = pod["metadata"]
        try:
            await self._start_pod(pod, running)
        except ApiException as e:
            if e.status not in (404, 409):  # deleted or rebound meanwhile
                log.error("pod %s/%s: %s", meta["namespace"], meta["name"], e)
        except aiohttp.ClientError as e:
            ns, name = meta["namespace"], meta["name"]
            log.error("pod %s/%s: API server unreachable: %r", ns, name, e)

    async def _start_pod(self, pod: dict, running: PodProcess) -> None:
        """Bind the pod, start its server, and report Running or Failed."""
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if not pod["spec"].get("nodeName"):
            await self._bind(ns, name)
        try:
            paths = await self._prepare_volumes(pod, running)
            if not await self._run_init_containers(pod, running, paths):
                return
            await self._start_process(pod, running, paths)
            ready = await self._wait_listening(running)
        except volumes.MountError as e:
            message = f"MountVolume.SetUp failed for {e}"
            await self._report_failed(ns, name, pod, 1, message)
            return
        except containers.SubPathError as e:
            log.warning("pod %s/%s: %s", ns, name, e)
            status = podspec.config_error_status(pod, e.container, str(e))
            await self._patch_status(ns, name, status, meta["uid"])
            return
        except (OSError, ValueError) as e:
            await self._report_failed(ns, name, pod, 127, str(e))
            return
        if ready:
            status = podspec.running_status(pod, running.ip, HOST_IP, running.proc.pid)
            await self._patch_status(ns, name, status, meta["uid"])
            log.info("pod %s/%s running at %s:%s", ns, name, running.ip, running.port)
        else:
            code = running.proc.returncode
            tail = containers.tail(running.log_path)
            await self._report_failed(ns, name, pod, code or 1, tail)

    async def _bind(self, namespace: str, name: str) -> None:
        """Assign the pod to our node, as the scheduler would."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
        }
        await _plain(self.core.create_namespaced_pod_binding, name, namespace, body)

    async def _prepare_volumes(self, pod: dict, running: PodProcess) -> dict:
        """Make the pod's volumes on disk; {volume name: host dir or None}."""
        if not pod["spec"].get("volumes") or not containers.namespaces_available():
            return {}
        # each volume is set up on its own, as a kubelet's volume manager does
        needed = list(volumes.sources_needed(pod))
        found = await asyncio.gather(
            *(self._read_source(running.namespace, k, n) for k, n in needed)
        )
        sources = dict(zip(needed, found, strict=True))
        # off the event loop: a node's volume manager works beside
        # its pod workers, not in their way
        return await asyncio.to_thread(
            volumes.prepare, pod, running.workdir, self.claims, sources
        )

    async def _read_source(self, namespace: str, kind: str, name: str):
        """A Secret's or ConfigMap's data as bytes, True for a claim; None if absent."""
        read = {
            "secret": self.core.read_namespaced_secret,
            "configMap": self.core.read_namespaced_config_map,
        }.get(kind, self.core.read_namespaced_persistent_volume_claim)
        try:
            obj = await _plain(read, name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        if kind == "pvc":
            return True
        return volumes.object_data(kind, obj.get("data"), obj.get("binaryData"))

    async def _run_init_containers(self, pod, running, paths) -> bool:
        """Run each init container to its end, in order; False once one fails."""
        inits = pod["spec"].get("initContainers") or []
        lookup = await self._lookup_for(running.namespace, inits)
        for index, container in enumerate(inits):
            await self._container_start_cost()
            command = list(container.get("command") or [])
            command += list(container.get("args") or [])
            if not command:  # the image's entrypoint: nothing to run here
                log.warning("init container %s has no command", container["name"])
                continue
            view = containers.view(pod, container, running.workdir, paths)
            env = podspec.resolve_env(pod, container, running.ip, HOST_IP, lookup)
            env = {**containers.base_env(view, env), **env}
            log_path = running.workdir / f"init-{index}.log"
            running.started_at[container["name"]] = time.monotonic()
            code = await containers.run_to_end(
                view.argv(command), env, log_path, running.workdir
            )
            if code != 0:
                meta = pod["metadata"]
                message = f"init container {container['name']} exited with " + (
                    f"code {code}:\n{containers.tail(log_path)}"
                )
                log.warning("pod %s/%s: %s", meta["namespace"], meta["name"], message)
                status = podspec.init_failed_status(pod, index, code, message)
                await self._patch_status(
                    meta["namespace"], meta["name"], status, meta["uid"]
                )
                return False
        return True

    async def _start_process(self, pod: dict, running: PodProcess, paths) -> None:
        container = podspec.main_container(pod)
        env = podspec.resolve_env(
            pod,
            container,
            running.ip,
            HOST_IP,
            await self._lookup_for(running.namespace, [container]),
        )
        if "JUPYTERHUB_SERVICE_URL" in env:
            env["JUPYTERHUB_SERVICE_URL"] = podspec.rebind_service_url(
                env["JUPYTERHUB_SERVICE_URL"], running.ip, running.port
            )
        podspec.check_loopback_urls(env)
        view = containers.view(pod, container, running.workdir, paths)
        if view.skipped:
            log.warning(
                "pod %s/%s: volumes %s not mounted (unsupported types)",
                running.namespace,
                running.name,
                ", ".join(view.skipped),
            )
        running.view = view
        running.env = {**containers.base_env(view, env), **env}
        args = podspec.singleuser_args(container, running.ip, running.port)
        view = await asyncio.to_thread(containers.runnable_view, view, self.singleuser)
        if view.runs_as_root:
            args.append("--allow-root")  # a pod would run as its own user
        await self._container_start_cost()
        running.started_at[container["name"]] = time.monotonic()
        running.proc = await containers.start(
            view.argv([self.singleuser, *args]),
            running.env,
            running.log_path,
            view.home_dir,
        )

    async def _container_start_cost(self) -> None:
        """What the runtime would spend creating and starting a container."""
        if self.container_start_seconds:
            await asyncio.sleep(self.container_start_seconds)

    async def _lookup_for(self, namespace: str, containers_: list):
        """A synchronous Secret/ConfigMap lookup for the containers' `env`.

        Only the objects they name are read, once each, as a real kubelet
        does: listing the namespace would cost each pod more the more users'
        Secrets the namespace holds.
        """
        cache: dict[tuple[str, str], dict] = {}
        for kind, name in podspec.env_sources(containers_):
            data = await self._read_source(namespace, kind, name) or {}
            cache[(kind.lower(), name)] = {k: v.decode() for k, v in data.items()}
        return lambda kind, name, key: cache.get((kind, name), {}).get(key)

    async def _wait_listening(self, running: PodProcess) -> bool:
        """Poll the pod's address until its own process listens there, or dies.

        Another test run on this machine may have taken the same address in
        the meantime; a connection alone would then report its server.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while loop.time() < deadline and running.proc.returncode is None:
            try:
                _, writer = await asyncio.open_connection(running.ip, running.port)
                writer.close()
            except OSError:
                pass
            else:
                # /proc/net/tcp lists every socket of the machine: read it
                # off the event loop (10 ms on a busy one)
                ours = await asyncio.to_thread(
                    containers.listens, running.proc.pid, running.ip, running.port
                )
                if ours is not False:  # None: cannot tell, trust the connection
                    return True
            await asyncio.sleep(0.1)
        return False

    async def _report_failed(self, ns, name, pod, code: int, message: str) -> None:
        log.warning("pod %s/%s failed: %s", ns, name, message)
        status = podspec.failed_status(pod, code, message)
        await self._patch_status(ns, name, status, pod["metadata"]["uid"])

    async def _patch_status(self, namespace: str, name: str, status: dict, uid):
        """Report `status` for the pod `name` whose uid is `uid`, never for a
        new pod of the same name (a spawner retrying its create deletes and
        makes the pod again while this one may still be starting)."""
        body = {"metadata": {"uid": uid}, "status": status}
        try:
            await _retrying(
                _plain, self.core.patch_namespaced_pod_status, name, namespace, body
            )
        except ApiException as e:
            if e.status != 404 and not _other_uid(e):  # gone: nothing to report
                raise

    async def _finish_deletion(self, pod: dict) -> None:
        """Stop the process, then remove the pod object for good."""
        meta = pod["metadata"]
        running = self.pods.pop(meta["uid"], None)
        if running:
            await self._kill(running)
        self._done.add(meta["uid"])
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            await _plain(
                self.core.delete_namespaced_pod,
                meta["name"],
                meta["namespace"],
                body=body,
            )
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    async def _kill(self, running: PodProcess) -> None:
        if running.task and not running.task.done():
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
        proc = running.proc
        if proc and proc.returncode is None:
            containers.signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                containers.signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        if running.lease:
            running.lease.release()
        shutil.rmtree(running.workdir, ignore_errors=True)

    # -- namespaces and volumes -----------------------------------------

    async def _on_namespace(self, kind: str, ns: dict) -> None:
        """Give each namespace its `default` ServiceAccount; finish deletions."""
        name = ns["metadata"]["name"]
        if kind == "DELETED":
            return
        if ns["metadata"].get("deletionTimestamp"):
            await self._empty_namespace(name)
            body = {"metadata": {"name": name}, "spec": {"finalizers": []}}
            await self.core.replace_namespace_finalize(name, body)
            return
        try:
            await self.core.create_namespaced_service_account(
                name, {"metadata": {"name": "default"}}
            )
        except ApiException as e:
            if e.status not in (409, 403):  # exists, or namespace terminating
                raise

    async def _empty_namespace(self, namespace: str) -> None:
        """Remove what the namespace controller would, before finalizing."""
        for running in [p for p in self.pods.values() if p.namespace == namespace]:
            await self._kill(running)
        for kind in _NAMESPACED_KINDS:
            delete = getattr(self.core, f"delete_collection_namespaced_{kind}")
            await delete(namespace, grace_period_seconds=0)

    async def _on_pvc(self, kind: str, pvc: dict) -> None:
        """Mark new claims Bound: there is no provisioner to do it.

        A deleted claim's directory goes with it (the Delete reclaim policy).
        """
        status = pvc.get("status") or {}
        meta = pvc["metadata"]
        if kind == "DELETED":
            volumes.remove_claim(self.claims, meta["namespace"], meta["name"])
            return
        if status.get("phase") == "Bound":
            return
        spec = pvc.get("spec") or {}
        body = {
            "status": {
                "phase": "Bound",
                "accessModes": spec.get("accessModes", []),
                "capacity": (spec.get("resources") or {}).get("requests", {}),
            }
        }
        try:
            await _retrying(
                _plain,
                self.core.patch_namespaced_persistent_volume_claim_status,
                meta["name"],
                meta["namespace"],
                body,
            )
        except ApiException as e:
            if e.status != 404:
                raise


async def _retrying(patch, *args):
    """A status patch (idempotent), tried again when the API server drops
    the connection (under load it resets some): a lost Running would leave
    the pod Pending for good."""
    for attempt in range(STATUS_ATTEMPTS):
        try:
            return await patch(*args)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
            if attempt == STATUS_ATTEMPTS - 1:
                raise
            log.warning("status update failed (%r), trying again", e)
            await asyncio.sleep(STATUS_BACKOFF * 2**attempt)


def _keep_connections(api: client.ApiClient, seconds: float) -> None:
    """Keep the client's idle connections `seconds` (see `API_KEEPALIVE`).

    The client library has no setting for it: its aiohttp connector's is
    changed, where that connector has one."""
    connector = getattr(
        getattr(api.rest_client, "pool_manager", None), "connector", None
    )
    if hasattr(connector, "_keepalive_timeout"):
        connector._keepalive_timeout = seconds


def _undecoded(list_func):
    """`list_func` for a watch whose events keep the API server's JSON.

    The client's `Watch` builds its model objects (V1Pod...) from the return
    type in the function's docstring; this wrapper has none, so each event's
    `object` stays the plain dict the handlers read. Building the models
    cost this Python kubelet milliseconds per event, serialized on its one
    event loop, where a node's kubelet decodes in microseconds.
    """
    return lambda **kwargs: list_func(**kwargs)


async def _plain(method, *args, **kwargs):
    """Call a `CoreV1Api` method and return its answer as plain JSON, not
    as the client's models (see `_undecoded`); errors raise `ApiException`
    with the status and body, as the client's own calls do."""
    response = await method(*args, _preload_content=False, **kwargs)
    async with response:
        body = await response.read()
    if not 200 <= response.status <= 299:
        error = ApiException(status=response.status, reason=response.reason)
        error.body = body.decode(errors="replace")
        raise error
    return json.loads(body) if body else None


def _other_uid(e: ApiException) -> bool:
    """Whether a patch was refused because the pod of that name has another
    uid (the API server answers 422, "metadata.uid ... field is immutable")."""
    try:
        causes = json.loads(e.body)["details"]["causes"]
    except (TypeError, ValueError, KeyError):
        return False
    return e.status == 422 and any(c.get("field") == "metadata.uid" for c in causes)
