"""`hubext-idle`: the idle-removal JupyterHub service as an Application.

One pass lists every user with all their servers (stopped ones too), decides
per server with `policy.decide`, and acts: notice, stop, or remove. Passes
repeat every `interval`; hub errors are retried by `HubAPI`, and anything
that still fails is logged and counted, never fatal.
"""

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from prometheus_client import start_http_server
from traitlets import Bool, Float, Integer, List, Unicode, default, validate
from traitlets.config import Application

from .hubapi import HubAPI
from .mail import EmailSettings, valid_address
from .metrics import IdleMetrics
from .notice import NoticeLedger
from .sweep import PassReport, Settings, Sweeper

DAY = 24 * 3600


class IdleService(Application):
    """Removes named servers idle for a week, running or stopped."""

    name = "hubext-idle"
    description = __doc__
    examples = """
    hubext-idle --dry-run --once
    hubext-idle --timeout=604800 --notice-before=86400 --concurrency=10
    hubext-idle --generate-config
    """

    aliases = {
        "url": "IdleService.url",
        "timeout": "IdleService.timeout",
        "notice-before": "IdleService.notice_before",
        "notice-url": "IdleService.notice_url",
        "state-file": "IdleService.state_file",
        "interval": "IdleService.interval",
        "concurrency": "IdleService.concurrency",
        "page-size": "IdleService.page_size",
        "metrics-port": "IdleService.metrics_port",
        "metrics-ip": "IdleService.metrics_ip",
        "public-url": "IdleService.public_url",
        "smtp-host": "IdleService.smtp_host",
        "smtp-port": "IdleService.smtp_port",
        "smtp-username": "IdleService.smtp_username",
        "smtp-password-file": "IdleService.smtp_password_file",
        "smtp-ca-file": "IdleService.smtp_ca_file",
        "email-from": "IdleService.email_from",
        "email-to-template": "IdleService.email_to_template",
        "email-from-auth-state-key": "IdleService.email_from_auth_state_key",
        "control-panel-url": "IdleService.control_panel_url",
        "config": "IdleService.config_file",
        "log-level": "Application.log_level",
    }
    flags = {
        "dry-run": ({"IdleService": {"dry_run": True}}, "Only report; change nothing."),
        "once": ({"IdleService": {"once": True}}, "Run one pass, then exit."),
        "confirm-with-server": (
            {"IdleService": {"confirm_with_server": True}},
            "Ask running servers for their own activity before acting.",
        ),
        "no-smtp-starttls": (
            {"IdleService": {"smtp_starttls": False}},
            "Send email without STARTTLS (a mail relay on loopback only).",
        ),
        "generate-config": (
            {"IdleService": {"generate_config": True}},
            "Write a commented config file (see --config) and exit.",
        ),
    }

    url = Unicode(
        config=True,
        help="""The hub API URL.

        Default: $JUPYTERHUB_API_URL (set by the hub for managed services),
        else http://127.0.0.1:8081/hub/api.
        Example: `c.IdleService.url = "http://hub:8081/hub/api"`
        """,
    )

    @default("url")
    def _default_url(self):
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    api_token = Unicode(
        config=True,
        help="""The service's hub API token.

        Default: $JUPYTERHUB_API_TOKEN (set by the hub for managed services).
        Prefer the environment over a config file.
        Example: `c.IdleService.api_token = os.environ["IDLE_TOKEN"]`
        """,
    )

    @default("api_token")
    def _default_token(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    timeout = Float(
        7 * DAY,
        config=True,
        help="""Seconds without activity after which a server is idle.

        An idle named server is removed (stopped first if running); an idle
        default server is only stopped. Default 604800 (7 days).
        Example: `c.IdleService.timeout = 3 * 24 * 3600`
        """,
    )

    @validate("timeout")
    def _check_timeout(self, proposal):
        if proposal.value <= 0:
            raise ValueError(
                f"IdleService.timeout must be positive seconds, got {proposal.value}"
            )
        return proposal.value

    notice_before = Float(
        DAY,
        config=True,
        help="""Seconds before removal at which the notice hook runs, once.

        0 disables notices. Default 86400 (1 day).
        Example: `c.IdleService.notice_before = 2 * 24 * 3600`
        """,
    )

    notice_command = List(
        Unicode(),
        config=True,
        help="""Command (argv list) run once per project before removal.

        It gets the project as JSON on stdin and as HUBEXT_IDLE_USER,
        HUBEXT_IDLE_SERVER, HUBEXT_IDLE_LAST_ACTIVITY, HUBEXT_IDLE_REMOVE_AT,
        HUBEXT_IDLE_REPO_URL.
        A non-zero exit is an error; the notice is tried again next pass.
        Default: empty (log only).
        Example: `c.IdleService.notice_command = ["/usr/local/bin/mail-user"]`
        """,
    )

    notice_url = Unicode(
        "",
        config=True,
        help="""Webhook URL receiving a JSON POST once per project before removal.

        Same JSON as the command's stdin. Default: empty (log only).
        Example: `c.IdleService.notice_url = "http://mailer:8000/idle"`
        """,
    )

    notice_timeout = Float(
        30,
        config=True,
        help="""Seconds a notice command or webhook may take. Default 30.

        Example: `c.IdleService.notice_timeout = 10`
        """,
    )

    smtp_host = Unicode(
        "",
        config=True,
        help="""SMTP server for the email notice; empty: no email. Default empty.

        The email goes out once per project at `notice_before`, with the
        other notices. Example: `c.IdleService.smtp_host = "smtp.example.edu"`
        """,
    )

    smtp_port = Integer(
        587,
        config=True,
        help="""Port of the SMTP server. Default 587 (submission).

        Example: `c.IdleService.smtp_port = 25`
        """,
    )

    smtp_starttls = Bool(
        True,
        config=True,
        help="""Upgrade the SMTP connection with STARTTLS, checking the certificate.

        A server that does not offer STARTTLS gets nothing. Turn off only for
        a relay on the same machine (127.0.0.1). Default True.
        Example: `c.IdleService.smtp_starttls = False`
        """,
    )

    smtp_ca_file = Unicode(
        "",
        config=True,
        help="""PEM file of the CAs that sign the SMTP server's certificate.

        Empty: the system's CAs. Default empty.
        Example: `c.IdleService.smtp_ca_file = "/etc/ssl/campus-ca.pem"`
        """,
    )

    smtp_username = Unicode(
        "",
        config=True,
        help="""SMTP login name; empty: no login. Default empty.

        Login needs STARTTLS (or a relay on 127.0.0.1).
        Example: `c.IdleService.smtp_username = "hub-notices"`
        """,
    )

    smtp_password_file = Unicode(
        "",
        config=True,
        help="""File whose first line is the SMTP password; read at each send.

        The password itself is never an option, never logged. Mount it from
        a Secret. Default empty.
        Example: `c.IdleService.smtp_password_file = "/etc/hubext/smtp/password"`
        """,
    )

    email_from = Unicode(
        "",
        config=True,
        help="""Sender address of the email notice (needed with `smtp_host`).

        Example: `c.IdleService.email_from = "hub@example.edu"`
        """,
    )

    email_to_template = Unicode(
        "",
        config=True,
        help="""The user's address from their name: `{username}` is replaced.

        Used when `email_from_auth_state_key` gives no address. Default empty.
        Example: `c.IdleService.email_to_template = "{username}@example.edu"`
        """,
    )

    email_from_auth_state_key = Unicode(
        "",
        config=True,
        help="""Key of the user's `auth_state` holding their address, e.g. "email".

        Read with `GET /hub/api/users/<name>`: the service's role needs the
        `admin:auth_state` scope, and the hub `Authenticator.enable_auth_state`.
        Default empty (only the template).
        Example: `c.IdleService.email_from_auth_state_key = "email"`
        """,
    )

    control_panel_url = Unicode(
        "",
        config=True,
        help="""The control panel's address, linked from the email notice.

        Required with `smtp_host`; the project's anchor is appended
        (`#project-<name>`). Default empty.
        Example: `c.IdleService.control_panel_url = "https://hub.example.edu/hub/home"`
        """,
    )

    state_file = Unicode(
        "hubext-idle-state.json",
        config=True,
        help="""JSON file remembering sent notices across restarts.

        Relative paths are relative to the working directory; empty keeps
        them in memory only. Default "hubext-idle-state.json".
        Example: `c.IdleService.state_file = "/srv/idle/state.json"`
        """,
    )

    interval = Float(
        600,
        config=True,
        help="""Seconds between the starts of two passes. Default 600.

        Example: `c.IdleService.interval = 300`
        """,
    )

    once = Bool(
        False,
        config=True,
        help="""Run a single pass and exit. Default False.

        Example: `c.IdleService.once = True`
        """,
    )

    dry_run = Bool(
        False,
        config=True,
        help="""Only log what would be done: no stop, no removal, no notice.

        Default False. Example: `c.IdleService.dry_run = True`
        """,
    )

    concurrency = Integer(
        10,
        config=True,
        help="""Servers handled at the same time (bounds hub API load).

        Default 10. Example: `c.IdleService.concurrency = 20`
        """,
    )

    @validate("concurrency", "page_size")
    def _check_positive(self, proposal):
        if proposal.value < 1:
            raise ValueError(
                f"IdleService.{proposal.trait.name} must be at least 1, "
                f"got {proposal.value}"
            )
        return proposal.value

    page_size = Integer(
        200,
        config=True,
        help="""Users per listing request (the hub caps it at api_page_max_limit).

        Default 200. Example: `c.IdleService.page_size = 100`
        """,
    )

    confirm_with_server = Bool(
        False,
        config=True,
        help="""Before stopping or removing a running server, ask it for its activity.

        Reads /api/status and /api/kernels of the server through the proxy
        with a token minted for that server only, deleted after; a busy
        kernel, an open connection or activity newer than the hub's record
        keeps the server. Asked only right before removal, not in the notice
        window. Needs the `tokens` scope. Default False.
        Example: `c.IdleService.confirm_with_server = True`
        """,
    )

    public_url = Unicode(
        "",
        config=True,
        help="""Base URL of the proxy, used to reach servers' own API.

        When set, it wins over the hub's public URL (which may not be
        reachable from where the service runs). Default: the server's
        `full_url` when the hub knows its public URL, else `url` without its
        /hub/api suffix.
        Example: `c.IdleService.public_url = "http://proxy-public"`
        """,
    )

    metrics_port = Integer(
        0,
        config=True,
        help="""Port serving Prometheus metrics; 0 disables. Default 0.

        Example: `c.IdleService.metrics_port = 9090`
        """,
    )

    metrics_ip = Unicode(
        "127.0.0.1",
        config=True,
        help="""Address the metrics port binds. Default 127.0.0.1.

        Example: `c.IdleService.metrics_ip = "0.0.0.0"`
        """,
    )

    api_retries = Integer(
        6,
        config=True,
        help="""Retries of a hub request failing with 5xx, timeout or no connection.

        Backoff doubles from `retry_backoff` up to `retry_backoff_max`; with
        the defaults a request outlives a hub restart of about 30 s.
        Default 6. Example: `c.IdleService.api_retries = 10`
        """,
    )

    retry_backoff = Float(
        0.5,
        config=True,
        help="""Seconds before the first retry. Default 0.5.

        Example: `c.IdleService.retry_backoff = 1`
        """,
    )

    retry_backoff_max = Float(
        30,
        config=True,
        help="""Longest wait between two retries, in seconds. Default 30.

        Example: `c.IdleService.retry_backoff_max = 60`
        """,
    )

    request_timeout = Float(
        60,
        config=True,
        help="""Seconds one hub request, or one question to a server, may take.

        A token minted to ask a server lives 4 times this plus 60 s.
        Default 60. Example: `c.IdleService.request_timeout = 20`
        """,
    )

    stop_wait = Float(
        60,
        config=True,
        help="""Seconds to wait for a slow stop to finish before moving on.

        A server still stopping is looked at again next pass. Default 60.
        Example: `c.IdleService.stop_wait = 120`
        """,
    )

    config_file = Unicode(
        "hubext_idle_config.py",
        config=True,
        help="""Config file to load (and to write with --generate-config).

        Default "hubext_idle_config.py". Example: `--config=/etc/hubext/idle.py`
        """,
    )

    generate_config = Bool(
        False,
        config=True,
        help="""Write a commented config file to `config_file` and exit.

        Default False. Example: `hubext-idle --generate-config`
        """,
    )

    def initialize(self, argv=None):
        """Parse the command line, load the config file, check what we need."""
        super().initialize(argv)
        if self.generate_config:
            return
        if Path(self.config_file).exists():
            self.load_config_file(self.config_file)
        if not self.api_token:
            self.exit_with(
                "No hub API token: run hubext-idle as a JupyterHub service "
                "(the hub sets JUPYTERHUB_API_TOKEN) or set "
                "c.IdleService.api_token. See docs/how-to/idle-removal.md."
            )
        if not self.url.startswith(("http://", "https://")):
            self.exit_with(
                f"IdleService.url must be an http(s) URL of the hub API, got "
                f"{self.url!r}; e.g. --url=http://127.0.0.1:8081/hub/api"
            )
        if self.smtp_host:
            self._check_email()
        self.metrics = IdleMetrics()
        self.sweeper = self.make_sweeper()

    def _check_email(self) -> None:
        """Refuse an email setup that cannot work, or would leak the password."""
        if not valid_address(self.email_from):
            self.exit_with(
                f"IdleService.email_from must be one address such as "
                f"hub@example.edu with smtp_host set, got {self.email_from!r}"
            )
        if not (self.email_to_template or self.email_from_auth_state_key):
            self.exit_with(
                "Email notices need IdleService.email_to_template (e.g. "
                "'{username}@example.edu') or email_from_auth_state_key"
            )
        if not self.control_panel_url.startswith(("http://", "https://")):
            self.exit_with(
                "IdleService.control_panel_url must be the http(s) address of "
                "/hub/home for the email notice, got "
                f"{self.control_panel_url!r}"
            )
        local = self.smtp_host in ("localhost", "127.0.0.1", "::1")
        if self.smtp_username and not self.smtp_starttls and not local:
            self.exit_with(
                "IdleService.smtp_username without smtp_starttls would send "
                f"the password in clear to {self.smtp_host}; turn STARTTLS on"
            )

    def exit_with(self, message: str) -> None:
        self.log.critical(message)
        self.exit(1)

    def make_sweeper(self) -> Sweeper:
        """Wire the traits into the API client, ledger and pass settings."""
        api = HubAPI(
            self.url,
            self.api_token,
            retries=self.api_retries,
            backoff=self.retry_backoff,
            backoff_max=self.retry_backoff_max,
            request_timeout=self.request_timeout,
            log=self.log,
            on_request=self.metrics.api_requests.inc,
            max_clients=max(10, 2 * self.concurrency),
        )
        settings = Settings(
            timeout=timedelta(seconds=self.timeout),
            notice_before=timedelta(seconds=self.notice_before),
            dry_run=self.dry_run,
            concurrency=self.concurrency,
            page_size=self.page_size,
            confirm_with_server=self.confirm_with_server,
            public_url=self.public_url,
            notice_command=tuple(self.notice_command),
            notice_url=self.notice_url,
            notice_timeout=self.notice_timeout,
            stop_wait=self.stop_wait,
            request_timeout=self.request_timeout,
            email=self.email_settings() if self.smtp_host else None,
        )
        ledger = NoticeLedger(None if self.dry_run else self.state_file, self.log)
        return Sweeper(api, ledger, self.metrics, settings, self.log)

    def email_settings(self) -> EmailSettings:
        return EmailSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            starttls=self.smtp_starttls,
            username=self.smtp_username,
            password_file=self.smtp_password_file,
            ca_file=self.smtp_ca_file,
            sender=self.email_from,
            to_template=self.email_to_template,
            auth_state_key=self.email_from_auth_state_key,
            control_panel_url=self.control_panel_url,
            timeout=self.notice_timeout,
        )

    async def run_pass(self) -> PassReport:
        """One pass; never raises for hub trouble (see `Sweeper.run_pass`)."""
        return await self.sweeper.run_pass()

    async def serve(self) -> None:
        """Passes every `interval` seconds (or one with `once`)."""
        if self.metrics_port:
            start_http_server(
                self.metrics_port, self.metrics_ip, registry=self.metrics.registry
            )
            self.log.info(
                "Metrics at http://%s:%d/", self.metrics_ip, self.metrics_port
            )
        while True:
            began = time.monotonic()
            try:
                await self.run_pass()
            except Exception:
                # a bug, not hub trouble: log it and keep the service alive
                self.metrics.errors.inc()
                self.log.exception("Pass failed unexpectedly")
            if self.once:
                return
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    def start(self):
        if self.generate_config:
            self.write_config_file()
            return
        asyncio.run(self.serve())

    def write_config_file(self) -> None:
        path = Path(self.config_file)
        if path.exists():
            self.exit_with(f"{path} exists; remove it or pick --config=<new path>")
        path.write_text(self.generate_config_file())
        print(f"Wrote {path}", file=sys.stderr)


main = IdleService.launch_instance
