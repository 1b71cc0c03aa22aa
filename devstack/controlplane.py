"""Start and stop a real kube-apiserver on kine (SQLite), on loopback.

Everything lives in one temporary directory: the SQLite database, the
certificates, the logs and the kubeconfig. Both processes listen on
127.0.0.1 only. No controller-manager or scheduler runs, so the apiserver
is started with the admission plugins that would wait on them turned off
(see `DISABLED_ADMISSION`); the test kubelet (`devstack.kubelet`) plays the
few controller parts the tests need.
"""

import atexit
import base64
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from . import certs
from .build import Binaries, build_all
from .net import free_port
from .proc import die_with_parent

# StorageObjectInUseProtection adds a finalizer to every PVC that only the
# controller-manager removes: without it a deleted PVC would never go away.
DISABLED_ADMISSION = ["StorageObjectInUseProtection"]

# The range Services get their ClusterIPs from. The apiserver only records
# these addresses; nothing in the local stack ever connects to them.
SERVICE_CIDR = "10.96.0.0/16"


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message ends with its log."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class ControlPlane:
    """kine + kube-apiserver in a temporary directory.

    Use as a context manager, or call `start()` and `stop()`. After start,
    `kubeconfig` is a self-contained kubeconfig file for the admin identity
    and `server` the apiserver URL.
    """

    def __init__(self, binaries: Binaries | None = None, workdir: Path | None = None):
        self.binaries = binaries
        self.workdir = workdir
        self._own_workdir = workdir is None
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self.server = ""
        self.kubeconfig: Path | None = None
        self.start_seconds = 0.0

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout: float = 120) -> None:
        """Start kine, then the apiserver; return once `/readyz` says ok."""
        began = time.monotonic()
        if self.binaries is None:
            self.binaries = build_all(log=lambda _msg: None)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="hubext-k8s-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        pki = certs.generate(self.workdir / "pki")
        etcd = self._start_kine()
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        self._spawn("kube-apiserver", self._apiserver_args(pki, etcd, port))
        self.kubeconfig = self.workdir / "kubeconfig"
        write_kubeconfig(self.kubeconfig, self.server, pki)
        self._wait_ready(pki, began + timeout)
        self.start_seconds = time.monotonic() - began

    def _start_kine(self) -> str:
        port = free_port()
        db = self.workdir / "kine" / "state.db"
        db.parent.mkdir(exist_ok=True)
        self._spawn(
            "kine",
            [
                str(self.binaries.kine),
                f"--endpoint=sqlite://{db}?_journal=WAL&cache=shared&_busy_timeout=30000",
                f"--listen-address=127.0.0.1:{port}",
                "--metrics-bind-address=0",  # no metrics listener at all
            ],
        )
        return f"http://127.0.0.1:{port}"

    def _apiserver_args(self, pki: certs.Pki, etcd: str, port: int) -> list[str]:
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.sa_public}",
            f"--service-account-signing-key-file={pki.sa_private}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            f"--disable-admission-plugins={','.join(DISABLED_ADMISSION)}",
            "--profiling=false",
            "--v=1",
        ]

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        self._procs.append((name, proc))

    def _wait_ready(self, pki: certs.Pki, deadline: float) -> None:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    self.stop(keep_logs=True)
                    raise ControlPlaneError(
                        f"{name} exited with code {proc.returncode} during start; "
                        f"its log ({self.workdir / (name + '.log')}):\n"
                        + _tail(self.workdir / f"{name}.log")
                    )
            try:
                with urllib.request.urlopen(
                    f"{self.server}/readyz", context=context, timeout=5
                ) as resp:
                    if resp.status == 200:
                        return
            except OSError as e:
                last = str(e)
            time.sleep(0.25)
        self.stop(keep_logs=True)
        raise ControlPlaneError(
            f"kube-apiserver at {self.server} was not ready in time ({last}); "
            f"its log:\n" + _tail(self.workdir / "kube-apiserver.log")
        )

    def stop(self, keep_logs: bool = False) -> None:
        """Stop both processes (apiserver first) and remove the directory."""
        for _name, proc in reversed(self._procs):
            _terminate(proc)
        self._procs.clear()
        if self._own_workdir and self.workdir and not keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _terminate(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def write_kubeconfig(path: Path, server: str, pki: certs.Pki) -> None:
    """A kubeconfig with the certificates embedded, so it can be copied."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "hubext-dev",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": b64(pki.ca_cert),
                },
            }
        ],
        "users": [
            {
                "name": "hubext-admin",
                "user": {
                    "client-certificate-data": b64(pki.admin_cert),
                    "client-key-data": b64(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "hubext-dev",
                "context": {"cluster": "hubext-dev", "user": "hubext-admin"},
            }
        ],
        "current-context": "hubext-dev",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
