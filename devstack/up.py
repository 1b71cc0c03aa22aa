"""`python -m devstack up`: the local stack, in the foreground until Ctrl-C.

It runs the control plane, the test kubelet and JupyterHub with hubext (and
its proxy and idle service), then prints how to use them.
"""

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path

from kubernetes_asyncio import config

from . import hub as devhub
from .build import build_all
from .controlplane import ControlPlane
from .kubelet import TestKubelet


@dataclass
class Stack:
    """What is running."""

    control_plane: ControlPlane
    kubelet: TestKubelet
    kubeconfig: Path
    hub: devhub.Hub | None = None


async def start_hub(stack: Stack, api):
    """Start JupyterHub against `stack`; return an async stopper."""
    stack.hub = await devhub.start(
        api, stack.kubeconfig, stack.control_plane.workdir / "hub"
    )

    async def stop():
        await asyncio.to_thread(stack.hub.stop)

    return stop


async def run(workdir: Path | None = None) -> None:
    """Start everything, print how to use it, wait for Ctrl-C, stop."""
    binaries = build_all()
    cp = ControlPlane(binaries, workdir=workdir)
    await asyncio.to_thread(cp.start)
    stop_hub = None
    try:
        api = await config.new_client_from_config(config_file=str(cp.kubeconfig))
        kubelet = TestKubelet(api)
        await kubelet.start()
        stack = Stack(cp, kubelet, cp.kubeconfig)
        try:
            stop_hub = await start_hub(stack, api)
            _print_usage(stack)
            await _wait_for_interrupt()
        finally:
            if stop_hub is not None:
                await stop_hub()
            await kubelet.stop()
            await api.close()
    finally:
        await asyncio.to_thread(cp.stop)


def _print_usage(stack: Stack) -> None:
    cp = stack.control_plane
    if stack.hub is not None:
        print(
            f"\nhubext is running: open {stack.hub.url}/hub/login and sign in "
            f"with any username (no password).\n"
            f"  hub log:    {stack.hub.log_path}\n"
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
