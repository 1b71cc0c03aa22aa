"""Launching projects the way BinderHub does, against a hub under test."""

import asyncio
import json
import re
import secrets

from tornado.httpclient import AsyncHTTPClient, HTTPRequest


def binder_user_options(
    org_repo: str, sha: str, host: str = "github.com", prefix: str = "gh"
) -> dict:
    """The JSON body BinderHub POSTs for a GitHub-style launch of repo@sha."""
    slug = org_repo.replace("/", "-").lower()
    return {
        "image": f"registry.example.edu/binder/{slug}:{sha}",
        "repo_url": f"https://{host}/{org_repo}",
        "token": secrets.token_hex(16),
        "binder_ref_url": f"https://{host}/{org_repo}/tree/{sha}",
        "binder_launch_host": "https://binder.example.edu/",
        "binder_request": f"v2/{prefix}/{org_repo}/HEAD",
        "binder_persistent_request": f"v2/{prefix}/{org_repo}/{sha}",
        "binder_client_ip": "127.0.0.1",
    }


def server_name(org_repo: str) -> str:
    """BinderHub's server name: repo slug, a dash, 8 random characters."""
    return f"{org_repo.split('/')[-1].lower()}-{secrets.token_hex(4)}"


async def launch(hub, user: str, name: str, options: dict, timeout=90) -> dict:
    """POST the launch, then follow the progress stream to its last event.

    Returns the final event: `{"ready": True, ...}` or `{"failed": True,
    "message": "Spawn failed: ..."}`, exactly what BinderHub relays.
    """
    code, body = await hub.api("POST", f"/users/{user}/servers/{name}", body=options)
    if code not in (201, 202):
        return {"failed": True, "status": code, "message": _message(body)}
    return await progress(hub, user, name, timeout)


def _message(body) -> str:
    return body.get("message", "") if isinstance(body, dict) else str(body)


async def progress(hub, user: str, name: str, timeout=90) -> dict:
    """The last event of the hub's progress stream for one server."""
    events = []
    buffer = b""

    def on_chunk(chunk: bytes):
        nonlocal buffer
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            for line in block.decode().splitlines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))

    request = HTTPRequest(
        f"{hub.api_url}/users/{user}/servers/{name}/progress",
        headers={"Authorization": f"token {hub.admin_token}"},
        streaming_callback=on_chunk,
        request_timeout=timeout,
    )
    resp = await AsyncHTTPClient().fetch(request, raise_error=False)
    if not events:
        raise AssertionError(
            f"no progress events for {user}/{name}: {resp.code}\n"
            + hub.log_text()[-3000:]
        )
    return events[-1]


async def wait_for(predicate, timeout=60, what="condition"):
    """Poll an async predicate until it returns something true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{what} not reached in {timeout}s")


async def api_requests(kube_api) -> dict:
    """The API server's own request counters (its /metrics), by (verb, resource)."""
    response = await kube_api.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False
    )
    text = (await response.read()).decode()
    counts: dict = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        key = (labels.get("verb"), labels.get("resource"))
        counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def requests_between(before: dict, after: dict):
    """How many requests of (verb, resource) the API server counted between
    two `api_requests` readings, as a function."""
    return lambda verb, resource: (
        after.get((verb, resource), 0) - before.get((verb, resource), 0)
    )
