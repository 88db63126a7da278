"""Flows 1 and 2 end to end: real Dovecot in, real SMTP out, the daemon in between."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mentordesk.daemon import Daemon

from .desk import COORDINATOR, PROGRAM, Desk, html_of, mail, text_of
from .servers import PROGRAM_USER

pytestmark = pytest.mark.dovecot

ADA = "Ada Lovelace <ada@example.com>"
ENROLL_ADA = (
    "Hi!\n\nName: Ada Lovelace\nSkills: Python, JS, career advice\nTimezone: Berlin\n"
    "Availability: Tue 18:00-20:00, Sat 10:00-12:00\nCapacity: 3\nAbout: Backend engineer.\n"
)
REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: PST\nAvailability: weekdays 18:00-20:00\n"
    "Details: I'm leaving the Army in March and learning Python; I'd love a review of my\n"
    "first project and advice on what to build next.\n"
)


MARKER_ADDRESS = "marker@example.com"


def marker() -> bytes:
    """A message with exactly one answer (not a mentor → a polite reply): once it is
    answered, everything sent before it has been handled."""
    return mail(f"Marker <{MARKER_ADDRESS}>", "pause", "")


def only_to(messages: list[Any], address: str) -> list[Any]:
    return [m for m in messages if address in m.rcpt_tos]


async def test_enrollment_is_confirmed_with_what_was_understood(desk: Desk) -> None:
    await desk.start()
    desk.send(mail(ADA, "Mentor enrollment", ENROLL_ADA, message_id="<enroll-1@client.test>"))
    [reply] = await desk.replies(1)

    assert reply.rcpt_tos == ("ada@example.com",)
    msg = reply.message
    assert msg["In-Reply-To"] == "<enroll-1@client.test>"
    assert "<enroll-1@client.test>" in msg["References"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"] == "Re: Mentor enrollment"
    text = text_of(reply)
    assert "python, javascript, career advice" in text
    assert "Europe/Berlin (you wrote “Berlin”)" in text
    assert "Tue 18:00–20:00, Sat 10:00–12:00" in text
    assert "3 sessions a month" in text
    assert "Europe/Berlin" in html_of(reply)

    await desk.processed(1)
    assert desk.dovecot.count(PROGRAM_USER, "INBOX") == 0
    async with desk.store() as store:
        mentor = store.mentor("ada@example.com")
        assert mentor is not None
        assert mentor["skills"] == ["python", "javascript", "career advice"]
        assert mentor["timezone"] == "Europe/Berlin"
        assert mentor["capacity"] == 3
        assert mentor["status"] == "active"
        assert [e["event"] for e in store.audit_log()].count("enrolled") == 1


async def test_incomplete_enrollment_asks_for_exactly_what_is_missing(desk: Desk) -> None:
    await desk.start()
    desk.send(
        mail(
            "Katherine <kj@example.com>",
            "enroll",
            "Name: Katherine Johnson\nSkills: data science\n",
        )
    )
    [question] = await desk.replies(1)
    text = text_of(question)
    assert "Timezone:" in text and "Availability:" in text
    assert "Skills: what you can help with" not in text  # skills were given
    assert "Skills: data science" in text  # the form comes back pre-filled
    async with desk.store() as store:
        assert store.mentor("kj@example.com") is None

    desk.send(
        mail(
            "Katherine <kj@example.com>",
            f"Re: {question.subject}",
            "Timezone: Chicago\nAvailability: Mon 12:00-13:00\n\n> old text\n",
            in_reply_to=question.message["Message-ID"],
        )
    )
    replies = await desk.replies(2)
    confirmation = text_of(replies[1])
    assert "Welcome aboard" in confirmation
    assert "data science" in confirmation
    assert "America/Chicago" in confirmation
    async with desk.store() as store:
        mentor = store.mentor("kj@example.com")
        assert mentor is not None and mentor["name"] == "Katherine Johnson"
        assert mentor["availability"] == [[0, 720, 780]]


async def test_reenrollment_updates_and_commands_change_status(desk: Desk) -> None:
    await desk.start()
    desk.send(mail(ADA, "Mentor enrollment", ENROLL_ADA))
    await desk.replies(1)
    desk.send(mail(ADA, "enrollment", "Availability: Wed 19:00-21:00\n"))
    replies = await desk.replies(2)
    assert "Your mentor details are updated" in text_of(replies[1])
    assert "Wed 19:00–21:00" in text_of(replies[1])
    async with desk.store() as store:
        mentor = store.mentor("ada@example.com")
        assert mentor is not None
        assert mentor["availability"] == [[2, 1140, 1260]]
        assert mentor["skills"] == ["python", "javascript", "career advice"]  # kept

    for number, (subject, status) in enumerate(
        [("pause", "paused"), ("Resume", "active"), ("resign", "resigned")], start=3
    ):
        desk.send(mail(ADA, subject, ""))
        replies = await desk.replies(number)
        assert only_to(replies, "ada@example.com")[-1] is replies[-1]
        async with desk.store() as store:
            mentor = store.mentor("ada@example.com")
            assert mentor is not None and mentor["status"] == status


async def test_request_is_acknowledged_with_a_reference(desk: Desk) -> None:
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [ack] = await desk.replies_to("jordan@example.net", 1)
    assert ack.subject == "Re: [MD-0001] Mentor request"
    text = text_of(ack)
    assert "MD-0001" in text
    assert "Help with:     python" in text
    assert "America/Los_Angeles" in text
    assert "What happens next" in text
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert request["status"] == "open"
        assert request["mentee"] == "jordan@example.net"
        assert request["skills"] == ["python"]


async def test_vague_request_is_completed_in_the_same_thread(desk: Desk) -> None:
    await desk.start()
    desk.send(mail("Sam <sam@example.net>", "need a mentor", "Hi, can someone help me?\n"))
    [question] = await desk.replies_to("sam@example.net", 1)
    assert question.subject == "Re: [MD-0001] need a mentor"
    text = text_of(question)
    # Asked as a mentee (not "what you can help with", a mentor's words), each thing once.
    assert "Skills: what you would like help with" in text
    assert "what you can help with" not in text
    assert "Details: a few sentences" in text
    for asked in ("Skills:", "Details:", "Timezone:", "Availability:"):
        assert text.count(f"  - {asked}") == 1, asked
    async with desk.store() as store:
        assert store.request(1)["status"] == "incomplete"  # type: ignore[index]

    desk.send(
        mail(
            "Sam <sam@example.net>",
            f"Re: {question.subject}",
            "I'm stuck on my first JS app: state management makes no sense to me yet.\n"
            "\nOn Mon, someone wrote:\n> Hi, can someone help me?\n",
            in_reply_to=question.message["Message-ID"],
        )
    )
    replies = await desk.replies_to("sam@example.net", 2)
    ack = replies[1]
    assert ack.subject == "Re: [MD-0001] need a mentor"
    assert "Help with:     javascript" in text_of(ack)
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "open"
        assert "state management" in request["details"]
        assert "can someone help me" not in request["details"]
        assert store.request(2) is None  # the answer did not open a second request


async def test_html_only_and_non_utf8_mail_are_understood(desk: Desk) -> None:
    await desk.start()
    desk.send(
        mail(
            "Grace Hopper <grace@example.org>",
            "enroll",
            html=(
                "<html><body><p>Name: Grace Hopper</p><p>Skills: <b>JS</b>, web</p>"
                "<p>Time zone: EST</p><div>Availability: Mon-Fri 7pm-9pm</div></body></html>"
            ),
        )
    )
    desk.send(
        mail(
            "=?iso-8859-1?q?Jos=E9_N=FA=F1ez?= <jose@example.es>",
            "Solicitud: mentor request",
            "Name: José Núñez\nSkills: python\nDetails: Quiero aprender a programar en Python "
            "para cambiar de carrera. ¿Me ayudan?\n",
            charset="iso-8859-1",
        )
    )
    [grace] = await desk.replies_to("grace@example.org", 1)
    assert "America/New_York (you wrote “EST”)" in text_of(grace)
    assert "Mon–Fri 19:00–21:00" in text_of(grace)
    [jose] = await desk.replies_to("jose@example.es", 1)
    assert "Hi José," in text_of(jose)
    assert "cambiar de carrera" in " ".join(text_of(jose).split())
    assert str(jose.message["To"]).startswith("José Núñez")


@pytest.mark.parametrize(
    ("sender", "subject", "headers"),
    [
        (
            "Busy <busy@example.com>",
            "Automatic reply: Mentor enrollment",
            {"Auto-Submitted": "auto-replied"},
        ),
        ("Out <out@example.com>", "Out of Office", {"X-Autoreply": "yes"}),
        (
            "News <news@lists.example.com>",
            "mentor request digest",
            {"List-Id": "<weekly.lists.example.com>", "Precedence": "list"},
        ),
        ("Robot <noreply@example.com>", "mentor request", {}),
        (f"Ourselves <{PROGRAM}>", "mentor request", {}),
    ],
    ids=["auto-submitted", "x-autoreply", "mailing-list", "noreply", "own-address"],
)
async def test_automatic_mail_is_never_answered(
    desk: Desk, sender: str, subject: str, headers: dict[str, str]
) -> None:
    await desk.start()
    desk.send(mail(sender, subject, REQUEST, headers=headers))
    desk.send(marker())
    await desk.processed(2)
    replies = await desk.replies(1)
    assert [m.rcpt_tos for m in replies] == [(MARKER_ADDRESS,)]
    async with desk.store() as store:
        assert store.requests() == []


DSN = """\
From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
To: {program}
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-{n}@mx.example.com>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; gone@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: Recipient address rejected

--B
Content-Type: text/rfc822-headers

From: {program}
To: gone@example.com
Message-ID: {original}
Subject: Re: pause

--B--
"""


async def test_bounce_marks_the_address_and_tells_the_coordinator_once(desk: Desk) -> None:
    await desk.start()
    # A report counts only for mail we sent to that address (issue 14, item 5).
    desk.send(mail("Gone <gone@example.com>", "pause", ""))
    [answer] = await desk.replies_to("gone@example.com", 1)
    original = answer.message["Message-ID"]
    for n in (1, 2):
        dsn = DSN.format(program=PROGRAM, n=n, original=original)
        desk.send(dsn.replace("\n", "\r\n").encode())
    await desk.processed(3)
    [notice] = await desk.replies_to(COORDINATOR, 1)
    assert "gone@example.com" in text_of(notice)
    assert "5.1.1" in text_of(notice)
    # Nothing else goes out: the second bounce for the same address is not news.
    desk.send(marker())
    replies = await desk.replies(3)
    assert len(replies) == 3 and replies[2].rcpt_tos == (MARKER_ADDRESS,)
    async with desk.store() as store:
        assert store.is_bounced("gone@example.com")

    # A person whose address bounced gets no more mail.
    desk.send(mail("Gone <gone@example.com>", "pause", ""))
    desk.send(marker())
    replies = await desk.replies(4)
    assert len(replies) == 4 and replies[3].rcpt_tos == (MARKER_ADDRESS,)


async def test_unclassifiable_mail_reaches_the_coordinator_once(desk: Desk) -> None:
    await desk.start()
    raw = mail(
        "Pat <pat@example.com>",
        "Sponsorship",
        "Our company would like to sponsor you.",
        message_id="<sponsor@example.com>",
    )
    desk.send(raw)
    desk.send(raw)  # the same message delivered twice (e.g. two aliases)
    await desk.processed(2)
    desk.send(marker())
    replies = await desk.replies(2)
    await desk.processed(3)
    notices = only_to(replies, COORDINATOR)
    assert len(notices) == 1
    assert "pat@example.com" in text_of(notices[0])
    assert "sponsor you" in text_of(notices[0])
    assert len(replies) == 2


async def test_per_sender_reply_limit_stops_loops(desk: Desk) -> None:
    desk.configure(limits={"replies_per_sender_per_hour": 2})
    await desk.start()
    for n in range(4):
        desk.send(mail("Loop <loop@example.com>", "pause", f"attempt {n}"))
    await desk.processed(4)
    desk.send(marker())
    replies = await desk.replies(3)
    assert len(only_to(replies, "loop@example.com")) == 2


async def test_open_request_limit_and_duplicates(desk: Desk) -> None:
    desk.configure(limits={"open_requests_per_mentee": 2})
    await desk.start()
    jordan = "Jordan Lee <jordan@example.net>"
    desk.send(mail(jordan, "Mentor request", REQUEST))
    await desk.replies_to("jordan@example.net", 1)
    desk.send(mail(jordan, "Mentor request", REQUEST))  # the same request again
    replies = await desk.replies_to("jordan@example.net", 2)
    assert "We already have this request as MD-0001" in text_of(replies[1])
    desk.send(
        mail(
            jordan,
            "mentor request",
            "Skills: js\nDetails: help me understand promises and async/await in JavaScript please",
        )
    )
    await desk.replies_to("jordan@example.net", 3)
    desk.send(
        mail(
            jordan,
            "mentor request",
            "Skills: career advice\nDetails: how do I prepare for my first technical interview?",
        )
    )
    replies = await desk.replies_to("jordan@example.net", 4)
    refusal = text_of(replies[3])
    assert "You already have 2 open requests" in refusal
    assert "MD-0001" in refusal and "MD-0002" in refusal
    async with desk.store() as store:
        assert len(store.requests()) == 2

    # Withdrawing one (by replying to its email) makes room again.
    desk.send(
        mail(
            jordan,
            f"Re: {replies[0].subject}",
            "withdraw\n",
            in_reply_to=replies[0].message["Message-ID"],
        )
    )
    replies = await desk.replies_to("jordan@example.net", 5)
    assert "MD-0001 is withdrawn" in text_of(replies[4])
    async with desk.store() as store:
        assert store.request(1)["status"] == "withdrawn"  # type: ignore[index]


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


async def test_crash_between_storing_and_moving_gives_no_duplicate(desk: Desk) -> None:
    daemon = Daemon(desk.config)
    await daemon.start()
    source = daemon._source()

    def crash(*args: object) -> None:
        raise Crash

    source.mark_done = crash  # type: ignore[method-assign,assignment]
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await daemon._in_mailbox_thread(source.connect)
    with pytest.raises(Crash):
        await daemon.process_inbox_once()
    # The effects are stored; the message is still in the inbox.
    assert desk.dovecot.count(PROGRAM_USER, "INBOX") == 1
    await daemon.close()

    await desk.start()  # a new process reading the same state file
    await desk.replies_to("jordan@example.net", 1)
    await desk.processed(1)
    assert desk.dovecot.count(PROGRAM_USER, "INBOX") == 0
    desk.send(marker())
    await desk.replies_to(MARKER_ADDRESS, 1)
    subjects = [m.subject for m in desk.sink.messages]
    assert subjects.count("Re: [MD-0001] Mentor request") == 1
    assert len(only_to(desk.sink.messages, COORDINATOR)) == 1  # "no mentor matches", once
    async with desk.store() as store:
        assert len(store.requests()) == 1


async def test_smtp_451_twice_then_250_delivers_exactly_once(desk: Desk) -> None:
    desk.sink.fail_next(2, code=451)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "pause", ""))
    [reply] = await desk.replies(1)
    assert reply.subject == "Re: pause"
    [item] = await desk.until(lambda store: store.outbox("sent"))
    assert item["attempts"] == 2
    # Give the sender every chance to send it again, then check it did not.
    desk.send(marker())
    replies = await desk.replies(2)
    assert len(replies) == 2


async def test_permanent_smtp_failure_marks_address_and_tells_coordinator(desk: Desk) -> None:
    desk.sink.refuse_recipient("jordan@example.net", code=550)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "pause", ""))
    [notice] = await desk.replies(1)
    assert notice.rcpt_tos == (COORDINATOR,)
    assert "jordan@example.net" in text_of(notice)
    await desk.until(lambda store: store.outbox("sent"))
    async with desk.store() as store:
        assert store.is_bounced("jordan@example.net")
        assert [i["status"] for i in store.outbox()] == ["failed", "sent"]


async def test_imap_server_restart_is_survived(desk: Desk) -> None:
    await desk.start()
    desk.send(marker())
    await desk.replies(1)
    desk.dovecot.stop()
    desk.dovecot.start()
    desk.send(mail(ADA, "Mentor enrollment", ENROLL_ADA))
    replies = await desk.replies(2, timeout_s=30)
    assert replies[1].rcpt_tos == ("ada@example.com",)


async def test_a_message_that_keeps_failing_is_quarantined_once(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mentordesk import core

    real = core.Coordinator._dispatch

    def fragile(self: core.Coordinator, msg, now):  # type: ignore[no-untyped-def]
        if "poison" in msg.subject:
            raise RuntimeError("cannot handle this one")
        return real(self, msg, now)

    monkeypatch.setattr(core.Coordinator, "_dispatch", fragile)
    desk.configure(inbox={"poll_interval": "1s"})  # the pause before a retry
    await desk.start()
    desk.send(mail("X <x@example.com>", "mentor request poison", REQUEST))
    await asyncio.to_thread(desk.dovecot.wait_for_count, PROGRAM_USER, "Quarantine", 1, 30)
    [notice] = await desk.replies(1)
    assert notice.rcpt_tos == (COORDINATOR,)
    assert "cannot handle this one" in text_of(notice)
    attachments = list(notice.message.iter_attachments())
    assert attachments and b"poison" in attachments[0].get_content()
    async with desk.store() as store:
        assert store.requests() == []  # the failed attempts left nothing behind
        [record] = store.messages("quarantined")
        assert record["attempts"] == 2


async def test_a_failing_message_fails_alone_among_the_others_of_its_commit(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Messages are committed in groups (one fsync); each still has its own transaction.
    from mentordesk import core

    real = core.Coordinator._dispatch

    def fragile(self: core.Coordinator, msg, now):  # type: ignore[no-untyped-def]
        outcome = real(self, msg, now)  # its effects are made, then it fails
        if "poison" in msg.subject:
            raise RuntimeError("cannot handle this one")
        return outcome

    monkeypatch.setattr(core.Coordinator, "_dispatch", fragile)
    desk.configure(inbox={"poll_interval": "1s"})
    grace = ENROLL_ADA.replace("Ada Lovelace", "Grace Hopper")
    desk.send(mail(ADA, "Mentor enrollment", ENROLL_ADA))
    desk.send(mail("Grace Hopper <grace@example.com>", "Mentor enrollment poison", grace))
    desk.send(marker())
    await desk.start()  # all three are fetched, handled and committed together
    await asyncio.to_thread(desk.dovecot.wait_for_count, PROGRAM_USER, "Quarantine", 1, 30)
    replies = await desk.replies(3)
    assert len(only_to(replies, "ada@example.com")) == 1
    assert len(only_to(replies, MARKER_ADDRESS)) == 1
    assert not only_to(replies, "grace@example.com")
    async with desk.store() as store:
        assert store.mentor("ada@example.com") is not None
        assert store.mentor("grace@example.com") is None  # its effects were undone
        [record] = store.messages("quarantined")
        assert record["attempts"] == 2
        assert len(store.messages("done")) == 2


async def test_unknown_timezone_gets_a_reply_saying_so(desk: Desk) -> None:
    await desk.start()
    desk.send(
        mail(
            "Marvin <marvin@example.com>",
            "Mentor enrollment",
            "Name: Marvin\nSkills: python\nTimezone: Mars/Olympus Mons\n"
            "Availability: Tue 18:00-20:00\n",
        )
    )
    [reply] = await desk.replies_to("marvin@example.com", 1)
    text = " ".join(text_of(reply).split())
    assert "Mars/Olympus Mons" in text
    assert "Timezone:" in text
    async with desk.store() as store:
        assert store.mentor("marvin@example.com") is None


async def test_huge_mail_with_a_binary_attachment_is_handled(desk: Desk) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Jordan Lee <jordan@example.net>"
    msg["To"] = PROGRAM
    msg["Subject"] = "Mentor request"
    msg["Message-ID"] = "<huge@client.test>"
    msg.set_content(REQUEST)
    msg.add_attachment(
        bytes(range(256)) * 24_000,
        maintype="application",
        subtype="octet-stream",
        filename="resume.bin",
    )  # about 6 MB
    await desk.start()
    desk.send(msg.as_bytes())
    [ack] = await desk.replies_to("jordan@example.net", 1, timeout_s=30)
    assert ack.subject == "Re: [MD-0001] Mentor request"
    assert "resume.bin" not in text_of(ack)


async def test_required_authentication_keeps_forged_senders_out(desk: Desk) -> None:
    desk.configure(inbox={"require_authentication": True, "authserv_id": "mx.program.test"})
    await desk.start()
    verdict = (
        "mx.program.test; spf=pass smtp.mailfrom=example.net; dmarc={} header.from=example.net"
    )
    desk.send(
        mail(
            "Jordan Lee <jordan@example.net>",
            "Mentor request",
            REQUEST,
            headers={"Authentication-Results": verdict.format("fail")},
        )
    )
    [notice] = await desk.replies_to(COORDINATOR, 1)
    assert "sender not authenticated" in notice.subject
    desk.send(
        mail(
            "Jordan Lee <jordan@example.net>",
            "Mentor request",
            REQUEST,
            headers={"Authentication-Results": verdict.format("pass")},
        )
    )
    [ack] = await desk.replies_to("jordan@example.net", 1)
    assert ack.subject == "Re: [MD-0001] Mentor request"
    async with desk.store() as store:
        assert len(store.requests()) == 1
