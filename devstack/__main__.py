"""Command line: `python -m devstack build` or `python -m devstack up`."""

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from .build import BuildError, build_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="hubext's local Kubernetes control plane and dev stack.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build or reuse kube-apiserver, kine and helm")
    up = sub.add_parser(
        "up", help="run the control plane and test kubelet until Ctrl-C"
    )
    up.add_argument(
        "--workdir",
        type=Path,
        help="keep state, certificates and logs here instead of a temp dir",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "build":
            start = time.monotonic()
            build_all()
            print(f"build time: {time.monotonic() - start:.1f}s")
        else:
            from .up import run

            asyncio.run(run(args.workdir))
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
