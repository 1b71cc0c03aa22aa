"""Shared pytest configuration.

Fixtures live in `tests/fixtures/*.py`, one module per real component (the
Kubernetes control plane, git hosts, a JupyterHub in a subprocess); every one
of them is loaded as a plugin here. Importing this file needs no cluster.
"""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if not p.stem.startswith("_")
)
