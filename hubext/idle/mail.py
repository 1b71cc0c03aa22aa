"""The built-in email notice: one message per project before its removal.

Sent over SMTP with the standard library's `smtplib`, run in a thread so a
slow mail server never holds the service's event loop. STARTTLS (with the
server's certificate checked against the system's CAs or `ca_file`) and
login are supported; the password is read from a file at each send and
never logged.

The recipient comes from the user's `auth_state` (a key such as `email`,
read with `GET /hub/api/users/<name>`, which needs the `admin:auth_state`
scope), else from a template such as ``{username}@example.edu``. Either is
checked to be one plain address; anything else sends nothing.

The message names the project, its repository and the removal time, and
links to the control panel's row of the project. It carries no token.
"""

import asyncio
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import quote

from .clock import parse_iso
from .notice import NoticeError

DATE_FORMAT = "%Y-%m-%d %H:%M UTC"

# one addr-spec, nothing a header or an SMTP command could be split on
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}")


@dataclass(frozen=True)
class EmailSettings:
    """Where and how to send (from the IdleService traits)."""

    host: str
    port: int = 587
    starttls: bool = True
    username: str = ""
    password_file: str = ""
    ca_file: str = ""
    sender: str = ""
    to_template: str = ""
    auth_state_key: str = ""
    control_panel_url: str = ""
    timeout: float = 30.0


def valid_address(value) -> bool:
    """One plain address (``local@domain``), nothing more."""
    return isinstance(value, str) and bool(_ADDRESS.fullmatch(value))


def recipient(settings: EmailSettings, username: str, auth_state) -> str | None:
    """The user's address: `auth_state[key]`, else the template, else None."""
    if settings.auth_state_key and isinstance(auth_state, dict):
        value = auth_state.get(settings.auth_state_key)
        if valid_address(value):
            return value
    if settings.to_template:
        value = settings.to_template.format(username=username)
        if valid_address(value):
            return value
    return None


def panel_link(settings: EmailSettings, server: str) -> str:
    """The control panel, at the project's row."""
    return f"{settings.control_panel_url}#project-{quote(server, safe='')}"


def _when(iso: str) -> str:
    moment = parse_iso(iso)
    return moment.strftime(DATE_FORMAT) if moment else "unknown"


def _printable(text: str) -> str:
    """`text` with every line break and control character as U+FFFD: names
    come from users (JupyterHub 5 takes any server name), and a header with
    a line break cannot be sent at all, so the project would never go."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def compose(settings: EmailSettings, to: str, payload: dict) -> EmailMessage:
    """The notice about one project (`notice.notice_payload`)."""
    server, remove_at = _printable(payload["server"]), _when(payload["remove_at"])
    repo = payload.get("repo_url") or "(not recorded)"
    link = panel_link(settings, payload["server"])  # quoted: every character
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = f"Your project {server} will be removed after {remove_at}"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"Hello {_printable(payload['user'])},\n"
        "\n"
        f"your project {server} has had no activity since "
        f"{_when(payload['last_activity'])}.\n"
        "\n"
        f"  Project:    {server}\n"
        f"  Repository: {repo}\n"
        f"  Removal:    after {remove_at}\n"
        "\n"
        "It will be removed automatically after that time, whether it is\n"
        "running or stopped. To keep it, open your control panel and press\n"
        "Keep next to the project:\n"
        "\n"
        f"  {link}\n"
        "\n"
        "If you do nothing, you can launch the repository again later from\n"
        "the same page. Your shared storage and your SSH key are kept either\n"
        "way.\n"
        "\n"
        "This message is sent once per project; there is no need to answer.\n"
    )
    return message


def _send_blocking(settings: EmailSettings, message: EmailMessage) -> None:
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        smtp.ehlo()
        if settings.starttls:
            context = ssl.create_default_context(cafile=settings.ca_file or None)
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username, read_password(settings.password_file))
        smtp.send_message(message)


def read_password(path: str) -> str:
    """The SMTP password: the file's first line."""
    if not path:
        return ""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise NoticeError(
            f"cannot read IdleService.smtp_password_file {path} ({e.strerror})"
        ) from None
    return text.splitlines()[0] if text.strip() else ""


async def send(settings: EmailSettings, message: EmailMessage) -> None:
    """Send `message`; a failure is a `NoticeError` (tried again next pass)."""
    where = f"{settings.host}:{settings.port}"
    try:
        await asyncio.wait_for(
            asyncio.to_thread(_send_blocking, settings, message),
            settings.timeout * 4,
        )
    except NoticeError:
        raise
    except smtplib.SMTPAuthenticationError as e:
        raise NoticeError(
            f"email notice to {message['To']}: SMTP server {where} refused the "
            f"login of {settings.username!r} ({e.smtp_code}); check "
            "smtp_username and smtp_password_file"
        ) from None
    except (smtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
        # messages of smtplib and ssl never hold the password
        raise NoticeError(
            f"email notice to {message['To']} via {where} failed: "
            f"{type(e).__name__}: {e}"
        ) from None
