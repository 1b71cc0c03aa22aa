"""Build (or reuse) the Go programs of the local stack.

kube-apiserver and kine are built from the Go modules in `devstack/go/`;
helm with `go install`. Each binary lands in a cache directory outside the
checkout, keyed by its version and by a hash of its module files, so a
second run finds it in milliseconds and a version bump rebuilds it. Go's own
module and build caches make even a rebuild after a bump fast.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import versions

GO_DIR = Path(__file__).parent / "go"
_VERSION_PKG = "k8s.io/component-base/version"


class BuildError(RuntimeError):
    """A Go build failed; the message carries the command and its output."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the built programs."""

    kube_apiserver: Path
    kine: Path
    helm: Path


def cache_dir() -> Path:
    """Where binaries are kept: `$HUBEXT_CACHE_DIR`, else the XDG cache."""
    explicit = os.environ.get("HUBEXT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "hubext"


def _module_hash(module: Path) -> str:
    """Short hash of go.mod and go.sum: a changed pin means a new binary."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        path = module / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _go_env() -> dict:
    env = dict(os.environ)
    # Never fetch a different Go toolchain behind our back, and build
    # reproducibly without consulting a VCS checkout.
    env.setdefault("GOTOOLCHAIN", "local")
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false").strip()
    return env


def _run_go(args: list[str], cwd: Path, env: dict) -> None:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the `go` command was not found on PATH; install Go 1.26.5 or newer "
            "(https://go.dev/dl/) and run `python -m devstack build` again"
        )
    proc = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(
            f"`go {' '.join(args)}` in {cwd} failed "
            f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        )


def _cached(name: str, key: str, build) -> Path:
    """Return the cached binary for (name, key), building it once if absent.

    A lock file serialises concurrent builders (several test sessions on one
    machine); the binary is written to a temporary name and renamed, so a
    reader never sees half a file.
    """
    target = cache_dir() / "bin" / f"{name}-{key}" / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / name
            build(built)
            os.replace(built, target)
    return target


def build_kube_apiserver() -> Path:
    """kube-apiserver that reports the pinned version at `/version`."""
    module = GO_DIR / "apiserver"
    version = versions.KUBERNETES_VERSION
    major, minor = version.lstrip("v").split(".")[:2]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X {_VERSION_PKG}.gitVersion={version}",
            f"-X {_VERSION_PKG}.gitMajor={major}",
            f"-X {_VERSION_PKG}.gitMinor={minor}",
            f"-X {_VERSION_PKG}.gitTreeState=clean",
        ]
    )

    def build(out: Path) -> None:
        _run_go(
            ["build", "-trimpath", "-o", str(out), "-ldflags", ldflags]
            + ["k8s.io/kubernetes/cmd/kube-apiserver"],
            module,
            _go_env(),
        )

    key = f"{version}-{_module_hash(module)}"
    return _cached("kube-apiserver", key, build)


def build_kine() -> Path:
    """kine with its SQLite driver (cgo)."""
    module = GO_DIR / "kine"
    env = _go_env()
    env["CGO_ENABLED"] = "1"

    def build(out: Path) -> None:
        _run_go(
            ["build", "-trimpath", "-o", str(out), "-ldflags", "-s -w"]
            + ["github.com/k3s-io/kine"],
            module,
            env,
        )

    key = f"{versions.KINE_VERSION}-{_module_hash(module)}"
    return _cached("kine", key, build)


def build_helm() -> Path:
    """helm 3 via `go install`, for the chart tests."""
    version = versions.HELM_VERSION

    def build(out: Path) -> None:
        env = _go_env()
        env["GOBIN"] = str(out.parent)
        env["CGO_ENABLED"] = "0"
        ldflags = f"-s -w -X helm.sh/helm/v3/internal/version.version={version}"
        _run_go(
            ["install", "-trimpath", "-ldflags", ldflags]
            + [f"helm.sh/helm/v3/cmd/helm@{version}"],
            GO_DIR,
            env,
        )

    return _cached("helm", version, build)


def build_all(log=print) -> Binaries:
    """Build or reuse every binary, logging how long each took."""
    built = {}
    for name, func in (
        ("kube_apiserver", build_kube_apiserver),
        ("kine", build_kine),
        ("helm", build_helm),
    ):
        start = time.monotonic()
        built[name] = func()
        log(
            f"{name.replace('_', '-')}: {built[name]} ({time.monotonic() - start:.1f}s)"
        )
    return Binaries(**built)
