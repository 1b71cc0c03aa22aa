"""`python -m devstack up`: the local stack, in the foreground until Ctrl-C.

It runs the control plane, the test kubelet, a git server with a sample
repository, JupyterHub with hubext (and its proxy and idle service) and
BinderHub as the hub's authenticated service, then prints how to use them.
Everything listens on 127.0.0.0/8 only.
"""

import asyncio
import contextlib
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

from kubernetes_asyncio import config

from . import binderhub as devbinder
from . import gitserver
from . import hub as devhub
from .build import build_all
from .controlplane import ControlPlane
from .kubelet import TestKubelet
from .net import free_port, port_is_free

#: BinderHub's address. Not the hub's host: browsers keep cookies per host,
#: not per port, so on 127.0.0.1 BinderHub's `_xsrf` cookie (path /) would
#: be sent to the hub's pages too, beside the hub's own (path /hub/), and
#: the hub could read BinderHub's. On 127.0.0.2 each keeps its own cookies.
BINDERHUB_IP = "127.0.0.2"
BINDERHUB_PORT = 8585
GIT_PORT = 8586
#: BinderHub names images under this prefix; the hub launches only those
#: (`c.HubextSpawner.allowed_images`). Nothing is pulled: the test kubelet
#: runs jupyterhub-singleuser from the virtualenv whatever the image.
IMAGE_PREFIX = "registry.example.edu/binder/binder-"


@dataclass
class Stack:
    """What is running."""

    control_plane: ControlPlane
    kubelet: TestKubelet
    kubeconfig: Path
    hub: devhub.Hub | None = None
    git: gitserver.GitServer | None = None
    binderhub: devbinder.BinderHubService | None = None

    @property
    def sample_url(self) -> str:
        return self.git.repo_url(gitserver.SAMPLE_REPO)


def _free(host: str, preferred: int) -> int:
    return preferred if port_is_free(host, preferred) else free_port(host)


async def start_services(stack: Stack, api):
    """Start the git server, the hub and BinderHub; return an async stopper
    (which stops whatever of them started, so call it even after a failure)."""
    workdir = stack.control_plane.workdir
    stopping = []

    async def stop():
        for step in reversed(stopping):
            await step()

    try:
        await _start(stack, api, workdir, stopping)
    except BaseException:
        await stop()
        raise
    return stop


async def _start(stack: Stack, api, workdir: Path, stopping: list) -> None:
    stack.git = gitserver.GitServer(root=workdir / "git")
    stack.git.commits = await asyncio.to_thread(
        gitserver.make_sample_repository, stack.git.root
    )
    http = gitserver.serve(stack.git, _free(gitserver.LOOPBACK, GIT_PORT))

    async def stop_git():
        http.stop()

    stopping.append(stop_git)

    binder_url = f"http://{BINDERHUB_IP}:{_free(BINDERHUB_IP, BINDERHUB_PORT)}"
    token = secrets.token_hex(32)
    hub_state = workdir / "hub"
    hub_state.mkdir(parents=True, exist_ok=True)
    # the hub's side of BinderHub, loaded by jupyterhub_config.py; it holds
    # the service's token, so only we may read it
    extra = hub_state / "binderhub_service.py"
    git_host = stack.git.url.split("://", 1)[1]
    extra.touch(mode=0o600)
    extra.write_text(devbinder.hub_config(token, binder_url, git_host))
    stack.hub = await devhub.start(
        api,
        stack.kubeconfig,
        hub_state,
        {devhub.EXTRA_CONFIG_ENV: str(extra), "HUBEXT_IMAGE_PREFIX": IMAGE_PREFIX},
    )
    stopping.append(lambda: asyncio.to_thread(stack.hub.stop))

    stack.binderhub = devbinder.BinderHubService(
        binder_url,
        workdir / "binderhub",
        devbinder.binderhub_config(
            binder_url,
            stack.hub.url,
            IMAGE_PREFIX,
            devbinder.DEV_QUOTA.format(git_host=git_host),
        ),
        devbinder.binderhub_env(
            token,
            binder_url,
            stack.hub.api_url,
            0,  # BinderHub's own limit off: hubext's quota decides
            devhub.NAMESPACE,
            stack.kubeconfig,
        ),
    )
    stopping.append(lambda: asyncio.to_thread(stack.binderhub.stop))
    await asyncio.to_thread(stack.binderhub.start)


@contextlib.asynccontextmanager
async def running(workdir: Path | None = None):
    """The whole stack, running while the `async with` block runs (its
    `Stack`); stopped in reverse order when the block ends or fails."""
    binaries = build_all()
    cp = ControlPlane(binaries, workdir=workdir)
    await asyncio.to_thread(cp.start)
    try:
        api = await config.new_client_from_config(config_file=str(cp.kubeconfig))
        kubelet = TestKubelet(api)
        await kubelet.start()
        stack = Stack(cp, kubelet, cp.kubeconfig)
        try:
            stop_services = await start_services(stack, api)
            try:
                yield stack
            finally:
                await stop_services()
        finally:
            await kubelet.stop()
            await api.close()
    finally:
        await asyncio.to_thread(cp.stop)


async def run(workdir: Path | None = None) -> None:
    """Start everything, print how to use it, wait for Ctrl-C, stop."""
    async with running(workdir) as stack:
        _print_usage(stack)
        await _wait_for_interrupt()


def _print_usage(stack: Stack) -> None:
    cp = stack.control_plane
    print(
        f"\nhubext is running (Ctrl-C stops it). To launch a project:\n"
        f"  1. open BinderHub:   {stack.binderhub.url}/\n"
        f"     and sign in with any username (no password);\n"
        f"  2. paste the sample repository's URL:\n"
        f"                       {stack.sample_url}\n"
        f"     and press launch;\n"
        f"  3. your projects:    {stack.hub.url}/hub/home  (the control panel)\n"
        f"\n"
        f"  hub:        {stack.hub.url}/hub/login\n"
        f"  hub log:    {stack.hub.log_path}\n"
        f"  BinderHub log: {stack.binderhub.log_path}\n"
        f"  namespace:  {devhub.NAMESPACE}",
        flush=True,
    )
    print(
        f"\nKubernetes control plane ready in {cp.start_seconds:.1f}s\n"
        f"  apiserver:  {cp.server}\n"
        f"  kubeconfig: {stack.kubeconfig}\n"
        f"  logs:       {cp.workdir}\n\n"
        f"Use it from another shell:\n"
        f"  export KUBECONFIG={stack.kubeconfig}\n"
        f"  python -m pytest -m cluster   # runs the suite against this cluster\n\n"
        f"Ctrl-C stops everything and removes the temporary directory.",
        flush=True,
    )


async def _wait_for_interrupt() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("\nstopping…", flush=True)
