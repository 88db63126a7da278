"""mailer/transport.py against a real aiosmtpd server running in the test's event loop.

The server listens on a free loopback port (port 0) and is ready as soon as
``create_server`` returns, so there are no sleeps. Its handler records what it accepts
and answers as each test programs it (4xx/5xx replies, dropped connections).

TLS: a throwaway self-signed certificate is made with the ``openssl`` command in a
temporary folder and both STARTTLS and implicit TLS are tested (scripts/setup-tests.sh
installs openssl when it is missing; the tests fail, never skip, without it).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mentordesk.config import SmtpConfig
from mentordesk.errors import PermanentDeliveryError, TemporaryDeliveryError
from mentordesk.mailer.compose import Email, as_bytes, build_message
from mentordesk.mailer.transport import (
    MaildirTransport,
    SmtpTransport,
    open_transport,
)

SENDER = "mentors@program.example.org"
PASSWORD = "s3cret-Pa55word"


# --- the test server ----------------------------------------------------------------


@dataclass
class _Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool


@dataclass
class _Handler:
    """Records accepted messages; answers MAIL/RCPT/DATA as the test programs it."""

    received: list[_Received] = field(default_factory=list)
    mail_replies: list[str] = field(default_factory=list)  # the next MAIL FROM answers
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address → answer
    data_replies: list[str] = field(default_factory=list)  # the next DATA answers
    drop_on_data: bool = False  # close the connection instead of answering DATA
    data_attempts: int = 0
    logins: list[str] = field(default_factory=list)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_attempts += 1
        if self.drop_on_data:
            assert server.transport is not None
            server.transport.close()
            return "421 gone"  # never arrives: the connection is closed
        if self.data_replies:
            return self.data_replies.pop(0)
        assert envelope.mail_from is not None and isinstance(envelope.content, bytes)
        assert server.transport is not None
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.received.append(
            _Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, tls)
        )
        return "250 2.0.0 queued"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        ok = data.password == PASSWORD.encode()
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # aiosmtpd then answers 535


class _Server:
    """aiosmtpd on 127.0.0.1, in the running event loop; counts connections."""

    def __init__(self, handler: _Handler, **smtp_options: Any) -> None:
        self.handler = handler
        self.port = 0
        self.connections = 0
        self._smtp_options = smtp_options
        self._sessions: list[SMTP] = []
        self._server: asyncio.Server | None = None
        self._ssl: ssl.SSLContext | None = None

    def _session(self) -> SMTP:
        self.connections += 1
        session = SMTP(
            self.handler,
            hostname="mx.test",
            loop=asyncio.get_running_loop(),
            **self._smtp_options,
        )
        self._sessions.append(session)
        return session

    async def start(self, implicit_tls: ssl.SSLContext | None = None) -> None:
        """Listen (again, on the same port after a stop)."""
        self._ssl = implicit_tls or self._ssl
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._session, "127.0.0.1", self.port, ssl=self._ssl
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def drop_connections(self) -> None:
        """Close every open session, as a server does to idle clients."""
        for session in self._sessions:
            if session.transport is not None:
                session.transport.close()
        self._sessions.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.drop_connections()
            await self._server.wait_closed()
            self._server = None


def _config(port: int, tmp_path: Path, **overrides: Any) -> SmtpConfig:
    config = SmtpConfig(
        kind="smtp",
        path=tmp_path / "mail",
        host="127.0.0.1",
        port=port,
        tls="none",
        username="",
        password_env="",
        timeout=timedelta(seconds=5),
        max_attempts=3,
        retry_after=timedelta(seconds=1),
        max_retry_after=timedelta(seconds=10),
        connections=1,
    )
    return replace(config, **overrides)


def _message(to: str = "ana@example.com", subject: str = "[MD-1] Hello") -> bytes:
    msg = build_message(
        Email(
            from_addr=SENDER,
            from_name="Code Mentors",
            to=to,
            to_name="Ána",
            subject=subject,
            text="Hello Ána,\n.\n..a line starting with dots\n",
            html="<p>Hello Ána</p>",
            message_id="<m1@program.example.org>",
            date=datetime(2024, 5, 6, 14, 30, tzinfo=UTC),
        )
    )
    return as_bytes(msg)


@pytest.fixture
def handler() -> _Handler:
    return _Handler()


@pytest.fixture
async def server(handler: _Handler) -> AsyncIterator[_Server]:
    smtp_server = _Server(handler)
    await smtp_server.start()
    yield smtp_server
    await smtp_server.stop()


@pytest.fixture
async def transport(server: _Server, tmp_path: Path) -> AsyncIterator[SmtpTransport]:
    smtp = SmtpTransport(_config(server.port, tmp_path), local_hostname="client.test")
    yield smtp
    await smtp.close()


# --- delivery -----------------------------------------------------------------------


async def test_delivers_envelope_and_bytes(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    message = _message()
    await transport.send(message, SENDER, ["ana@example.com"])
    [got] = handler.received
    assert got.mail_from == SENDER
    assert got.rcpt_tos == ["ana@example.com"]
    # The server sees exactly our bytes (dot-stuffing undone, CRLF kept).
    assert got.data.rstrip(b"\r\n") == message.rstrip(b"\r\n")
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    assert parsed["Subject"] == "[MD-1] Hello"
    assert got.tls is False


async def test_one_connection_for_many_sends(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    for n in range(3):
        await transport.send(_message(subject=f"n{n}"), SENDER, ["ana@example.com"])
    assert len(handler.received) == 3
    assert server.connections == 1


async def test_concurrent_sends_share_the_connection(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    recipients = [f"p{n}@example.com" for n in range(5)]
    await asyncio.gather(*(transport.send(_message(to=r), SENDER, [r]) for r in recipients))
    assert sorted(r.rcpt_tos[0] for r in handler.received) == recipients
    assert server.connections == 1


async def test_null_reverse_path(transport: SmtpTransport, handler: _Handler) -> None:
    await transport.send(_message(), "", ["ana@example.com"])
    assert handler.received[0].mail_from == "<>"


# --- replies mapped to errors (RFC 5321 §4.2.1) -------------------------------------


async def test_451_on_data_is_temporary(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    handler.data_replies = ["451 4.3.0 Try again later"]
    with pytest.raises(TemporaryDeliveryError) as caught:
        await transport.send(_message(), SENDER, ["ana@example.com"])
    assert f"127.0.0.1:{server.port}" in str(caught.value)
    assert "451" in str(caught.value) and "Try again later" in str(caught.value)
    assert handler.received == []
    # The next attempt goes through.
    await transport.send(_message(), SENDER, ["ana@example.com"])
    assert len(handler.received) == 1


async def test_554_on_data_is_permanent_for_everyone(
    transport: SmtpTransport, handler: _Handler
) -> None:
    handler.data_replies = ["554 5.6.0 Message rejected"]
    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(_message(), SENDER, ["ana@example.com", "bo@example.com"])
    assert caught.value.recipients == ["ana@example.com", "bo@example.com"]
    assert "DATA" in str(caught.value) and "554" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.7.1 Sender rejected", PermanentDeliveryError),
        ("451 4.7.1 Greylisted", TemporaryDeliveryError),
    ],
)
async def test_mail_from_refused(
    transport: SmtpTransport, handler: _Handler, reply: str, error: type[Exception]
) -> None:
    handler.mail_replies = [reply]
    with pytest.raises(error) as caught:
        await transport.send(_message(), SENDER, ["ana@example.com"])
    assert f"MAIL FROM:<{SENDER}>" in str(caught.value)
    if isinstance(caught.value, PermanentDeliveryError):
        assert caught.value.recipients == ["ana@example.com"]


async def test_550_on_rcpt_is_permanent_and_names_the_address(
    transport: SmtpTransport, handler: _Handler
) -> None:
    handler.rcpt_replies["gone@example.com"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(_message(to="gone@example.com"), SENDER, ["gone@example.com"])
    assert caught.value.recipients == ["gone@example.com"]
    assert "gone@example.com" in str(caught.value) and "550" in str(caught.value)
    assert handler.received == []


async def test_450_on_rcpt_is_temporary(transport: SmtpTransport, handler: _Handler) -> None:
    handler.rcpt_replies["busy@example.com"] = "450 4.2.1 Mailbox busy"
    with pytest.raises(TemporaryDeliveryError, match=re.escape("busy@example.com")):
        await transport.send(_message(), SENDER, ["busy@example.com"])


async def test_some_recipients_refused(transport: SmtpTransport, handler: _Handler) -> None:
    handler.rcpt_replies["gone@example.com"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(_message(), SENDER, ["ana@example.com", "gone@example.com"])
    assert caught.value.recipients == ["gone@example.com"]
    assert "delivered to ana@example.com" in str(caught.value)
    [got] = handler.received
    assert got.rcpt_tos == ["ana@example.com"]


async def test_unusable_addresses_are_refused_before_sending(
    transport: SmtpTransport, server: _Server
) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(_message(), SENDER, ["ana@example.com>\r\nRCPT TO:<evil@x"])
    assert caught.value.recipients == ["ana@example.com>\r\nRCPT TO:<evil@x"]
    with pytest.raises(ValueError):
        await transport.send(_message(), "me@x>\r\nRSET", ["ana@example.com"])
    with pytest.raises(ValueError):
        await transport.send(_message(), SENDER, [])
    assert server.connections == 0


# --- connection trouble -------------------------------------------------------------


async def test_server_down_is_temporary(server: _Server, tmp_path: Path) -> None:
    port = server.port
    await server.stop()
    transport = SmtpTransport(_config(port, tmp_path), local_hostname="client.test")
    with pytest.raises(TemporaryDeliveryError) as caught:
        await transport.send(_message(), SENDER, ["ana@example.com"])
    assert f"127.0.0.1:{port}" in str(caught.value)
    await transport.close()


async def test_server_stopped_then_restarted(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    await transport.send(_message(), SENDER, ["ana@example.com"])
    await server.stop()
    with pytest.raises(TemporaryDeliveryError):
        await transport.send(_message(), SENDER, ["ana@example.com"])
    await server.start()
    await transport.send(_message(), SENDER, ["ana@example.com"])
    assert len(handler.received) == 2
    assert server.connections == 2


async def test_idle_connection_closed_by_server_is_reopened(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    await transport.send(_message(), SENDER, ["ana@example.com"])
    server.drop_connections()
    await transport.send(_message(), SENDER, ["ana@example.com"])
    assert len(handler.received) == 2
    assert server.connections == 2


async def test_421_on_a_reused_connection_is_retried_once(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    await transport.send(_message(), SENDER, ["ana@example.com"])
    handler.mail_replies = ["421 4.4.2 Idle timeout, closing"]
    await transport.send(_message(), SENDER, ["ana@example.com"])
    assert len(handler.received) == 2
    assert server.connections == 2
    # On a fresh connection a 421 is simply "later".
    handler.mail_replies = ["421 4.3.2 Shutting down"] * 2
    await transport.close()
    with pytest.raises(TemporaryDeliveryError, match="421"):
        await transport.send(_message(), SENDER, ["ana@example.com"])
    assert handler.mail_replies == ["421 4.3.2 Shutting down"]


async def test_drop_during_data_is_temporary_and_not_retried(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    handler.drop_on_data = True
    with pytest.raises(TemporaryDeliveryError):
        await transport.send(_message(), SENDER, ["ana@example.com"])
    # The server may have taken the message: resending now could deliver it twice.
    assert handler.data_attempts == 1
    handler.drop_on_data = False
    await transport.send(_message(), SENDER, ["ana@example.com"])
    assert len(handler.received) == 1


async def test_close_says_quit_and_the_transport_can_go_on(
    transport: SmtpTransport, server: _Server, handler: _Handler
) -> None:
    await transport.send(_message(), SENDER, ["ana@example.com"])
    await transport.close()
    await transport.close()  # twice is fine
    await transport.send(_message(), SENDER, ["ana@example.com"])
    assert server.connections == 2


# --- login --------------------------------------------------------------------------


@pytest.fixture
async def auth_server(handler: _Handler) -> AsyncIterator[_Server]:
    # AUTH over plain text is only acceptable because this is a loopback test.
    smtp_server = _Server(handler, authenticator=handler.authenticate, auth_require_tls=False)
    await smtp_server.start()
    yield smtp_server
    await smtp_server.stop()


async def test_login(auth_server: _Server, handler: _Handler, tmp_path: Path) -> None:
    config = _config(auth_server.port, tmp_path, username="mentors", password=PASSWORD)
    transport = SmtpTransport(config, local_hostname="client.test")
    assert PASSWORD not in repr(transport) and PASSWORD not in repr(config)
    await transport.send(_message(), SENDER, ["ana@example.com"])
    await transport.close()
    assert handler.logins == ["mentors"]
    assert len(handler.received) == 1


async def test_refused_login_is_temporary_and_keeps_the_secret(
    auth_server: _Server, handler: _Handler, tmp_path: Path
) -> None:
    config = _config(
        auth_server.port,
        tmp_path,
        username="mentors",
        password="wrong-" + PASSWORD,
        password_env="MENTORDESK_SMTP_PASSWORD",
    )
    transport = SmtpTransport(config, local_hostname="client.test")
    with pytest.raises(TemporaryDeliveryError) as caught:
        await transport.send(_message(), SENDER, ["ana@example.com"])
    await transport.close()
    message = str(caught.value)
    assert "535" in message and "mentors" in message and "MENTORDESK_SMTP_PASSWORD" in message
    assert PASSWORD not in message and PASSWORD not in repr(caught.value)
    assert handler.received == []


# --- TLS ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> _Tls:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail(
            "the openssl command is needed to make a test certificate: run scripts/setup-tests.sh"
        )
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    return _Tls(server_context, ssl.create_default_context(cafile=str(cert)))


async def test_starttls(tls: _Tls, handler: _Handler, tmp_path: Path) -> None:
    smtp_server = _Server(handler, tls_context=tls.server, require_starttls=True)
    await smtp_server.start()
    config = _config(smtp_server.port, tmp_path, tls="starttls")
    transport = SmtpTransport(config, tls_context=tls.client, local_hostname="client.test")
    try:
        await transport.send(_message(), SENDER, ["ana@example.com"])
        await transport.send(_message(), SENDER, ["ana@example.com"])
    finally:
        await transport.close()
        await smtp_server.stop()
    assert [r.tls for r in handler.received] == [True, True]
    assert smtp_server.connections == 1


async def test_implicit_tls(tls: _Tls, handler: _Handler, tmp_path: Path) -> None:
    smtp_server = _Server(handler)
    await smtp_server.start(implicit_tls=tls.server)
    config = _config(smtp_server.port, tmp_path, tls="ssl")
    transport = SmtpTransport(config, tls_context=tls.client, local_hostname="client.test")
    try:
        await transport.send(_message(), SENDER, ["ana@example.com"])
    finally:
        await transport.close()
        await smtp_server.stop()
    assert [r.tls for r in handler.received] == [True]


async def test_untrusted_certificate_is_temporary(
    tls: _Tls, handler: _Handler, tmp_path: Path
) -> None:
    smtp_server = _Server(handler, tls_context=tls.server)
    await smtp_server.start()
    config = _config(smtp_server.port, tmp_path, tls="starttls")
    transport = SmtpTransport(config, local_hostname="client.test")  # system trust store
    try:
        where = re.escape(f"127.0.0.1:{smtp_server.port}")
        with pytest.raises(TemporaryDeliveryError, match=where):
            await transport.send(_message(), SENDER, ["ana@example.com"])
    finally:
        await transport.close()
        await smtp_server.stop()
    assert handler.received == []


async def test_tls_none_never_upgrades(tls: _Tls, handler: _Handler, tmp_path: Path) -> None:
    smtp_server = _Server(handler, tls_context=tls.server)  # offers STARTTLS
    await smtp_server.start()
    transport = SmtpTransport(_config(smtp_server.port, tmp_path), local_hostname="client.test")
    try:
        await transport.send(_message(), SENDER, ["ana@example.com"])
    finally:
        await transport.close()
        await smtp_server.stop()
    assert [r.tls for r in handler.received] == [False]


async def test_starttls_required_but_not_offered(
    server: _Server, handler: _Handler, tmp_path: Path
) -> None:
    transport = SmtpTransport(
        _config(server.port, tmp_path, tls="starttls"), local_hostname="client.test"
    )
    with pytest.raises(TemporaryDeliveryError, match="STARTTLS"):
        await transport.send(_message(), SENDER, ["ana@example.com"])
    await transport.close()
    assert handler.received == []


# --- Maildir ------------------------------------------------------------------------


async def test_maildir_transport_writes_a_readable_message(tmp_path: Path) -> None:
    config = _config(0, tmp_path, kind="maildir")
    transport = open_transport(config)
    assert isinstance(transport, MaildirTransport)
    message = _message()
    await transport.send(message, SENDER, ["ana@example.com", "bo@example.com"])
    await transport.send(_message(subject="second"), SENDER, ["ana@example.com"])
    await transport.close()

    folder = mailbox.Maildir(tmp_path / "mail" / "sent", create=False)
    stored = [folder.get_bytes(key) for key in folder.iterkeys()]
    assert len(stored) == 2
    [first] = [data for data in stored if b"[MD-1] Hello" in data]
    assert b"\r\n" not in first  # local line ends
    assert first.startswith(
        b"Return-Path: <mentors@program.example.org>\n"
        b"Envelope-To: ana@example.com, bo@example.com\n"
    )
    parsed = email.message_from_bytes(first, policy=email.policy.default)
    assert parsed["Subject"] == "[MD-1] Hello"
    assert parsed["To"].addresses[0].display_name == "Ána"
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None and "Hello Ána" in body.get_content()


async def test_maildir_transport_refuses_bad_addresses(tmp_path: Path) -> None:
    transport = MaildirTransport(_config(0, tmp_path, kind="maildir"))
    with pytest.raises(PermanentDeliveryError):
        await transport.send(_message(), SENDER, ["x@y\nBcc: evil@x"])
    assert not (tmp_path / "mail" / "sent").exists()


def test_open_transport_picks_by_kind(tmp_path: Path) -> None:
    smtp = open_transport(_config(25, tmp_path, password="hunter2-secret", username="u"))
    assert isinstance(smtp, SmtpTransport)
    assert "hunter2-secret" not in repr(smtp)
    assert "127.0.0.1:25" in repr(smtp)
    with pytest.raises(ValueError, match="kind"):
        open_transport(_config(25, tmp_path, kind="carrier-pigeon"))
