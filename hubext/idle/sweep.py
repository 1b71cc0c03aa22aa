"""One pass over the hub: list, decide, act.

Kept apart from the Application so the pass is plain async code with its
settings passed in: `Sweeper(api, ledger, metrics, settings).run_pass()`.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from . import clock
from .activity import NoReport
from .hubapi import HubAPI, HubAPIError
from .mail import EmailSettings, compose, recipient, send
from .metrics import IdleMetrics
from .notice import (
    NoticeError,
    NoticeLedger,
    notice_payload,
    post_webhook,
    repo_url,
    run_command,
)
from .policy import Action, Decision, decide, is_running
from .serverapi import ServerAsker, server_api_url
from .servertoken import TokenError, server_token


@dataclass(frozen=True)
class Settings:
    """The knobs of a pass (from the Application's traits)."""

    timeout: timedelta
    notice_before: timedelta = timedelta(days=1)
    dry_run: bool = False
    concurrency: int = 10
    page_size: int = 200
    confirm_with_server: bool = False
    public_url: str = ""
    notice_command: tuple = ()
    notice_url: str = ""
    notice_timeout: float = 30.0
    stop_wait: float = 60.0
    request_timeout: float = 60.0
    email: EmailSettings | None = None

    @property
    def token_lifetime(self) -> int:
        """Seconds an activity-check token lives if it is not deleted.

        Enough for both questions to a server, each retried once, at
        `request_timeout` each, with a minute to spare.
        """
        return int(4 * self.request_timeout) + 60


@dataclass
class PassReport:
    """What one pass saw and did (in dry-run: what it would have done)."""

    seen: int = 0
    removed: list = field(default_factory=list)
    stopped: list = field(default_factory=list)
    notified: list = field(default_factory=list)
    errors: int = 0
    duration: float = 0.0


class Sweeper:
    """Runs passes; holds no state besides the notice ledger."""

    def __init__(
        self,
        api: HubAPI,
        ledger: NoticeLedger,
        metrics: IdleMetrics,
        settings: Settings,
        log: logging.Logger,
    ):
        self.api = api
        self.ledger = ledger
        self.metrics = metrics
        self.settings = settings
        self.log = log
        self.asker = ServerAsker(
            timeout=settings.request_timeout,
            max_clients=settings.concurrency,
            on_request=metrics.api_requests.inc,
        )

    async def run_pass(self) -> PassReport:
        """One full pass; errors are logged and counted, never raised."""
        report = PassReport()
        started = time.monotonic()
        limit = asyncio.Semaphore(self.settings.concurrency)
        tasks = []
        try:
            async for page in self.api.users(self.settings.page_size):
                for user in page:
                    for server in (user.get("servers") or {}).values():
                        report.seen += 1
                        tasks.append(
                            asyncio.ensure_future(
                                self._guarded(limit, user, server, report)
                            )
                        )
        except Exception as e:
            # the servers listed so far are still handled below
            self._failed(report, "Listing users failed, pass cut short", e)
        if tasks:
            await asyncio.gather(*tasks)
        report.duration = time.monotonic() - started
        self.metrics.seen.set(report.seen)
        self.metrics.pass_duration.observe(report.duration)
        self.log.info(
            "Pass done in %.1fs: %d servers seen, %d removed, %d stopped, "
            "%d notified, %d errors%s",
            report.duration,
            report.seen,
            len(report.removed),
            len(report.stopped),
            len(report.notified),
            report.errors,
            " (dry run: nothing changed)" if self.settings.dry_run else "",
        )
        return report

    async def _guarded(self, limit, user, server, report):
        """Handle one server; whatever fails is that server's error only."""
        async with limit:
            try:
                await self.handle(user, server, report)
            except Exception as e:
                full = f"{user.get('name')}/{server.get('name', '')}"
                self._failed(report, full, e)

    def _failed(self, report: PassReport, what: str, error: Exception) -> None:
        """Log and count an error; a traceback only for what is not expected."""
        report.errors += 1
        self.metrics.errors.inc()
        expected = isinstance(error, (HubAPIError, NoticeError))
        self.log.error("%s: %s", what, error, exc_info=None if expected else error)

    async def handle(self, user: dict, server: dict, report: PassReport) -> Decision:
        """Decide on one server and act on the decision."""
        name, sname = user["name"], server.get("name", "")
        full = f"{name}/{sname}"
        decision = await self._decide(user, server)
        self.log.debug("%s: %s (%s)", full, decision.action.value, decision.reason)
        if decision.action is Action.KEEP:
            return decision
        if decision.action is Action.NOTIFY or (
            decision.action is Action.REMOVE and self.settings.notice_before
        ):
            if await self._notify(name, sname, decision, server):
                report.notified.append(full)
        if decision.action is Action.STOP:
            if await self._stop(name, sname, decision, remove=False, running=True):
                report.stopped.append(full)
        elif decision.action is Action.REMOVE:
            running = is_running(server)
            if await self._stop(name, sname, decision, remove=True, running=running):
                report.removed.append(full)
                if running:
                    report.stopped.append(full)
        return decision

    async def _decide(self, user: dict, server: dict) -> Decision:
        now = clock.utcnow()
        s = self.settings
        decision = decide(
            user, server, now, timeout=s.timeout, notice_before=s.notice_before
        )
        # Only right before stopping: the proxy counts our question as
        # traffic, so asking in the notice window would push the hub's
        # record forward and the removal with it, pass after pass.
        acting = decision.action in (Action.STOP, Action.REMOVE)
        if s.confirm_with_server and acting and is_running(server):
            reported = await self._server_activity(user["name"], server, now)
            if reported is not None:
                decision = decide(
                    user,
                    server,
                    now,
                    timeout=s.timeout,
                    notice_before=s.notice_before,
                    server_activity=reported,
                )
        return decision

    async def _server_activity(self, user: str, server: dict, now):
        """What a running server says of itself; None: the hub's record decides.

        Asked with a token minted for this server alone and deleted after,
        never with the service's own token (see `servertoken`).
        """
        base = server_api_url(server, self.settings.public_url, self.api.url)
        name, lifetime = server.get("name", ""), self.settings.token_lifetime
        try:
            async with server_token(
                self.api, user, name, server["url"], lifetime
            ) as token:
                return await self.asker.activity(base, token, now)
        except (TokenError, NoReport) as e:
            self.log.warning(
                "No activity report from %s (%s); the hub's record decides", base, e
            )
            return None

    async def _notify(
        self, user: str, server: str, decision: Decision, model: dict | None = None
    ) -> bool:
        """Send the notice unless it went out for this idle period already."""
        seen, remove_at = decision.last_activity, decision.remove_at
        if self.ledger.was_sent(user, server, seen):
            return False
        payload = notice_payload(user, server, seen, remove_at, repo_url(model))
        if self.settings.dry_run:
            self.log.info("[dry run] would notify %s/%s: %s", user, server, payload)
            return True
        self.log.info(
            "Notice: %s/%s idle since %s, removal at %s",
            user,
            server,
            seen.isoformat(),
            remove_at.isoformat(),
        )
        s = self.settings
        if s.notice_command:
            await run_command(list(s.notice_command), payload, s.notice_timeout)
        if s.notice_url:
            await post_webhook(s.notice_url, payload, s.notice_timeout)
        if s.email:
            await self._email(payload)
        self.ledger.record(user, server, seen)
        self.metrics.notified.inc()
        return True

    async def _email(self, payload: dict) -> None:
        """The email notice; no address for the user is a warning, not a retry."""
        email, user = self.settings.email, payload["user"]
        auth_state = None
        if email.auth_state_key:
            model = await self.api.get_user(user) or {}
            if "auth_state" not in model:
                self.log.warning(
                    "No auth_state for %s: the service's role needs the "
                    "admin:auth_state scope (and the hub auth state enabled)",
                    user,
                )
            auth_state = model.get("auth_state")
        to = recipient(email, user, auth_state)
        if to is None:
            self.log.warning(
                "No email address for %s (auth_state key %r, template %r): "
                "no email notice for %s",
                user,
                email.auth_state_key,
                email.to_template,
                payload["server"],
            )
            return
        await send(email, compose(email, to, payload))
        self.log.info("Email notice for %s/%s sent to %s", user, payload["server"], to)

    async def _stop(self, user, server, decision, *, remove, running) -> bool:
        """Stop, or stop and delete, a server; True once it is done."""
        what = "remove" if remove else "stop"
        if self.settings.dry_run:
            self.log.info(
                "[dry run] would %s %s/%s: %s", what, user, server, decision.reason
            )
            return True
        self.log.info("Going to %s %s/%s: %s", what, user, server, decision.reason)
        code = await self.api.delete_server(user, server, remove=remove)
        if code == 202 and not await self._wait_gone(user, server, remove):
            self.log.warning(
                "%s/%s still stopping after %ss; will look again next pass",
                user,
                server,
                self.settings.stop_wait,
            )
            return False
        if remove:
            self.ledger.forget(user, server)
            self.metrics.removed.inc()
        if running:
            self.metrics.stopped.inc()
        return True

    async def _wait_gone(self, user: str, server: str, remove: bool) -> bool:
        """Wait for a stop accepted with 202 to complete (or the server to go)."""
        deadline = time.monotonic() + self.settings.stop_wait
        delay = 0.1
        while time.monotonic() < deadline:
            model = await self.api.get_server(user, server or "")
            if model is None or (not remove and model.get("stopped")):
                return True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return False
