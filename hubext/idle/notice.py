"""Notices before removal, sent once per project and idle period.

A site hooks in a command (argv list; the project as JSON on stdin and as
`HUBEXT_IDLE_*` environment variables) or a webhook URL (POST of the same
JSON); and/or an email (`mail`); without any, the notice is only logged. Which notices went out is
kept in memory and in a small JSON state file, so a restarted service does
not send them again. A notice is tied to the project's last activity: if the
user comes back and the project later goes idle again, a new notice goes out.
"""

import asyncio
import json
import logging
import os
import re
from datetime import datetime
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class NoticeError(Exception):
    """A notice hook failed; the notice will be tried again next pass."""


_URL = re.compile(r"https?://[!#-&(-;=?-z|~]+")


def repo_url(model: dict | None) -> str:
    """The repository a server was launched from, as the hub recorded it
    (its validated `user_options`), or "" for anything not a plain URL."""
    options = (model or {}).get("user_options")
    value = options.get("repo_url") if isinstance(options, dict) else None
    if isinstance(value, str) and len(value) <= 2048 and _URL.fullmatch(value):
        return value
    return ""


def notice_payload(
    user: str, server: str, seen: datetime, remove_at: datetime, repo: str = ""
):
    """The JSON a hook receives about one project (no token, no options)."""
    return {
        "user": user,
        "server": server,
        "last_activity": seen.isoformat(),
        "remove_at": remove_at.isoformat(),
        "repo_url": repo,
    }


class NoticeLedger:
    """Remembers sent notices: `user/server` -> last activity noticed."""

    def __init__(self, path: str | None, log: logging.Logger):
        self.path = Path(path) if path else None
        self.log = log
        self.sent: dict[str, str] = {}
        if self.path and self.path.exists():
            try:
                self.sent = dict(json.loads(self.path.read_text())["notified"])
            except (ValueError, KeyError, TypeError) as e:
                log.error(
                    "Ignoring unreadable notice state file %s (%s); "
                    "delete it or fix its JSON to silence this.",
                    self.path,
                    e,
                )

    @staticmethod
    def key(user: str, server: str) -> str:
        return f"{user}/{server}"

    def was_sent(self, user: str, server: str, seen: datetime) -> bool:
        return self.sent.get(self.key(user, server)) == seen.isoformat()

    def record(self, user: str, server: str, seen: datetime) -> None:
        self.sent[self.key(user, server)] = seen.isoformat()
        self.save()

    def forget(self, user: str, server: str) -> None:
        if self.sent.pop(self.key(user, server), None) is not None:
            self.save()

    def save(self) -> None:
        """Write atomically: a crash never leaves half a file."""
        if not self.path:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"notified": self.sent}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


async def run_command(argv: list[str], payload: dict, timeout: float) -> None:
    """Run the notice command with the project on stdin and in the env."""
    env = dict(os.environ)
    env.update({f"HUBEXT_IDLE_{k.upper()}": str(v) for k, v in payload.items()})
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    except OSError as e:  # missing, not executable
        raise NoticeError(
            f"notice command {argv[0]} cannot be run ({e}); fix "
            "c.IdleService.notice_command"
        ) from None
    try:
        out, _ = await asyncio.wait_for(
            proc.communicate(json.dumps(payload).encode()), timeout
        )
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise NoticeError(
            f"notice command {argv[0]} ran over {timeout}s; make it faster "
            "or raise c.IdleService.notice_timeout"
        ) from None
    if proc.returncode:
        raise NoticeError(
            f"notice command {argv[0]} exited with {proc.returncode}: "
            f"{out.decode(errors='replace')[-300:]}"
        )


async def post_webhook(url: str, payload: dict, timeout: float) -> None:
    """POST the project as JSON to the notice webhook."""
    request = HTTPRequest(
        url,
        method="POST",
        headers={"Content-Type": "application/json"},
        body=json.dumps(payload),
        request_timeout=timeout,
    )
    try:
        resp = await AsyncHTTPClient().fetch(request, raise_error=False)
    except (OSError, HTTPClientError) as e:  # no connection, timeout
        raise NoticeError(f"notice webhook {url} unreachable: {e}") from None
    if resp.code >= 300:
        raise NoticeError(f"notice webhook {url} answered {resp.code}")
