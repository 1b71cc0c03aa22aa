"""A pod's containers as local processes: what a container runtime would do.

Each container runs in its own private mount namespace showing the pod's
volumes at their mount paths and the pod's own home directory at
`IMAGE_HOME`, as the container's uid, gid and groups (`devstack.mountns`).
A mount's `subPath` is resolved inside its volume first and refused when it
would leave it, as the kubelet does (`subpath_source`). This needs root; a
kubelet started by another user runs programs directly, without volumes,
as before, and says so once in its log.
"""

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import posixpath
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import mountns
from .proc import die_with_parent

log = logging.getLogger("devstack.containers")

INIT_TIMEOUT = 60
EXEC_TIMEOUT = 60
_warned = False


@functools.cache
def namespaces_available() -> bool:
    """Root, with `unshare`, `setpriv` and `nsenter` on PATH."""
    tools = ("unshare", "setpriv", "nsenter", "mount")
    return os.geteuid() == 0 and all(shutil.which(t) for t in tools)


@dataclass
class View:
    """How one container of a pod is run: its user, home and mounts."""

    identity: mountns.Identity
    home: str  # HOME as the program sees it
    home_dir: Path  # the pod's home directory on this machine
    script: str | None = None  # None: run directly, no namespace
    skipped: list[str] = field(default_factory=list)

    def argv(self, program: list[str]) -> list[str]:
        """The full command line that runs `program` in this view."""
        if self.script is None:
            return list(program)
        return mountns.run_argv(self.script, self.identity, program)

    @property
    def runs_as_root(self) -> bool:
        return self.identity.is_root if self.script else os.geteuid() == 0


class SubPathError(Exception):
    """A volumeMount's `subPath` cannot be used: the kubelet then refuses to
    create `container` (CreateContainerConfigError); the message is its own."""

    def __init__(self, message: str, container: str):
        super().__init__(message)
        self.container = container


def subpath_source(volume_dir, sub_path: str, mount: str, container: str) -> str:
    """The host path `sub_path` names inside `volume_dir`, checked as the
    kubelet checks it before it hands the path to the runtime.

    An absolute path or a `..` component is refused outright (the API server
    refuses those pods too). Symlinks are followed, but only while they stay
    inside the volume: a Secret's `ssh.priv -> ..data/ssh.priv` is fine, a
    link to `/etc` fails the container. A path that does not exist yet is
    made as a directory with the volume's own mode, like the kubelet's
    SafeMakeDir. The result is the resolved path, so the bind mount made
    later follows no link. (The real kubelet also closes the window between
    this check and the mount by binding an `O_NOFOLLOW`-opened descriptor;
    this one runs only the suite's own pods and leaves it open.)
    """
    if posixpath.isabs(sub_path):
        raise SubPathError(
            f"error SubPath `{sub_path}` must not be an absolute path", container
        )
    if ".." in sub_path.split("/"):
        raise SubPathError(
            f"unable to provision SubPath `{sub_path}`: must not contain '..'",
            container,
        )
    root = os.path.realpath(volume_dir)
    target = os.path.realpath(os.path.join(root, sub_path))
    if os.path.commonpath([root, target]) != root:
        log.warning("subPath %s of %s resolves outside its volume", sub_path, mount)
        raise SubPathError(
            f'failed to prepare subPath for volumeMount "{mount}" of container '
            f'"{container}"',
            container,
        )
    if not os.path.lexists(target):
        mode = os.stat(root).st_mode & 0o7777
        for part in Path(os.path.relpath(target, root)).parts:
            root = os.path.join(root, part)
            if not os.path.lexists(root):
                os.mkdir(root)
                os.chmod(root, mode)
    return target


def _safe_subpaths(container: dict, volume_paths: dict) -> dict:
    """`container` with each `subPath` replaced by its resolved path inside
    the volume (relative to it), for `mountns.container_mounts` to join."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        source = volume_paths.get(vm["name"])
        if vm.get("subPath") and source is not None:
            path = subpath_source(source, vm["subPath"], vm["name"], container["name"])
            vm = {**vm, "subPath": os.path.relpath(path, os.path.realpath(source))}
        mounts.append(vm)
    return {**container, "volumeMounts": mounts}


def view(pod: dict, container: dict, pod_dir: Path, volume_paths: dict) -> View:
    """The view for `container`; the pod's home directory is made if missing.

    Raises `SubPathError` for a `subPath` the kubelet would refuse.
    """
    home_dir = pod_dir / "home"
    home_dir.mkdir(exist_ok=True)
    if not namespaces_available():
        _warn_once(pod)
        return View(mountns.Identity(), str(home_dir), home_dir)
    who = mountns.identity(pod, container)
    if not who.is_root:
        os.chown(home_dir, who.uid, who.gid or 0)
    os.chmod(pod_dir, 0o711)  # the user must reach its home and volumes
    home = _env_value(container, "HOME") or mountns.IMAGE_HOME
    mounts, skipped = mountns.container_mounts(
        _safe_subpaths(container, volume_paths), volume_paths
    )
    mounts.insert(0, mountns.Mount(str(home_dir), home))
    mounts = [
        mountns.Mount(m.source, m.target, m.read_only, os.path.isfile(m.source))
        for m in mounts
    ]
    workdir = container.get("workingDir") or home
    scratch = pod_dir / "scratch"  # made here: one program less in the pod
    scratch.mkdir(exist_ok=True)
    script = mountns.setup_script(mounts, str(scratch), os.path.exists, workdir)
    return View(who, home, home_dir, script, skipped)


def runnable_view(view: View, program: str) -> View:
    """`view`, or the same view as root if its user cannot run `program`.

    The notebook server comes from this machine's virtualenv, not from an
    image; when that lies where the pod's user may not read it (a checkout
    under a 0700 directory, say), the server runs as root in the same mount
    namespace instead, and `exec` still runs as the pod's user.
    """
    who = view.identity
    if view.script is None or who.is_root or _can_run(who, program):
        return view
    _say_root_runs(who.uid, program)
    return dataclasses.replace(view, identity=mountns.Identity())


@functools.cache
def _say_root_runs(uid: int, program: str) -> None:
    """Once per user and program: every pod of theirs would say the same."""
    log.warning(
        "uid %s cannot run %s (a parent directory is closed to it): the "
        "notebook server runs as root; `exec` still runs as uid %s",
        uid,
        program,
        uid,
    )


@functools.cache
def _can_run(who: mountns.Identity, program: str) -> bool:
    probe = [*mountns.setpriv_argv(who), program, "--help-all"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _env_value(container: dict, name: str) -> str | None:
    for var in container.get("env") or []:
        if var.get("name") == name and "value" in var:
            return var["value"]
    return None


def _warn_once(pod: dict) -> None:
    global _warned
    if not _warned and (
        pod["spec"].get("volumes") or pod["spec"].get("initContainers")
    ):
        log.warning(
            "the test kubelet is not root: pods run without their volumes, "
            "init containers and users (run it as root for those)"
        )
        _warned = True


class ContainerProcess:
    """A container's program, started and reaped off the kubelet's event loop.

    Starting a process makes the starting thread wait until the child has
    exec'd its program (vfork), which on a busy machine takes tens of
    milliseconds; on the event loop every other pod's step would wait
    behind it, where a runtime starts containers in parallel. So a worker
    thread starts it and a thread of its own waits for its end, as
    asyncio's own child watcher does. `pid`, `returncode` and `wait()` are
    those of `asyncio.subprocess.Process`.
    """

    def __init__(self, popen: subprocess.Popen):
        self._popen = popen
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()

        def reap() -> None:
            code = popen.wait()
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(_settle, self._ended, code)

        threading.Thread(target=reap, name=f"reap-{popen.pid}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)


def _settle(future: asyncio.Future, code: int) -> None:
    if not future.done():
        future.set_result(code)


async def start(argv: list[str], env: dict, log_path: Path, cwd: Path):
    """Start a long-running container process, output appended to `log_path`."""
    with open(log_path, "ab") as out:
        popen = await asyncio.to_thread(
            subprocess.Popen,
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_until_kubelet_dies(argv),
        )
    return ContainerProcess(popen)


def _until_kubelet_dies(argv: list[str]):
    """The `preexec_fn` that makes the kernel kill the command with the
    kubelet: none when the command's own `setpriv --pdeathsig` does it
    (`mountns.setpriv_argv`), so the kubelet starts it without a fork."""
    return None if "--pdeathsig" in argv else die_with_parent


async def run_to_end(
    argv: list[str], env: dict, log_path: Path, cwd: Path, timeout=INIT_TIMEOUT
) -> int:
    """Run an init container to its end; its exit code (137 if it hangs)."""
    proc = await start(argv, env, log_path, cwd)
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        os.killpg(proc.pid, 9)
        await proc.wait()
        with open(log_path, "a") as out:
            out.write(f"test kubelet: killed after {timeout}s\n")
        return 137


async def exec_in(pid: int, who, argv: list[str], env: dict, timeout=EXEC_TIMEOUT):
    """`kubectl exec`: argv in process `pid`'s mount namespace, as `who`."""
    if namespaces_available():
        argv = mountns.exec_argv(pid, who, argv)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_until_kubelet_dies(argv),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        os.killpg(proc.pid, 9)
        out, err = await proc.communicate()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def listens(pid: int, ip: str, port: int) -> bool | None:
    """Whether process `pid` holds a listening TCP socket on ip:port.

    Read from /proc; None when it cannot be told (not Linux, not our process).
    """
    want = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    try:
        with open("/proc/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    inodes = {f"socket:[{r[9]}]" for r in rows if r[1] == want and r[3] == "0A"}
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def base_env(view: View, env: dict) -> dict:
    """What a container gets besides its own `env`: PATH, HOME, USER."""
    base = {k: os.environ[k] for k in ("PATH", "LANG", "TZ") if k in os.environ}
    base.update(
        HOME=view.home,
        USER=env.get("JUPYTERHUB_USER", "jovyan"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    return base


def signal_group(pid: int, sig: int) -> None:
    """Signal a container's process group, if it is still there."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 20) -> str:
    """The end of a container's output, for a pod's status message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"
