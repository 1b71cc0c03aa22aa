"""The email notice of hubext-idle, through a real SMTP server on loopback.

aiosmtpd listens on 127.0.0.1 with STARTTLS (a self-signed certificate made
here, which the service checks as its `smtp_ca_file`) and AUTH LOGIN/PLAIN;
the service runs against a real hub (`hub_factory`) whose users hold
`auth_state`, its clock moved into the notice window as in test_idle.
"""

import datetime as dt
import ipaddress
import logging
import secrets
import ssl
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hubext.idle.mail import EmailSettings, compose, recipient, valid_address
from hubext.idle.notice import notice_payload, repo_url
from tests.fixtures.hubproc import free_port
from tests.test_idle import IDLE_SCOPES, add_server, idle_config, service, week_later

__all__ = ["week_later"]  # the fixture, used by name

REPO_URL = "https://github.com/physics/wave-lab"
PANEL = "http://127.0.0.1:8000/hub/home"
LOGIN, PASSWORD = "hub-notices", "s3cret-" + secrets.token_hex(8)


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Mailbox:
    """What the SMTP server received, with how each message came in."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "message": message_from_bytes(envelope.content, policy=policy.default),
                "rcpt": list(envelope.rcpt_tos),
                "tls": session.ssl is not None,
                "login": session.authenticated and session.auth_data,
            }
        )
        return "250 OK"


def check_login(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == LOGIN.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login)


@pytest.fixture
def smtp(tmp_path):
    """A loopback SMTP server demanding STARTTLS, then a login."""
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=check_login,
    )
    controller.start()
    mailbox.port, mailbox.ca_file = controller.port, str(cert)
    try:
        yield mailbox
    finally:
        controller.stop()


def email_traits(smtp, tmp_path, password=PASSWORD):
    secret = tmp_path / "smtp-password"
    secret.write_text(password + "\n")
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_ca_file": smtp.ca_file,
        "smtp_username": LOGIN,
        "smtp_password_file": str(secret),
        "email_from": "hub@uni.example",
        "email_to_template": "{username}@uni.example",
        "email_from_auth_state_key": "email",
        "control_panel_url": PANEL,
    }


def recording(app):
    lines = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())
    app.log.addHandler(handler)
    app.log.setLevel(logging.DEBUG)
    return lines


AUTH_STATE_CONFIG = """
c.Authenticator.enable_auth_state = True
"""


async def auth_state_hub(hub_factory):
    scopes = [*IDLE_SCOPES, "admin:auth_state"]
    return await hub_factory(
        idle_config(scopes) + AUTH_STATE_CONFIG,
        env={"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)},
    )


@pytest.mark.hub
@pytest.mark.hub_version
async def test_email_once_per_project_over_starttls_with_login(
    hub_factory, tmp_path, smtp, week_later
):
    hub = await auth_state_hub(hub_factory)
    await add_server(hub, "carol", "thesis", repo_url=REPO_URL, token="t0ps3cr3t")
    code, body = await hub.api(
        "PATCH", "/users/carol", body={"auth_state": {"email": "carol.c@mail.example"}}
    )
    assert code == 200, body
    await add_server(hub, "dave", "lab")  # no auth_state: the template
    week_later(-12)  # inside the last day before removal
    traits = email_traits(smtp, tmp_path)

    for _ in range(2):  # the second service is a restart: nothing is resent
        app = service(hub.api_url, tmp_path, **traits)
        log = recording(app)
        report = await app.run_pass()
        assert report.errors == 0, log
        assert PASSWORD not in "\n".join(log)
    assert sorted(report.notified) == []
    assert len(smtp.messages) == 2, smtp.messages

    by_to = {m["rcpt"][0]: m for m in smtp.messages}
    carol = by_to["carol.c@mail.example"]
    assert carol["tls"] and carol["login"] == LOGIN.encode()
    msg = carol["message"]
    assert msg["To"] == "carol.c@mail.example"
    assert msg["From"] == "hub@uni.example"
    servers = (await hub.api("GET", "/users/carol"))[1]["servers"]
    remove_at = _remove_at(servers["thesis"]["last_activity"])
    assert msg["Subject"] == f"Your project thesis will be removed after {remove_at}"
    text = msg.get_content()
    assert "Project:    thesis" in text
    assert f"Repository: {REPO_URL}" in text
    assert f"Removal:    after {remove_at}" in text
    assert f"{PANEL}#project-thesis" in text
    assert "t0ps3cr3t" not in msg.as_string(), "no launch token in an email"

    dave = by_to["dave@uni.example"]["message"]
    assert dave["To"] == "dave@uni.example"
    assert "Repository: (not recorded)" in dave.get_content()
    assert f"{PANEL}#project-lab" in dave.get_content()


def _remove_at(last_activity: str) -> str:
    from hubext.idle.clock import parse_iso

    return (parse_iso(last_activity) + dt.timedelta(days=7)).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


@pytest.mark.hub
@pytest.mark.hub_version
async def test_failed_send_is_retried_next_pass_and_never_logs_the_password(
    hub_factory, tmp_path, smtp, week_later
):
    hub = await hub_factory(idle_config())  # no admin:auth_state: the template
    await add_server(hub, "erin", "p1", repo_url=REPO_URL)
    week_later(-12)
    wrong = "wrong-" + secrets.token_hex(8)
    app = service(hub.api_url, tmp_path, **email_traits(smtp, tmp_path, wrong))
    log = recording(app)
    report = await app.run_pass()
    assert report.errors == 1 and report.notified == []
    assert any("refused the login of 'hub-notices'" in line for line in log), log
    assert wrong not in "\n".join(log) and smtp.messages == []
    assert not (tmp_path / "state.json").exists(), "a failed email is not recorded"

    # the next pass, with the right password, sends it; the project stays
    app = service(hub.api_url, tmp_path, **email_traits(smtp, tmp_path))
    report = await app.run_pass()
    assert report.errors == 0 and report.notified == ["erin/p1"]
    assert [m["rcpt"] for m in smtp.messages] == [["erin@uni.example"]]
    assert "p1" in (await hub.api("GET", "/users/erin"))[1]["servers"]


@pytest.mark.hub
@pytest.mark.hub_version
async def test_an_unchecked_certificate_sends_nothing(
    hub_factory, tmp_path, smtp, week_later
):
    hub = await hub_factory(idle_config())
    await add_server(hub, "fay", "p1")
    week_later(-12)
    traits = email_traits(smtp, tmp_path)
    traits["smtp_ca_file"] = ""  # the system's CAs do not know the test's cert
    app = service(hub.api_url, tmp_path, **traits)
    log = recording(app)
    report = await app.run_pass()
    assert report.errors == 1 and smtp.messages == []
    assert any("CERTIFICATE_VERIFY_FAILED" in line for line in log), log


@pytest.mark.parametrize(
    "value, ok",
    [
        ("carol@uni.example", True),
        ("c.o+x@a-b.example", True),
        ("carol@uni.example\r\nBcc: all@uni.example", False),
        ("Carol <carol@uni.example>", False),
        ("a@b.example, c@d.example", False),
        ("no-at-sign", False),
        (["carol@uni.example"], False),
        (None, False),
    ],
)
def test_valid_address(value, ok):
    assert valid_address(value) is ok


def test_recipient_prefers_auth_state_and_refuses_odd_values():
    s = EmailSettings(
        host="x", to_template="{username}@uni.example", auth_state_key="email"
    )
    assert recipient(s, "carol", {"email": "c@mail.example"}) == "c@mail.example"
    assert recipient(s, "carol", {"email": "x@y\nBcc: z@w"}) == "carol@uni.example"
    assert recipient(s, "carol", None) == "carol@uni.example"
    assert recipient(s, "a b", None) is None  # a name no address can hold
    assert recipient(EmailSettings(host="x", auth_state_key="email"), "c", {}) is None


def test_repo_url_is_only_a_plain_url():
    assert repo_url({"user_options": {"repo_url": REPO_URL}}) == REPO_URL
    for odd in ("javascript:alert(1)", REPO_URL + "\nX", 7, None):
        assert repo_url({"user_options": {"repo_url": odd}}) == ""
    assert repo_url({"user_options": None}) == "" and repo_url(None) == ""


def test_message_links_the_projects_row():
    s = EmailSettings(host="x", sender="hub@uni.example", control_panel_url=PANEL)
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.timezone.utc)
    payload = notice_payload("ann", "a b/c", now, now + dt.timedelta(days=7), REPO_URL)
    text = compose(s, "ann@uni.example", payload).get_content()
    assert f"{PANEL}#project-a%20b%2Fc" in text
    assert "after 2026-03-17 12:00 UTC" in text


@pytest.mark.parametrize("name", ["a\nb", "a\u2028b", "a\rBcc: x@evil.example"])
def test_a_server_name_with_a_line_break_still_makes_a_notice(name):
    """JupyterHub 5 takes any server name; a header cannot hold a line break,
    and a notice that cannot be composed would keep the project forever."""
    s = EmailSettings(host="x", sender="hub@uni.example", control_panel_url=PANEL)
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.timezone.utc)
    payload = notice_payload("ann", name, now, now + dt.timedelta(days=7), REPO_URL)
    message = compose(s, "ann@uni.example", payload)
    sent = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert sent["Subject"].startswith("Your project a\ufffd")
    assert sent["Bcc"] is None
    assert "\n" not in sent["Subject"] and "\u2028" not in sent["Subject"]
