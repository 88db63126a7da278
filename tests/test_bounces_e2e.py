"""A bounce end to end: real Dovecot in, real SMTP out, the daemon in between.

Google's current bounces carry an empty ``message/delivery-status`` part and name the
failed address only in ``X-Failed-Recipients`` and in words; the daemon must still mark
the address, stop mailing it, and tell the coordinator once.
"""

from __future__ import annotations

import pytest

from .desk import COORDINATOR, PROGRAM, Desk, mail, text_of
from .servers import ReceivedMessage

pytestmark = pytest.mark.dovecot

LENA = "lena.fischer@example.net"
MARKER = "marker@example.com"


def google_bounce(returned: ReceivedMessage, n: int) -> bytes:
    """A bounce as Gmail sends it today: the delivery-status part is empty."""
    message_id = str(returned.message["Message-ID"])
    original = returned.data.replace(b"\r\n", b"\n").decode("utf-8", "replace")
    return f"""\
Return-Path: <>
X-Failed-Recipients: {LENA}
From: Mail Delivery Subsystem <mailer-daemon@googlemail.example.com>
To: {PROGRAM}
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
References: {message_id}
In-Reply-To: {message_id}
Message-ID: <bounce-{n}.GMR@mx.google.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000aa"; report-type=delivery-status

--000000000000aa
Content-Type: multipart/alternative; boundary="000000000000bb"

--000000000000bb
Content-Type: text/plain; charset="UTF-8"

** Address not found **

Your message wasn't delivered to {LENA} because the address couldn't be found,
or is unable to receive mail.

The response was:

550 5.1.1 The mailbox you tried to reach does not exist here.

--000000000000bb
Content-Type: text/html; charset="UTF-8"

<html><body><h2>Address not found</h2>
<p>Your message wasn't delivered to <b>{LENA}</b>.</p></body></html>

--000000000000bb--

--000000000000aa
Content-Type: message/delivery-status

--000000000000aa
Content-Type: message/rfc822

{original}
--000000000000aa--
""".replace("\n", "\r\n").encode("utf-8")


async def test_a_google_bounce_marks_the_address_and_the_gate_refuses_it(desk: Desk) -> None:
    await desk.start()
    # Lena is no mentor: "pause" gets a polite answer, which bounces.
    desk.send(mail(f"Lena Fischer <{LENA}>", "pause", ""))
    answer = await desk.mail_to(LENA, "pause")

    # Google reports the bounce twice (two copies reach us): one notice all the same.
    for n in (1, 2):
        desk.send(google_bounce(answer, n))
    [notice] = await desk.replies_to(COORDINATOR, 1)
    assert LENA in text_of(notice)
    assert "5.1.1" in text_of(notice)
    async with desk.store() as store:
        assert store.is_bounced(LENA)

    # Lena writes again: the daemon would answer, but the mail gate refuses her address.
    desk.send(mail(f"Lena Fischer <{LENA}>", "pause", "", message_id="<again@client.test>"))
    desk.send(mail(f"Marker <{MARKER}>", "pause", ""))
    await desk.replies_to(MARKER, 1)
    await desk.processed(5)
    assert [m.subject for m in desk.sink.messages_to(LENA)] == [answer.subject]
    assert len(desk.sink.messages_to(COORDINATOR)) == 1
    async with desk.store() as store:
        refused = [e for e in store.audit_log() if e["event"].startswith("not ") and LENA in str(e)]
        assert refused, "the mail gate never refused Lena's address"
        bounced = [e for e in store.audit_log() if e["event"] == "address bounced"]
        assert {e["original"] for e in bounced} == {str(answer.message["Message-ID"])}
