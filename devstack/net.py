"""Loopback addresses and ports: the only network the local stack uses."""

import ipaddress
import socket

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
