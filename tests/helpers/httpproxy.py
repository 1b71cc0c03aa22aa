"""A loopback HTTP reverse proxy that counts requests and can inject faults.

Real HTTP in front of a real hub: tests and the benchmark point a client at
`proxy.url` instead of the hub to count its requests, slow it down, or make
some requests fail with a 503 as an overloaded or restarting hub would.
"""

import asyncio
from collections import Counter
from collections.abc import Callable

from tornado import httpserver, netutil, web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class _Forward(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")

    async def _forward(self, *args):
        proxy: CountingProxy = self.settings["proxy"]
        req = self.request
        proxy.counts[req.method] += 1
        proxy.requests.append((req.method, req.uri))
        if proxy.delay:
            await asyncio.sleep(proxy.delay)
        if proxy.fail and proxy.fail(req.method, req.uri):
            proxy.failed += 1
            self.set_status(503)
            self.finish("injected 503")
            return
        upstream = HTTPRequest(
            proxy.target + req.uri,
            method=req.method,
            headers={k: v for k, v in req.headers.items() if k.lower() != "host"},
            body=req.body
            if req.body or req.method in ("POST", "PUT", "PATCH")
            else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            request_timeout=120,
        )
        if proxy.client is None:
            # its own client: never queue behind the clients it serves
            proxy.client = AsyncHTTPClient(force_instance=True, max_clients=200)
        try:
            resp = await proxy.client.fetch(upstream, raise_error=False)
        except OSError as e:  # hub down: answer like a front proxy would
            resp = None
            error = e
        if resp is None or resp.code == 599:
            self.set_status(502)
            self.finish(f"upstream unreachable: {resp.error if resp else error}")
            return
        self.set_status(resp.code, resp.reason)
        for key, value in resp.headers.get_all():
            if key.lower() not in HOP_HEADERS:
                self.add_header(key, value)
        if resp.body and resp.code not in (204, 304):
            self.write(resp.body)
        self.finish()

    get = post = put = patch = delete = head = _forward


class CountingProxy:
    """Forwards everything on 127.0.0.1:`port` to `target` (scheme://host:port)."""

    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.counts: Counter = Counter()
        self.requests: list[tuple[str, str]] = []
        self.failed = 0
        self.delay = 0.0
        self.fail: Callable[[str, str], bool] | None = None
        self.client = None
        sockets = netutil.bind_sockets(0, address="127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        app = web.Application([(r"/(.*)", _Forward)], proxy=self)
        self.server = httpserver.HTTPServer(app)
        self.server.add_sockets(sockets)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()
        self.requests.clear()
        self.failed = 0

    def fail_first(self, n: int, method: str = "", path_part: str = "") -> None:
        """Answer 503 to the first `n` requests matching method and path."""
        left = {"n": n}

        def fail(m: str, uri: str) -> bool:
            if left["n"] > 0 and m.startswith(method) and path_part in uri:
                left["n"] -= 1
                return True
            return False

        self.fail = fail

    def close(self) -> None:
        self.server.stop()
