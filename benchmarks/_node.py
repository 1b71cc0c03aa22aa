"""The test kubelet in a process of its own, as a node runs its kubelet.

In the benchmark's own process the kubelet would share one event loop with
the fifty launches' clients (their requests and progress streams): every
step of a pod's start, each volume's read included, would wait behind
them, which no node's kubelet does. `_common.local_cluster(node_process=
True)` runs this module instead:

    python benchmarks/_node.py KUBECONFIG --container-start S [--notebook PATH]

It prints "ready" once the node is registered and watching, and stops its
pods and exits on SIGTERM.
"""

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def serve(args) -> None:
    from kubernetes_asyncio import config

    from devstack import kubelet as devkubelet

    devkubelet.READY_TIMEOUT = 900  # as in _common.local_cluster
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    api = await config.new_client_from_config(config_file=args.kubeconfig)
    kubelet = devkubelet.TestKubelet(
        api, singleuser=args.notebook, container_start_seconds=args.container_start
    )
    try:
        await kubelet.start()
        print("ready", flush=True)
        await stop.wait()
    finally:
        await kubelet.stop()
        await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kubeconfig")
    parser.add_argument("--container-start", type=float, default=0)
    parser.add_argument("--notebook", default=None)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
