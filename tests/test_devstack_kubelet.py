"""The test kubelet's `subPath` mounts and its container start cost.

`subPath` is resolved inside the volume the way a real kubelet does it, and
refused when it would leave the volume; the first tests call the resolver
and a container's real mount namespace directly (no cluster), the last ones
send real pods through the API server to the session's test kubelet.
"""

import os
import stat
import subprocess
import sys
import time

import pytest
from kubernetes_asyncio import client

from devstack import containers, volumes
from tests.helpers.launch import wait_for
from tests.helpers.views import run_in_view

POD = {
    "metadata": {"name": "p1", "namespace": "ns1", "uid": "u1"},
    "spec": {
        "securityContext": {"fsGroup": 1000},
        "volumes": [
            {
                "name": "key",
                "secret": {
                    "secretName": "k",
                    "items": [
                        {"key": "priv", "path": "priv", "mode": 0o440},
                        {"key": "pub", "path": "dir/pub", "mode": 0o444},
                    ],
                },
            },
            {"name": "scratch", "emptyDir": {"medium": "Memory"}},
        ],
        "containers": [],
    },
}
SOURCES = {("secret", "k"): {"priv": b"PRIVATE", "pub": b"PUBLIC"}}


@pytest.fixture
def vols(tmp_path):
    """The pod's volumes, laid out by the kubelet's own volume code."""
    return volumes.prepare(POD, tmp_path / "pod", tmp_path / "claims", SOURCES)


def resolve(volume, sub_path):
    return containers.subpath_source(volume, sub_path, "key", "notebook")


# -- resolving a subPath (no cluster) ---------------------------------------


def test_a_file_subpath_follows_the_secrets_links_inside_the_volume(vols):
    path = resolve(vols["key"], "priv")
    # priv -> ..data/priv -> ..<stamp>/priv: the file itself, not a link
    assert os.path.dirname(path) == os.path.realpath(vols["key"] / "..data")
    assert not os.path.islink(path) and open(path, "rb").read() == b"PRIVATE"


def test_a_directory_subpath_resolves_to_the_directory(vols):
    path = resolve(vols["key"], "dir")
    assert os.path.isdir(path) and os.listdir(path) == ["pub"]
    assert resolve(vols["key"], "./dir/") == path


def test_a_missing_subpath_is_made_as_a_directory_like_the_volume(vols):
    path = resolve(vols["scratch"], "work/notes")
    assert path == str(vols["scratch"] / "work" / "notes")
    info = os.stat(path)  # the emptyDir's own mode: setgid, group fsGroup
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o2777, 1000)


@pytest.mark.parametrize(
    "sub_path, message",
    [
        (
            "../scratch",
            "unable to provision SubPath `../scratch`: must not contain '..'",
        ),
        ("dir/../../x", "must not contain '..'"),
        ("/etc/shadow", "error SubPath `/etc/shadow` must not be an absolute path"),
    ],
)
def test_backsteps_and_absolute_paths_are_refused(vols, sub_path, message):
    with pytest.raises(containers.SubPathError) as info:
        resolve(vols["key"], sub_path)
    assert message in str(info.value)
    assert info.value.container == "notebook"


@pytest.mark.parametrize("link", ["/etc", "../../..", "inner/../../key"])
def test_a_symlink_out_of_the_volume_is_refused(vols, link):
    scratch = vols["scratch"]
    (scratch / "inner").mkdir()
    (scratch / "escape").symlink_to(link)
    with pytest.raises(containers.SubPathError) as info:
        resolve(scratch, "escape")
    assert str(info.value) == (
        'failed to prepare subPath for volumeMount "key" of container "notebook"'
    )
    with pytest.raises(containers.SubPathError):
        resolve(scratch, "escape/passwd")  # through the link, too


def test_a_symlink_that_stays_inside_is_followed(vols):
    scratch = vols["scratch"]
    (scratch / "real").mkdir()
    (scratch / "alias").symlink_to("real")
    assert resolve(scratch, "alias") == str(scratch / "real")


def test_a_bad_subpath_fails_the_containers_view(vols, tmp_path):
    container = {
        "name": "notebook",
        "volumeMounts": [{"name": "key", "mountPath": "/x", "subPath": "../up"}],
    }
    if not containers.namespaces_available():
        pytest.skip("mounts are made only by a root kubelet")
    with pytest.raises(containers.SubPathError):
        containers.view(POD, container, tmp_path / "pod", vols)


# -- subPath mounts in a real mount namespace (no cluster) -----------------


async def test_subpath_mounts_land_inside_their_parent_mount(vols, tmp_path):
    if not containers.namespaces_available():
        raise AssertionError("the test kubelet needs root with unshare and setpriv")
    container = {
        "name": "notebook",
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
        # children listed first: mounted after their parent all the same
        "volumeMounts": [
            {"name": "key", "mountPath": "/home/jovyan/.ssh/k", "subPath": "priv"},
            {"name": "key", "mountPath": "/home/jovyan/.ssh/d", "subPath": "dir"},
            {"name": "scratch", "mountPath": "/home/jovyan/.ssh"},
        ],
    }
    view = containers.view(POD, container, tmp_path / "pod", vols)
    script = (
        "cat ~/.ssh/k; echo; cat ~/.ssh/d/pub; echo;"
        "stat -c '%a %u %g' ~/.ssh/k; touch ~/.ssh/known_hosts && echo writable;"
        "rm -f ~/.ssh/k 2>&1; ls -A ~/.ssh"
    )
    code, out = await run_in_view(view, script, tmp_path)
    assert code == 0, out
    assert out[:4] == ["PRIVATE", "PUBLIC", "440 0 1000", "writable"], out
    assert "Device or resource busy" in out[4], out
    assert sorted(out[5:]) == ["d", "k", "known_hosts"]
    # the mount points were made in the emptyDir; the file is still there
    assert (vols["scratch"] / "known_hosts").exists()
    assert (vols["key"] / "priv").read_bytes() == b"PRIVATE"


_STAND_IN_KUBELET = """
import subprocess, sys, time
child = subprocess.Popen(sys.argv[1:])  # no preexec_fn: the argv alone
print(child.pid, flush=True)
time.sleep(60)
"""


def _state(pid: int) -> str:
    """A process's state letter; "gone" once it has been reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.mark.parametrize("uid", [None, 1000], ids=["root", "user"])
def test_a_containers_process_dies_with_the_kubelet(vols, tmp_path, uid):
    """A kubelet killed outright (a test run stopped with SIGKILL) leaves no
    pod process behind, whoever the pod runs as: the container's command
    line itself asks the kernel for it, after switching to the pod's user
    (a switch clears a death signal asked for before it)."""
    if not containers.namespaces_available():
        raise AssertionError("the test kubelet needs root with unshare and setpriv")
    context = {"runAsUser": uid, "runAsGroup": uid} if uid else {}
    container = {"name": "notebook", "securityContext": context}
    view = containers.view(POD, container, tmp_path / "pod", vols)
    argv = [sys.executable, "-c", _STAND_IN_KUBELET, *view.argv(["sleep", "60"])]
    kubelet = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(kubelet.stdout.readline())
        deadline = time.monotonic() + 10
        while _comm(pid) != "sleep" and time.monotonic() < deadline:
            time.sleep(0.02)  # unshare, sh and setpriv exec on to sleep
        assert _comm(pid) == "sleep"
        if uid:
            assert os.stat(f"/proc/{pid}").st_uid == uid
    finally:
        kubelet.kill()
        kubelet.wait()
    deadline = time.monotonic() + 5
    while _state(pid) not in ("Z", "gone") and time.monotonic() < deadline:
        time.sleep(0.02)
    state = _state(pid)
    if state not in ("Z", "gone"):
        os.kill(pid, 9)
    assert state in ("Z", "gone"), f"process {pid} outlived its kubelet"


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except FileNotFoundError:
        return ""


# -- through the API server, run by the session's test kubelet --------------


@pytest.fixture
def kubelet(test_kubelet):
    if test_kubelet is None:
        pytest.skip("checks the local test kubelet; another cluster runs images")
    return test_kubelet


@pytest.fixture
def core(kube_api):
    return client.CoreV1Api(kube_api)


def _pod(name: str, inits: list, mounts: list, volumes: list) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"fsGroup": 1000},
            "volumes": volumes,
            "initContainers": inits,
            "containers": [
                {
                    "name": "notebook",
                    "image": "example/never-pulled",
                    "command": ["jupyterhub-singleuser"],
                    "ports": [{"name": "notebook-port", "containerPort": 8888}],
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                    "volumeMounts": mounts,
                }
            ],
        },
    }


async def _finished(core, namespace, name):
    async def phase():
        pod = await core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Failed", "Running") else None

    return await wait_for(phase, 60, f"pod {name} finished starting")


@pytest.mark.cluster
async def test_a_pod_whose_subpath_escapes_by_symlink_fails(
    core, k8s_namespace, kubelet
):
    # the pod's own init container plants the link in a shared emptyDir;
    # the API server cannot see it, the kubelet must refuse the mount
    plant = {
        "name": "plant",
        "image": "example/never-pulled",
        "command": ["sh", "-c", "ln -s /etc /home/jovyan/work/escape"],
        "volumeMounts": [{"name": "work", "mountPath": "/home/jovyan/work"}],
    }
    mounts = [{"name": "work", "mountPath": "/home/jovyan/etc", "subPath": "escape"}]
    pod = _pod("escape", [plant], mounts, [{"name": "work", "emptyDir": {}}])
    await core.create_namespaced_pod(k8s_namespace, pod)
    pod = await _finished(core, k8s_namespace, "escape")
    message = 'failed to prepare subPath for volumeMount "work" of container "notebook"'
    assert pod.status.phase == "Failed" and pod.status.message == message
    [notebook] = pod.status.container_statuses
    assert notebook.state.waiting.reason == "CreateContainerConfigError"
    assert notebook.state.waiting.message == message
    [init] = pod.status.init_container_statuses
    assert init.state.terminated.reason == "Completed"
    assert kubelet.find(k8s_namespace, "escape").proc is None  # never started


@pytest.mark.cluster
async def test_every_container_start_pays_the_modelled_cost(
    core, k8s_namespace, kubelet
):
    """One init container and the notebook at cost c start at least 2c
    later than at cost 0, on the kubelet's own clock. A lower bound only:
    the rest of a start (API calls, running `true`) differs between two
    pods by milliseconds, which `slack` absorbs; one container's cost
    missing (c = 1 s) is far beyond it."""
    cost, slack = 1.0, 0.2
    init = {"name": "init", "image": "example/never-pulled", "command": ["true"]}
    took = {}
    before = kubelet.container_start_seconds
    try:
        # the first pod also pays the kubelet's one-off checks: not counted
        for name, seconds in (("warm-up", 0.0), ("free", 0.0), ("costly", cost)):
            kubelet.container_start_seconds = seconds
            await core.create_namespaced_pod(k8s_namespace, _pod(name, [init], [], []))
            await _finished(core, k8s_namespace, name)
            running = kubelet.find(k8s_namespace, name)
            took[name] = {
                c: t - running.taken_at for c, t in running.started_at.items()
            }
    finally:
        kubelet.container_start_seconds = before
    free, costly = took["free"], took["costly"]
    assert set(free) == set(costly) == {"init", "notebook"}
    assert costly["init"] >= cost  # charged before the init container ...
    assert costly["notebook"] - costly["init"] >= cost  # ... and the notebook
    assert costly["notebook"] >= 2 * cost
    assert costly["notebook"] - free["notebook"] >= 2 * cost - slack, took


async def test_the_cost_comes_from_the_environment_and_must_not_be_negative(
    monkeypatch, kube_api
):
    from devstack.kubelet import CONTAINER_START_ENV, TestKubelet

    def cost(**kw) -> float:
        made = TestKubelet(kube_api, **kw)
        made.workdir.rmdir()  # made by the constructor, never used here
        return made.container_start_seconds

    monkeypatch.setenv(CONTAINER_START_ENV, "0.25")
    assert cost() == 0.25
    assert cost(container_start_seconds=0.5) == 0.5
    monkeypatch.delenv(CONTAINER_START_ENV)
    assert cost() == 0
    with pytest.raises(ValueError):
        cost(container_start_seconds=-1)


async def test_a_status_update_survives_dropped_connections(monkeypatch):
    """The API server under load sometimes closes a kept-alive connection
    (the spawn benchmark lost a pod's Running that way); no server we run
    does it on demand, so the fault is built by hand."""
    import aiohttp

    from devstack import kubelet as devkubelet

    monkeypatch.setattr(devkubelet, "STATUS_BACKOFF", 0)
    calls = []

    async def patch_namespaced_pod_status(*args):
        calls.append(args)
        if len(calls) < 3:
            raise aiohttp.ServerDisconnectedError()
        return "patched"

    assert await devkubelet._retrying(patch_namespaced_pod_status, "p", "ns") == (
        "patched"
    )
    assert calls == [("p", "ns")] * 3

    async def always_dropped(*args):
        calls.append(args)
        raise aiohttp.ServerDisconnectedError()

    calls.clear()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await devkubelet._retrying(always_dropped, "p")
    assert len(calls) == devkubelet.STATUS_ATTEMPTS


@pytest.mark.cluster
async def test_a_status_is_never_reported_for_a_new_pod_of_the_same_name(
    core, k8s_namespace, kubelet
):
    """A spawner whose create timed out deletes the pod and makes it again;
    the first pod's late status must not land on the second (two podIPs)."""
    from devstack import podspec

    pod = _pod("same-name", [], [], [])
    pod["spec"]["nodeName"] = "elsewhere"  # not run by the session kubelet
    first = await core.create_namespaced_pod(k8s_namespace, pod)
    await core.delete_namespaced_pod("same-name", k8s_namespace, grace_period_seconds=0)

    async def recreated():
        try:
            return await core.create_namespaced_pod(k8s_namespace, pod)
        except client.exceptions.ApiException as e:
            if e.status != 409:  # the first one is still going
                raise

    second = await wait_for(recreated, 30, "same-name made again")
    plain = kube_dict(pod, second)
    status = podspec.running_status(plain, "127.0.0.9", "127.0.0.1", 1)
    await kubelet._patch_status(k8s_namespace, "same-name", status, first.metadata.uid)
    now = await core.read_namespaced_pod("same-name", k8s_namespace)
    assert now.metadata.uid == second.metadata.uid
    assert now.status.pod_ip is None and now.status.phase == "Pending"
    await kubelet._patch_status(k8s_namespace, "same-name", status, second.metadata.uid)
    now = await core.read_namespaced_pod("same-name", k8s_namespace)
    assert (now.status.phase, now.status.pod_ip) == ("Running", "127.0.0.9")


def kube_dict(manifest: dict, created) -> dict:
    """The manifest with the server's metadata, as the kubelet sees a pod."""
    return {
        **manifest,
        "metadata": {**manifest["metadata"], "uid": created.metadata.uid},
    }


def test_env_sources_are_the_objects_the_env_names():
    from devstack import podspec

    def ref(kind, name):
        return {"name": "V", "valueFrom": {kind: {"name": name, "key": "k"}}}

    init = {"env": [ref("secretKeyRef", "a"), {"name": "X", "value": "1"}]}
    main = {"env": [ref("configMapKeyRef", "a"), ref("secretKeyRef", "a")]}
    assert podspec.env_sources([init, main]) == [("secret", "a"), ("configMap", "a")]
    assert podspec.env_sources([{}]) == []


@pytest.mark.cluster
async def test_env_from_secrets_and_config_maps_reads_the_named_objects(
    core, k8s_namespace, kubelet
):
    await core.create_namespaced_secret(
        k8s_namespace, {"metadata": {"name": "tok"}, "stringData": {"t": "s3cret"}}
    )
    await core.create_namespaced_config_map(
        k8s_namespace, {"metadata": {"name": "cfg"}, "data": {"c": "blue"}}
    )
    env = [
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "c"}}},
        {
            "name": "M",
            "valueFrom": {
                "secretKeyRef": {"name": "absent", "key": "x", "optional": True}
            },
        },
    ]
    show = {
        "name": "show",
        "image": "example/never-pulled",
        "command": ["sh", "-c", 'echo "T=$T C=$C M=${M-unset}"; exit 7'],
        "env": env,
    }
    await core.create_namespaced_pod(k8s_namespace, _pod("env", [show], [], []))
    pod = await _finished(core, k8s_namespace, "env")
    assert "T=s3cret C=blue M=unset" in pod.status.message


def _pod_on_port(uid: str, port: int) -> dict:
    ports = [{"name": "notebook-port", "containerPort": port}]
    return {
        "metadata": {"name": f"pod-{uid}", "namespace": "ns1", "uid": uid},
        "spec": {"containers": [{"name": "notebook", "ports": ports}]},
    }


async def test_two_kubelets_never_hand_out_one_address(kube_api):
    """The CI failure: the JupyterHub 5 and 6 suites' kubelets both gave
    127.0.0.N:8888 to a pod before either server had bound it."""
    from devstack.kubelet import TestKubelet
    from devstack.net import free_port

    port = free_port()  # a port no real pod of this run is using
    first, second = TestKubelet(kube_api), TestKubelet(kube_api)
    second._offset = first._offset  # the worst case: the same search order
    try:
        mine = first._allocate(_pod_on_port("a", port))
        theirs = second._allocate(_pod_on_port("b", port))
        assert mine.ip != theirs.ip  # nothing listens yet: only the lease tells
        await first._kill(mine)
        again = second._allocate(_pod_on_port("c", port))
        assert again.ip == mine.ip  # released with its pod
        await second._kill(theirs)
        await second._kill(again)
    finally:
        for kubelet in (first, second):
            await kubelet.stop()


async def test_an_address_lease_ends_with_the_process_that_holds_it():
    import asyncio
    import sys

    from devstack.net import AddressLease, free_port

    port = free_port()
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import time; from devstack.net import AddressLease; "
        f"held = AddressLease.take('127.0.0.1', {port}); "
        "print(held is not None, flush=True); "
        "time.sleep(60)",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        said = await asyncio.wait_for(holder.stdout.readline(), 30)
        assert said == b"True\n"
        assert AddressLease.take("127.0.0.1", port) is None
    finally:
        holder.kill()
        await holder.wait()
    lease = AddressLease.take("127.0.0.1", port)
    assert lease is not None
    lease.release()
