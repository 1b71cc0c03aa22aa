"""One HTTP GET with a size cap, a timeout and redirects kept on one host.

Tornado follows redirects to anywhere and buffers whole bodies; here each
redirect is checked against the hosts the caller allows, and the body is
read in chunks and abandoned as soon as it passes the cap. The caller
passes its own client: tornado's shared ``AsyncHTTPClient()`` has a few
slots for the whole process, and a hanging host must not hold them.
"""

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from tornado.httpclient import (
    AsyncHTTPClient,
    HTTPClientError,
    HTTPRequest,
)
from tornado.simple_httpclient import HTTPTimeoutError

MAX_REDIRECTS = 5


class TooLarge(Exception):
    """The response body passed the size cap."""


class Unreachable(Exception):
    """No response: connection refused, reset, DNS, TLS or timeout."""

    def __init__(self, reason: str, timed_out: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out


class BadRedirect(Exception):
    """A redirect pointed to a host outside the allowed set."""

    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


@dataclass(frozen=True)
class Response:
    """What the caller needs of a response: status, headers and body."""

    code: int
    headers: dict
    body: bytes


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{(parts.netloc or '').lower()}"


def _unreachable(error: Exception, timeout: float) -> Exception:
    """The exception to raise for a request that got no response."""
    if isinstance(error, HTTPTimeoutError):
        return Unreachable(f"no answer within {timeout:g} s", timed_out=True)
    if isinstance(error, HTTPClientError):
        # Other client implementations (curl) report timeouts as plain 599s.
        timed_out = "timeout" in (error.message or "").lower()
        return Unreachable(error.message or "connection closed", timed_out)
    if isinstance(error, OSError):
        return Unreachable(error.strerror or type(error).__name__)
    return error


async def _get_once(client, url, headers, timeout, max_bytes) -> Response:
    chunks = []
    size = 0

    def on_chunk(chunk):
        nonlocal size
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(size)
        chunks.append(chunk)

    request = HTTPRequest(
        url,
        headers=headers,
        follow_redirects=False,
        connect_timeout=timeout,
        request_timeout=timeout,
        streaming_callback=on_chunk,
        decompress_response=True,
    )
    try:
        response = await client.fetch(request, raise_error=False)
    except Exception as e:
        if size > max_bytes:
            # Raising in the streaming callback is the only way to stop a
            # download; tornado logs it and reports a closed stream.
            raise TooLarge(size) from None
        raise _unreachable(e, timeout) from None
    if size > max_bytes:
        raise TooLarge(size)
    return Response(response.code, dict(response.headers), b"".join(chunks))


async def capped_get(
    url, headers, *, client: AsyncHTTPClient, timeout, max_bytes, allowed
) -> Response:
    """GET ``url`` with ``client``; follow redirects only to origins in ``allowed``.

    ``allowed`` holds ``scheme://host[:port]`` origins. Raises `TooLarge`,
    `Unreachable` or `BadRedirect`; every HTTP status is returned.
    """
    for _ in range(MAX_REDIRECTS + 1):
        response = await _get_once(client, url, headers, timeout, max_bytes)
        location = response.headers.get("Location")
        if response.code not in (301, 302, 303, 307, 308) or not location:
            return response
        target = urljoin(url, location)
        if _netloc(target) not in allowed:
            raise BadRedirect(target)
        url = target
    raise BadRedirect(url)
