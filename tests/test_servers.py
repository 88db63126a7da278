"""The test servers themselves: if these fail, every mail test is suspect."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import time
from email.message import EmailMessage

import aiosmtplib
import pytest
from imapclient import IMAPClient

from tests.servers import (
    OTHER_PASSWORD,
    OTHER_USER,
    PROGRAM_PASSWORD,
    PROGRAM_USER,
    Dovecot,
    SmtpSink,
)

RAW = b"From: mentee@example.test\r\nTo: mentors@program.test\r\nSubject: %d\r\n\r\nHello\r\n"


def raw(n: int) -> bytes:
    return RAW % n


def login(dovecot: Dovecot, user: str = PROGRAM_USER) -> IMAPClient:
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=5)
    client.login(user, dovecot.password(user))
    return client


# --- Dovecot ---------------------------------------------------------------------------


def test_append_and_fetch_in_order(dovecot: Dovecot) -> None:
    uids = [dovecot.append(PROGRAM_USER, "INBOX", raw(n)) for n in range(3)]

    assert uids == sorted(uids)
    assert dovecot.fetch_all(PROGRAM_USER, "INBOX") == [raw(0), raw(1), raw(2)]
    assert dovecot.count(PROGRAM_USER, "INBOX") == 3
    # Reading through the helpers does not mark anything \Seen.
    assert not any(b"\\Seen" in flags for flags in dovecot.fetch_flags(PROGRAM_USER, "INBOX"))


def test_append_creates_folder_and_users_are_separate(dovecot: Dovecot) -> None:
    dovecot.append(PROGRAM_USER, "Archive", raw(1))

    assert dovecot.folders(PROGRAM_USER) == ["Archive", "INBOX"]
    assert dovecot.count(PROGRAM_USER, "Archive") == 1
    assert dovecot.count(OTHER_USER, "Archive") == 0
    assert dovecot.fetch_all(OTHER_USER, "Archive") == []


def test_wrong_password_is_refused(dovecot: Dovecot) -> None:
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=5)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(PROGRAM_USER, "wrong")
    finally:
        client.shutdown()


def test_user_added_while_running_can_log_in_at_once(dovecot: Dovecot) -> None:
    dovecot.append(PROGRAM_USER, "INBOX", raw(1))  # Dovecot has just read a passwd-file

    dovecot.add_user("late@program.test", "late-password")

    dovecot.append("late@program.test", "INBOX", raw(2))
    assert dovecot.fetch_all("late@program.test", "INBOX") == [raw(2)]


def test_idle_reports_new_mail(dovecot: Dovecot) -> None:
    client = login(dovecot)
    try:
        client.select_folder("INBOX")
        client.idle()
        dovecot.append(PROGRAM_USER, "INBOX", raw(1))

        deadline = time.monotonic() + 10
        responses: list[tuple[object, ...]] = []
        while not any(r[1:2] == (b"EXISTS",) for r in responses):
            assert time.monotonic() < deadline, f"IDLE reported only {responses}"
            responses += client.idle_check(timeout=0.5)
        client.idle_done()
    finally:
        client.logout()


def test_restart_on_same_port_keeps_mail(dovecot: Dovecot) -> None:
    dovecot.append(PROGRAM_USER, "INBOX", raw(1))
    client = login(dovecot)
    client.select_folder("INBOX")
    port = dovecot.port

    dovecot.stop()

    with pytest.raises(OSError):
        socket.create_connection((dovecot.host, port), timeout=2).close()
    # The old connection is gone with the server.
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()
        client.noop()
    client.shutdown()

    dovecot.start()

    assert dovecot.port == port
    assert dovecot.fetch_all(PROGRAM_USER, "INBOX") == [raw(1)]


def test_port_taken_before_first_start_is_replaced() -> None:
    server = Dovecot()
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind((server.host, taken))
        squatter.listen()
        try:
            server.add_user(PROGRAM_USER, PROGRAM_PASSWORD)
            server.start()
            assert server.port != taken
            assert server.count(PROGRAM_USER, "INBOX") == 0
        finally:
            server.close()


def test_server_without_binary_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match=r"scripts/setup-tests\.sh"):
        Dovecot(binary="/nonexistent/dovecot")


# --- SMTP sink -------------------------------------------------------------------------


def message(to: str = "mentee@example.test", subject: str = "Welcome") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "mentors@program.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Hello")
    return msg


def test_sink_records_messages(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        smtp.send_message(message(), to_addrs=["a@example.test", "b@example.test"])

    [got] = smtp_sink.wait_for(1)
    assert got.mail_from == "mentors@program.test"
    assert got.rcpt_tos == ("a@example.test", "b@example.test")
    assert got.message["Subject"] == "Welcome"
    assert b"Hello" in got.data
    assert smtp_sink.messages_to("B@example.test") == [got]
    assert smtp_sink.messages_to("c@example.test") == []


def test_sink_fail_next_then_accepts(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(2, code=451, text="4.3.0 Busy")

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as failed:
                smtp.send_message(message())
            assert failed.value.smtp_code == 451
            smtp.rset()
        smtp.send_message(message(subject="third time"))

    assert [m.subject for m in smtp_sink.wait_for(1)] == ["third time"]


def test_sink_refuses_recipient(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse_recipient("gone@example.test")

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        refused = smtp.send_message(message(), to_addrs=["gone@example.test", "ok@example.test"])
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.send_message(message(), to_addrs=["Gone@example.test"])

    assert refused == {"gone@example.test": (550, b"5.1.1 No such user here")}
    [got] = smtp_sink.wait_for(1)
    assert got.rcpt_tos == ("ok@example.test",)


def test_sink_wait_for_says_what_arrived(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        smtp.send_message(message(subject="only one"))

    with pytest.raises(AssertionError, match=r"(?s)expected 2 messages.*got 1.*only one"):
        smtp_sink.wait_for(2, timeout_s=0.3)


def test_sink_restart_keeps_port_and_messages(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        smtp.send_message(message(subject="before"))
    port = smtp_sink.port

    smtp_sink.stop()
    with pytest.raises(OSError):
        smtplib.SMTP(smtp_sink.host, port, timeout=2)
    smtp_sink.start()

    assert smtp_sink.port == port
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        smtp.send_message(message(subject="after"))
    assert [m.subject for m in smtp_sink.wait_for(2)] == ["before", "after"]


def test_sink_checks_credentials() -> None:
    with SmtpSink(credentials={"mentors@program.test": "s3cret"}) as sink:
        with (
            smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp,
            pytest.raises(smtplib.SMTPAuthenticationError),
        ):
            smtp.login("mentors@program.test", "wrong")
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.login("mentors@program.test", "s3cret")
            smtp.send_message(message())

        [got] = sink.wait_for(1)
        assert got.login == "mentors@program.test"


async def test_sink_from_async_code(smtp_sink: SmtpSink) -> None:
    await aiosmtplib.send(message(), hostname=smtp_sink.host, port=smtp_sink.port, timeout=5)

    [got] = await smtp_sink.wait_for_async(1)
    assert got.subject == "Welcome"


def test_fixture_users_exist(dovecot: Dovecot) -> None:
    assert dovecot.password(PROGRAM_USER) == PROGRAM_PASSWORD
    assert dovecot.password(OTHER_USER) == OTHER_PASSWORD
    assert dovecot.folders(OTHER_USER) == ["INBOX"]
