"""Loopback addresses and ports: the only network the local stack uses."""

import fcntl
import ipaddress
import os
import socket
import tempfile
from pathlib import Path

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def is_loopback(address: str) -> bool:
    """True for an IPv4 address inside 127.0.0.0/8."""
    try:
        return ipaddress.ip_address(address) in LOOPBACK
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` (so a server may take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class AddressLease:
    """A machine-wide claim on one address and port until `release()`.

    A free port is only free until someone binds it, and a notebook server
    takes a second to bind. Two test kubelets on one machine (the
    JupyterHub 5 and 6 suites run side by side) could otherwise both hand
    out the same address in that second. Each lease is an exclusive
    `flock` on a file named after the address, so the kernel drops it when
    its holder exits, however it exits.
    """

    def __init__(self, handle):
        self._handle = handle

    @staticmethod
    def directory() -> Path:
        """The lease files of this user's processes on this machine."""
        return Path(tempfile.gettempdir()) / f"hubext-address-leases-{os.getuid()}"

    @classmethod
    def take(cls, host: str, port: int) -> "AddressLease | None":
        """The lease on `host:port`, or None if another holder has it."""
        folder = cls.directory()
        folder.mkdir(mode=0o700, exist_ok=True)
        handle = open(folder / f"{host}:{port}", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return cls(handle)

    def release(self) -> None:
        """Give the address back (again is harmless)."""
        self._handle.close()
