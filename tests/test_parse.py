"""inbox.parse: every sample reads as a person would read it, and nothing makes it raise."""

from __future__ import annotations

import base64
import email.policy
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from mentordesk.inbox import headers as inbox_headers
from mentordesk.inbox.headers import addresses, decode_header
from mentordesk.inbox.parse import (
    DeliveryReport,
    ParsedMessage,
    html_to_text,
    parse_message,
    strip_reply,
)

SAMPLES = Path(__file__).resolve().parent / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.eml"))


def sample(name: str) -> ParsedMessage:
    return parse_message((SAMPLES / name).read_bytes())


def mail(headers: str, body: str | bytes = "Hello.\n") -> bytes:
    """A message from header lines and a body; LF line ends, like most .eml files."""
    head = headers.strip("\n").encode("utf-8") + b"\n\n"
    return head + (body.encode("utf-8") if isinstance(body, str) else body)


# --- the samples, one by one -----------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    sender: str
    subject: str
    name: str = ""
    message_id: str | None = None  # None: synthetic id expected
    in_new_text: tuple[str, ...] = ()
    not_in_new_text: tuple[str, ...] = ()
    defect: str | None = None  # a substring one defect must contain


EXPECTED = {
    "01-enrollment-plain.eml": Expected(
        "maria.garcia@example.net",
        "Mentor enrollment",
        "Maria Garcia",
        "<7f3c2a10-5b1e-4c8e-9a77-0d2c1e9b4a01@example.net>",
        ("Skills: Python, JS, career advice", "juniors at work and at a local coding school."),
        ("https://maria.example.net",),
    ),
    "02-enrollment-outlook-html.eml": Expected(
        "dobrien@contoso.example.com",
        "Enroll",
        "Daniel O'Brien",
        "<BN8PR12MB3587A1D2C3E4F5A6B7C8D9E0F1A2B@BN8PR12MB3587.namprd12.prod.outlook.com>",
        ("Name: Daniel O’Brien", "Skills: C#, .NET, SQL Server & Azure", "Mon-Fri 7pm–9pm"),
        ("MsoNormal", "Style Definitions", "<", "Enrollment\n"),
    ),
    "03-request-gmail-alternative.eml": Expected(
        "priya.raman.dev@gmail.com",
        "Mentor request - career change into web dev",
        "Priya Raman",
        "<CAJ8mXk=Qz1vN2p0aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uV3w@mail.gmail.com>",
        ("Topics: JavaScript, React, job search", "I\nget stuck on state management"),
        ("<div",),
    ),
    "04-request-latin1.eml": Expected(
        "jose.mueller@example.de",
        "Mentor request: Datenanalyse für Anfänger",
        "José Müller",
        "<20250117090000.12345@example.de>",
        ("Name: José Müller", "Ich möchte größere Datensätze"),
    ),
    "05-request-windows1252.eml": Expected(
        "kwame.mensah@example.edu",
        "Need a mentor for data structures",
        "Kwame Mensah",
        "<000001db69d7$4f5a6b70$ee0f4250$@example.edu>",
        ("I’m a second-year student", "“data structures” – especially", "too fast…"),
        ("\r",),
    ),
    "06-request-iso2022jp.eml": Expected(
        "taro.yamada@example.jp",
        "メンター募集: Pythonの質問",
        "山田 太郎",
        "<20250119110327.ABCD.taro@example.jp>",
        ("Pythonを勉強しています", "Details: Djangoのテストの書き方がわかりません。"),
        ("\x1b",),
    ),
    "07-request-quoted-printable.eml": Expected(
        "lucas.pereira@example.com.br",
        "Looking for a mentor (DevOps)",
        "Lucas Pereira",
        "<a0c1b2d3-e4f5-4061-8273-94a5b6c7d8e9@example.com.br>",
        ("Hi there 👋", "Location: São Paulo", "before applying for my first job. Is that"),
        ("=\n", "=C3"),
    ),
    "08-request-base64.eml": Expected(
        "chloe.dubois@icloud.example.com",
        "iOS help",
        "Chloé Dubois",
        "<5E7A1F2B-9C3D-4E8F-A1B2-C3D4E5F60718@icloud.example.com>",
        ("Name: Chloé Dubois", "Merci,\nChloé"),
        ("Sent from my iPhone",),
    ),
    "09-enrollment-forwarded.eml": Expected(
        "sam.okafor@gmail.example.com",
        "Fwd: Mentor enrollment",
        "Sam Okafor",
        "<CAKq9y1=fWd0n3rDm8ZxYv5uT2sR1qP0oN9mL8kJ7iH6gF5eD4c@mail.gmail.com>",
        ("forwarding it here", "---------- Forwarded message ---------", "Capacity: 2 per month"),
        ("Platform engineer",),
    ),
    "10-enrollment-forwarded-attachment.eml": Expected(
        "coordinator@program.example.org",
        "FW: Become a mentor",
        "Program Coordinator",
        "<coordinator-fw-20250123@program.example.org>",
        (
            "Forwarding Lena's enrollment",
            "From: Lena Novak <lena.novak@example.cz>",
            "Name: Lena Novák",
            "Availability: Thu 17-19",
        ),
    ),
    "11-reply-quoted-signature.eml": Expected(
        "priya.raman.dev@gmail.com",
        "Re: [MD-0042] Mentor request received: career change into web dev",
        "Priya Raman",
        "<CAJ8mXk=Rb2wO3q1bC4dE5fG6hI7jK8lM9nO0pQ1rS2tU3vW4x@mail.gmail.com>",
        ("I can also do Sunday mornings\nif that helps.",),
        ("Priya Raman", "wrote:", "We received", "Skills:"),
    ),
    "12-auto-reply-exchange-oof.eml": Expected(
        "dobrien@contoso.example.com",
        "Automatic reply: Re: [MD-3] mentor request",
        "Daniel O'Brien",
        "<BN8PR12MB3587E9F8A7B6C5D4E3F2A1B0C9D8E@BN8PR12MB3587.namprd12.prod.outlook.com>",
        ("out of the office until 3 February", "For urgent matters"),
    ),
    "13-auto-reply-gmail-vacation.eml": Expected(
        "sam.okafor@gmail.example.com",
        "Re: [MD-0007] Can you take this request? Go / system design",
        "Sam Okafor",
        "<CAKq9y1=vacation0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q@mail.gmail.com>",
        ("travelling until February 10",),
    ),
    "14-bounce-postfix-dsn.eml": Expected(
        "mailer-daemon@program.example.org",
        "Undelivered Mail Returned to Sender",
        "",
        "<20250127073012.4Y3f5g6H7jz3@mx.program.example.org>",
        ("could not\nbe delivered",),
        ("Reporting-MTA", "[MD-0042]"),
    ),
    "15-bounce-exchange-ndr.eml": Expected(
        "postmaster@contoso.example.com",
        "Undeliverable: [MD-0042] Meet your mentor",
        "Microsoft Outlook",
        "<9c8b7a65-4321-4fed-cba9-876543210fed@BN8PR12MB3587.namprd12.prod.outlook.com>",
        ("Delivery has failed to these recipients or groups:",),
        ("Hi Priya, meet Maria", "<p>"),
    ),
    "16-bounce-qmail-plain.eml": Expected(
        "mailer-daemon@mail.example.biz",
        "failure notice",
        "",
        "<20250129112031.4521.qmail@mail.example.biz>",
        ("<ana.lima@example.biz>:",),
    ),
    "17-bounce-delayed-dsn.eml": Expected(
        "mailer-daemon@program.example.org",
        "Delayed Mail (still being retried)",
        "Mail Delivery System",
        "<20250130120000.4Y5h6j7K8lz4@mx.program.example.org>",
        ("THIS IS A WARNING ONLY",),
    ),
    "18-list-message.eml": Expected(
        "guido@example.org",
        "[Python-dev] Need a mentor for the new contributors sprint?",
        "Guido Example",
        "<CAP7+vJK=sprint2025@mail.example.org>",
        ("Reply on list.",),
    ),
    "19-noreply-notification.eml": Expected(
        "no-reply@calendar.example.com",
        "Help with your calendar settings",
        "Example Calendar",
        "<notify.83920193.a1@calendar.example.com>",
        ("calendar storage is almost full",),
    ),
    "20-own-address.eml": Expected(
        "mentors+claims@program.example.org",
        "Mentor request",
        "Code Mentors",
        "<spoof.7731@attacker.example>",
        ("Skills: python",),
    ),
    "21-no-message-id.eml": Expected(
        "ben.tran@example.com",
        "request a mentor",
        "",
        None,
        ("Details: How do I design tables for a small shop?",),
        defect="no usable Message-ID",
    ),
    "22-unknown-charset.eml": Expected(
        "elif.demir@example.com.tr",
        "Mentor request",
        "Elif Demir",
        "<elif.20250204.0909@example.com.tr>",
        ("Uygulamamda çökme hataları alıyorum", "Teşekkürler, Elif"),
        defect="unknown charset 'x-unknown'",
    ),
    "23-truncated-mime.eml": Expected(
        "omar.haddad@example.ae",
        "Mentor enrollment",
        "Omar Haddad",
        "<omar.enroll.0707@example.ae>",
        ("Name: Omar Haddad", "About: Analyst, happy to help with statistics. CV attached."),
        ("JVBER", "base64"),
        defect="not closed",
    ),
    "24-binary-garbage.eml": Expected("", "", "", None, defect="no readable sender"),
    "25-header-injection.eml": Expected(
        "mallory@example.net",
        "Mentor request Bcc: victim@example.com X-Evil: 1",
        "Mallory Bcc: victim@example.com",
        "<mallory.inject.0606@example.net>",
        ("Details: testing\nyour header handling.",),
        ("\u2028",),
    ),
    "26-reply-missing-details.eml": Expected(
        "ben.tran@example.com",
        "RE: [MD-0057] We need a few more details",
        "Ben Tran",
        "<SJ0PR05MB7777A1B2C3D4E5F6A7B8C9D0E1F2A@SJ0PR05MB7777.namprd05.prod.outlook.com>",
        ("Skills: SQL, database design", "spreadsheets into a real database.\n\nBen"),
        ("____", "Sent:", "could not read your request"),
    ),
    "27-command-pause.eml": Expected(
        "maria.garcia@example.net",
        "pause",
        "Maria Garcia",
        "<pause.0808@example.net>",
        ("Please pause me until March",),
    ),
    "28-command-resign.eml": Expected(
        "dobrien@contoso.example.com",
        "I want to resign as a mentor",
        "Daniel O'Brien",
        "<BN8PR12MB3587FFEEDDCCBBAA99887766554433@BN8PR12MB3587.namprd12.prod.outlook.com>",
        ("my new job leaves no time",),
    ),
    "29-reply-claim.eml": Expected(
        "maria.garcia@example.net",
        "Re: [MD-0042] Can you take this request? JavaScript / career advice",
        "Maria Garcia",
        "<claim.1200@example.net>",
        ("Claim",),
        ("wrote", "https://"),
    ),
    "30-office-hours.eml": Expected(
        "ana.lima@example.biz",
        "Office hours?",
        "Ana Lima",
        "<ana.oh.1313@example.biz>",
        ("weekly office hours",),
    ),
    "31-calendar-reply.eml": Expected(
        "dobrien@contoso.example.com",
        "Accepted: Mentoring session [MD-0042]",
        "Daniel O'Brien",
        "<BN8PR12MB3587ACCEPT00112233445566778899@BN8PR12MB3587.namprd12.prod.outlook.com>",
        not_in_new_text=("BEGIN:VCALENDAR",),
    ),
    "32-reply-html-withdraw.eml": Expected(
        "priya.raman.dev@gmail.com",
        "Re: [MD-0042] Still looking for a mentor",
        "Priya Raman",
        "<CAJ8mXk=Withdraw9z8y7x6w5v4u3t2s1r0q9p8o7n6m5l4k3j@mail.gmail.com>",
        ("Withdraw please.\nI found a mentor at work.",),
        ("wrote:", "still looking"),
    ),
}


def test_every_sample_has_expectations() -> None:
    assert {path.name for path in SAMPLE_FILES} == set(EXPECTED)
    assert len(SAMPLE_FILES) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str) -> None:
    expected = EXPECTED[name]
    msg = sample(name)
    assert msg.sender == expected.sender
    assert msg.subject == expected.subject
    assert msg.sender_name == expected.name
    if expected.message_id is None:
        assert msg.message_id.endswith("@mentordesk.invalid>")
    else:
        assert msg.message_id == expected.message_id
    for snippet in expected.in_new_text:
        assert snippet in msg.new_text
        assert snippet in msg.text
    for snippet in expected.not_in_new_text:
        assert snippet not in msg.new_text
    if expected.defect:
        assert any(expected.defect in defect for defect in msg.defects), msg.defects
    else:
        assert msg.defects == ()


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.name)
def test_sample_invariants(path: Path) -> None:
    msg = parse_message(path.read_bytes())
    single_line = [msg.subject, msg.sender_name, msg.sender, msg.message_id, *msg.headers.values()]
    for value in single_line:
        assert not any(char in value for char in "\r\n\x00\u2028"), value
    assert "\r" not in msg.text
    assert msg.message_id.startswith("<") and msg.message_id.endswith(">")
    assert msg.date_utc is None or msg.date_utc.tzinfo is UTC
    assert all(name == name.lower() for name in msg.headers)
    assert msg.new_text in msg.text or len(msg.new_text) <= len(msg.text)


def test_dates_are_utc() -> None:
    assert sample("01-enrollment-plain.eml").date_utc == datetime(
        2025, 1, 14, 9, 12, 40, tzinfo=UTC
    )
    assert sample("06-request-iso2022jp.eml").date_utc == datetime(
        2025, 1, 19, 2, 3, 27, tzinfo=UTC
    )


def test_thread_headers() -> None:
    msg = sample("11-reply-quoted-signature.eml")
    assert msg.in_reply_to == ("<md.42.ack.7c1e@program.example.org>",)
    assert msg.references == (
        "<CAJ8mXk=Qz1vN2p0aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uV3w@mail.gmail.com>",
        "<md.42.ack.7c1e@program.example.org>",
    )


def test_loop_detection_headers_are_kept() -> None:
    oof = sample("12-auto-reply-exchange-oof.eml").headers
    assert oof["auto-submitted"] == "auto-generated"
    assert oof["x-auto-response-suppress"] == "All"
    listed = sample("18-list-message.eml").headers
    assert listed["list-id"] == "Python core development <python-dev.lists.example.org>"
    assert listed["precedence"] == "list"
    assert "list-unsubscribe" in listed
    assert sample("14-bounce-postfix-dsn.eml").headers["return-path"] == "<>"


def test_unstructured_headers_read_as_the_email_package_reads_them() -> None:
    # Unstructured headers without encoded words are taken as they are, unparsed; that
    # must be what the email package's header classes would have made of them.
    pieces = ["a", " ", "  ", "\t", "=", "?", "(", ")", "\\", '"', "<", ">", ",", ";", ":"]
    pieces += ["é", "\x00", "\x01", "\x7f", "\x85", "\u2028", "王", "=?x", "?=", "@", "."]
    pieces += ["=?utf-8?q?caf=C3=A9?=", "\udcff"]
    rng = random.Random(7)
    for _ in range(3000):
        value = "".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        for name in ("Subject", "X-Mailer", "Received", "Comments"):
            expected = str(email.policy.default.header_factory(name, value))
            assert decode_header(name, value) == expected, (name, value)


def test_plain_mailboxes_read_as_the_email_package_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "Name <address>" and bare addresses in their plainest form are read without the
    # header classes; what they read must be what the classes would have read.
    rng = random.Random(5322)

    def word(chars: str, longest: int) -> str:
        return "".join(rng.choice(chars) for _ in range(rng.randrange(1, longest)))

    pieces = ["", " ", "  ", '"', ",", ".", "<", ">", "(x)", "é", ";", ":", "@"]
    values = []
    for _ in range(800):
        name = " ".join(word("abcXYZ0189", 8) for _ in range(rng.randrange(0, 4)))
        local = ".".join(word("abcXYZ09_+-", 8) for _ in range(rng.randrange(1, 4)))
        domain = ".".join(word("abcxyz09-", 8) for _ in range(rng.randrange(1, 4)))
        value = f"{name} <{local}@{domain}>" if name else f"{local}@{domain}"
        if rng.random() < 0.3:  # and near misses, which take the long way
            at = rng.randrange(len(value) + 1)
            value = value[:at] + rng.choice(pieces) + value[at:]
        values.append(value)

    def read() -> list[object]:
        return [
            (addresses(header.lower(), value), decode_header(header, value))
            for value in values
            for header in ("From", "To", "Cc", "Reply-To")
        ]

    quick = read()
    monkeypatch.setattr(inbox_headers, "_plain_mailbox", lambda value: None)
    assert quick == read()


def test_headers_are_read_only() -> None:
    msg = sample("01-enrollment-plain.eml")
    with pytest.raises(TypeError):
        msg.headers["subject"] = "changed"  # type: ignore[index]


# --- delivery reports ------------------------------------------------------------------


def test_postfix_dsn() -> None:
    assert sample("14-bounce-postfix-dsn.eml").delivery_report == DeliveryReport(
        failed_recipients=("old.mentor@example.org",),
        original_message_id="<md.42.claim.91ab@program.example.org>",
        permanent=True,
        diagnostic="550 5.1.1 <old.mentor@example.org>: Recipient address rejected: "
        "User unknown in virtual mailbox table",
    )


def test_exchange_ndr() -> None:
    report = sample("15-bounce-exchange-ndr.eml").delivery_report
    assert report is not None
    assert report.failed_recipients == ("priya.old@contoso.example.com",)
    assert report.original_message_id == "<md.42.intro.c0de@program.example.org>"
    assert report.permanent
    assert "5.1.10" in report.diagnostic


def test_plain_text_qmail_bounce() -> None:
    report = sample("16-bounce-qmail-plain.eml").delivery_report
    assert report == DeliveryReport(
        failed_recipients=("ana.lima@example.biz",),
        original_message_id="<md.51.ack.beef@program.example.org>",
        permanent=True,
        diagnostic="Remote host said: 550 5.1.1 <ana.lima@example.biz>... User unknown",
    )


def test_delayed_dsn_is_not_permanent() -> None:
    report = sample("17-bounce-delayed-dsn.eml").delivery_report
    assert report is not None
    assert report.failed_recipients == ("kwame.mensah@example.edu",)
    assert report.original_message_id == "<md.44.ack.f00d@program.example.org>"
    assert not report.permanent
    assert "Connection timed out" in report.diagnostic


def test_plain_text_exim_bounce() -> None:
    raw = mail(
        """
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: mentors@program.example.org
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1tXyZ-000abc-Zz@mx.example.net>
""",
        """This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  Gone.Away@Example.net
    host mx.example.net [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<gone.away@example.net>:
    550 5.1.1 No such user

------ This is a copy of the message, including all the headers. ------

From: Code Mentors <mentors@program.example.org>
Message-ID: <md.9.ack.1@program.example.org>
To: <other.person@example.net>

Hello
""",
    )
    report = parse_message(raw).delivery_report
    assert report is not None
    assert report.failed_recipients == ("gone.away@example.net",)
    assert report.original_message_id == "<md.9.ack.1@program.example.org>"
    assert report.permanent
    assert report.diagnostic == "550 5.1.1 No such user"


def test_dsn_with_both_failed_and_delayed_reports_the_failures() -> None:
    raw = mail(
        """
From: MAILER-DAEMON@mx.example.org
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary="b"
""",
        """--b
Content-Type: text/plain

Some were not delivered.
--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; slow@example.com
Action: delayed
Status: 4.4.1

Final-Recipient: rfc822;<Gone@Example.com>
Action: failed
Status: 5.1.1

Final-Recipient: rfc822; fine@example.com
Action: delivered
Status: 2.0.0
--b--
""",
    )
    report = parse_message(raw).delivery_report
    assert report is not None
    assert report.failed_recipients == ("gone@example.com",)
    assert report.permanent
    assert report.original_message_id is None


def test_success_only_dsn_lists_no_failures() -> None:
    raw = mail(
        """
From: MAILER-DAEMON@mx.example.org
Subject: Successful Mail Delivery Report
In-Reply-To: <md.1.ack@program.example.org>
Content-Type: multipart/report; report-type=delivery-status; boundary="b"
""",
        """--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; fine@example.com
Action: delivered
Status: 2.0.0
--b--
""",
    )
    report = parse_message(raw).delivery_report
    assert report is not None
    assert report == DeliveryReport((), "<md.1.ack@program.example.org>", False, report.diagnostic)


def test_people_mentioning_delivery_are_not_bounces() -> None:
    raw = mail(
        "From: ana@example.org\nSubject: Mail delivery failed, can you help?",
        "The following address failed:\n\n  bob@example.org\n",
    )
    assert parse_message(raw).delivery_report is None


# --- bodies ----------------------------------------------------------------------------


def test_forwarded_attachment_is_part_of_the_text() -> None:
    msg = sample("10-enrollment-forwarded-attachment.eml")
    assert msg.text.startswith("Forwarding Lena's enrollment")
    assert "Subject: Become a mentor" in msg.text
    assert msg.new_text == msg.text


def test_calendar_parts_are_decoded() -> None:
    (part,) = sample("31-calendar-reply.eml").calendar_parts
    assert part.startswith(b"BEGIN:VCALENDAR")
    assert b"METHOD:REPLY" in part
    assert b"PARTSTAT=ACCEPTED" in part


def test_calendar_parts_found_also_in_forwarded_mail() -> None:
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    raw = mail(
        """
From: a@example.org
Content-Type: multipart/mixed; boundary="b"
""",
        b"--b\nContent-Type: text/plain\n\nSee attached.\n--b\n"
        b'Content-Type: application/ics; name="invite.ics"\n'
        b"Content-Disposition: attachment\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(ics)
        + b"--b\nContent-Type: message/rfc822\n\nFrom: b@example.org\n"
        b"Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:REPLY\nEND:VCALENDAR\n--b--\n",
    )
    msg = parse_message(raw)
    # A reply some clients wrap in message/rfc822 is read too (the coordinator checks
    # that the answering attendee sent it).
    assert msg.calendar_parts == (ics, b"BEGIN:VCALENDAR\nMETHOD:REPLY\nEND:VCALENDAR")
    assert msg.text.startswith("See attached.")


def test_calendar_parts_inside_a_bounce_are_not_answers() -> None:
    raw = mail(
        """
From: MAILER-DAEMON@mx.example.org
Content-Type: multipart/report; report-type=delivery-status; boundary="b"
""",
        b"--b\nContent-Type: text/plain\n\nUndeliverable.\n--b\n"
        b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        b"Final-Recipient: rfc822; x@example.org\nAction: failed\nStatus: 5.1.1\n--b\n"
        b"Content-Type: message/rfc822\n\nFrom: mentors@program.test\n"
        b"Content-Type: text/calendar; method=REQUEST\n\n"
        b"BEGIN:VCALENDAR\nMETHOD:REQUEST\nEND:VCALENDAR\n--b--\n",
    )
    assert parse_message(raw).calendar_parts == ()


def test_plain_text_preferred_over_html_in_alternative() -> None:
    msg = sample("03-request-gmail-alternative.eml")
    assert "<div" not in msg.text
    assert msg.text.startswith("Hi,\n\nI'm switching careers")


def test_html_used_when_plain_alternative_is_empty() -> None:
    raw = mail(
        'From: a@example.org\nContent-Type: multipart/alternative; boundary="b"',
        "--b\nContent-Type: text/plain\n\n \n--b\nContent-Type: text/html\n\n"
        "<p>Skills: <b>Go</b></p>\n--b--\n",
    )
    assert parse_message(raw).text == "Skills: Go"


def test_text_attachments_are_not_body() -> None:
    raw = mail(
        'From: a@example.org\nContent-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nBody.\n--b\nContent-Type: text/plain\n"
        'Content-Disposition: attachment; filename="notes.txt"\n\nAttached notes.\n--b--\n',
    )
    assert parse_message(raw).text == "Body."


def test_binary_text_part_is_dropped_with_a_note() -> None:
    raw = mail("From: a@example.org", bytes(range(0, 32)) * 20)
    msg = parse_message(raw)
    assert msg.text == ""
    assert any("binary" in defect for defect in msg.defects)


def test_huge_body_is_cut_with_a_note() -> None:
    msg = parse_message(mail("From: a@example.org", "word " * 10_000), max_body_chars=1_000)
    assert len(msg.text) == 1_000
    assert "body text cut to 1000 characters" in msg.defects


def test_deep_nesting_is_cut_off() -> None:
    body = "".join(
        f"--b{i}\nContent-Type: multipart/mixed; boundary=b{i + 1}\n\n" for i in range(60)
    )
    msg = parse_message(
        mail("From: a@example.org\nContent-Type: multipart/mixed; boundary=b0", body)
    )
    assert any("nested deeper" in defect for defect in msg.defects)


def test_missing_boundary_reads_body_as_text() -> None:
    raw = mail("From: a@example.org\nContent-Type: multipart/mixed", "Skills: Go\n")
    assert parse_message(raw).text == "Skills: Go"


def test_format_flowed_is_unwrapped() -> None:
    raw = mail(
        "From: a@example.org\nContent-Type: text/plain; format=flowed",
        "About: I like tea \nand  coffee \n From the start.\n> quoted soft \n> line\n-- \nsig\n",
    )
    msg = parse_message(raw)
    assert msg.text == "About: I like tea and  coffee From the start.\n> quoted soft line\n--\nsig"
    assert msg.new_text == "About: I like tea and  coffee From the start."


def test_format_flowed_delsp() -> None:
    raw = mail(
        "From: a@example.org\nContent-Type: text/plain; format=flowed; delsp=yes",
        "Availability: Tue 18:00-2 \n0:00\n",
    )
    assert parse_message(raw).text == "Availability: Tue 18:00-20:00"


# --- charsets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "body", "text"),
    [
        ("iso-8859-1", "Grüße".encode(), "Grüße"),  # UTF-8 mislabelled as Latin-1
        ("us-ascii", "café".encode(), "café"),
        (None, "naïve".encode(), "naïve"),
        ("iso-8859-1", "“quoted”".encode("cp1252"), "“quoted”"),  # Windows-1252 as Latin-1
        ("koi8-r", "привет".encode("koi8-r"), "привет"),
        ("shift_jis", "日本語".encode("shift_jis"), "日本語"),
        ("iso-2022-jp", "日本語".encode("iso-2022-jp"), "日本語"),
        ("utf-16", "hello".encode("utf-16"), "hello"),
        ("gb2312", "中文".encode("gb18030"), "中文"),
        ("ks_c_5601-1987", "한국어".encode("cp949"), "한국어"),
    ],
)
def test_charsets(charset: str | None, body: bytes, text: str) -> None:
    content_type = f"text/plain; charset={charset}" if charset else "text/plain"
    msg = parse_message(mail(f"From: a@example.org\nContent-Type: {content_type}", body))
    assert msg.text == text
    assert not any("charset" in defect or "replaced" in defect for defect in msg.defects)


@pytest.mark.parametrize("charset", ["x-unknown", "unicode_escape", "base64", "rot13", "idna"])
def test_charsets_that_are_not_charsets(charset: str) -> None:
    raw = mail(f"From: a@example.org\nContent-Type: text/plain; charset={charset}", "é\\u0041")
    msg = parse_message(raw)
    assert msg.text == "é\\u0041"
    assert any("unknown charset" in defect for defect in msg.defects)


def test_invalid_bytes_are_replaced_with_a_note() -> None:
    raw = mail(
        "From: a@example.org\nContent-Type: text/plain; charset=utf-8", b"Mostly fine \x81 text"
    )
    msg = parse_message(raw)
    assert msg.text == "Mostly fine \ufffd text"
    assert any("unreadable bytes replaced" in defect for defect in msg.defects)


def test_raw_utf8_and_latin1_headers() -> None:
    raw = "From: Zoë Ölund <zoe@example.se>\nSubject: Hjälp med Python\n\nHej".encode()
    msg = parse_message(raw)
    assert (msg.sender_name, msg.subject) == ("Zoë Ölund", "Hjälp med Python")
    latin = parse_message("Subject: Grüße\nFrom: a@example.org\n\nx".encode("latin-1"))
    assert latin.subject == "Grüße"


def test_unknown_charset_in_encoded_word() -> None:
    msg = parse_message(b"From: a@example.org\nSubject: =?x-unknown?q?Hello?= world\n\nx")
    assert msg.subject.endswith("world")
    assert "\n" not in msg.subject


# --- headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc@example.org>", "<abc@example.org>"),
        ("  <abc@example.org> (comment)", "<abc@example.org>"),
        ("abc@example.org", "<abc@example.org>"),
        ("<first@example.org> <second@example.org>", "<first@example.org>"),
    ],
)
def test_message_id_normalised(value: str, expected: str) -> None:
    assert parse_message(mail(f"Message-ID: {value}\nFrom: a@example.org")).message_id == expected


@pytest.mark.parametrize("value", ["", "not an id", "<>", "< spaced @ id >"])
def test_unusable_message_id_gets_a_stable_synthetic_one(value: str) -> None:
    raw = mail(f"Message-ID: {value}\nFrom: a@example.org")
    first, second = parse_message(raw), parse_message(raw)
    assert first.message_id == second.message_id
    assert first.message_id.endswith("@mentordesk.invalid>")
    assert parse_message(raw + b"!").message_id != first.message_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 1 Jan 2024 10:00:00 +0200", datetime(2024, 1, 1, 8, 0, tzinfo=UTC)),
        ("Mon, 1 Jan 2024 10:00:00 -0000", datetime(2024, 1, 1, 10, 0, tzinfo=UTC)),
        ("1 Jan 2024 10:00 EST", datetime(2024, 1, 1, 15, 0, tzinfo=UTC)),
        ("yesterday", None),
        ("Mon, 1 Jan 99999 10:00:00 +0000", None),
    ],
)
def test_date(value: str, expected: datetime | None) -> None:
    assert parse_message(mail(f"Date: {value}\nFrom: a@example.org")).date_utc == expected


def test_addresses() -> None:
    msg = parse_message(
        mail(
            """
From: "Doe, Jane" <Jane.Doe@Example.ORG>
Reply-To: Jane at home <JANE@home.example>
To: mentors@program.example.org, "Bob" <BOB@example.org>
Cc: bob@example.org, undisclosed-recipients:;, Carol <carol@example.org>
"""
        )
    )
    assert (msg.sender, msg.sender_name) == ("jane.doe@example.org", "Doe, Jane")
    assert msg.reply_to == "jane@home.example"
    assert msg.recipients == ("mentors@program.example.org", "bob@example.org", "carol@example.org")


@pytest.mark.parametrize(
    "from_",
    ["", "Jane", "<>", "Jane <jane>", "Jane <jane doe@example.org>", "=?utf-8?q?=0D=0A?= <@>"],
)
def test_unusable_sender(from_: str) -> None:
    msg = parse_message(mail(f"From: {from_}\nSubject: hi"))
    assert msg.sender == ""
    assert "no readable sender address in From" in msg.defects


def test_injection_in_headers_is_neutralised() -> None:
    msg = sample("25-header-injection.eml")
    assert msg.sender == "mallory@example.net"
    assert msg.headers["subject"] == msg.subject


def test_in_reply_to_without_brackets() -> None:
    msg = parse_message(mail("From: a@example.org\nIn-Reply-To: md.1@program.example.org"))
    assert msg.in_reply_to == ("<md.1@program.example.org>",)


# --- HTML ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<div>One</div><div>Two</div>", "One\nTwo"),
        ("One<br>Two<br/><br>Three", "One\nTwo\n\nThree"),
        ("<b>Skills:</b>&nbsp;Go &amp; Rust", "Skills: Go & Rust"),
        ("&lt;tag&gt; &#8211; &eacute; &#x1F600;", "<tag> – é 😀"),
        ("<head><title>T</title><style>p {}</style></head><body>Hi</body>", "Hi"),
        ("<script>alert(1)</script>Hi<style>x{}</style>", "Hi"),
        ("<head><title>T</title><body>Hi", "Hi"),
        ("<ul><li>Go</li><li>Rust</li></ul>", "- Go\n- Rust"),
        ("<table><tr><td>Skills:</td><td>Go</td></tr><tr><td>TZ:</td><td>CET</td></tr></table>",
         "Skills: Go\nTZ: CET"),
        ("Hi<blockquote>old<br>older</blockquote>", "Hi\n\n> old\n> older"),
        ("<pre>  a\n    b</pre>", "  a\n    b"),
        ("  lots   of\n\n spaces  ", "lots of spaces"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("<!--[if mso]><p>hidden</p><![endif]-->Shown", "Shown"),
        ("", ""),
    ],
)  # fmt: skip
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_outlook_html_is_read_as_lines() -> None:
    text = sample("02-enrollment-outlook-html.eml").text
    assert "Time zone: Eastern Time (US & Canada)\n\nAvailability: Mon-Fri 7pm–9pm" in text


# --- quoted replies and signatures -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Yes.\n\nOn Mon, Jan 1, 2024 at 10:00 AM Bob <b@x.org> wrote:\n> old", "Yes."),
        ("Yes.\n\nOn Mon, Jan 1, 2024 at 10:00 AM Bob <\nb@x.org> wrote:\n\n> old", "Yes."),
        ("Ja.\n\nAm 01.02.2024 um 10:00 schrieb Bob <b@x.org>:\n> alt", "Ja."),
        ("Oui.\n\nLe lun. 1 janv. 2024 à 10:00, Bob <b@x.org> a écrit :\n> vieux", "Oui."),
        ("Yes.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\nold", "Yes."),
        (
            "Yes.\n\n________________________________\nFrom: Bob <b@x.org>\nSent: Monday\nold",
            "Yes.",
        ),
        ("Yes.\n\nFrom: Bob <b@x.org>\nDate: Monday\nTo: me\nSubject: x\n\nold", "Yes."),
        ("Yes.\n\nFrom: Bob [mailto:b@x.org] Sent: Monday, 1 January\nold", "Yes."),
        ("Ja.\n\nVon: Bob <b@x.org>\nGesendet: Montag\nAn: ich", "Ja."),
        ("Top\n> quoted\nmiddle\n> quoted", "Top\nmiddle"),
        ("Bob wrote:\n> quoted", ""),
        ("My manager wrote: fine.\nNext line", "My manager wrote: fine.\nNext line"),
        ("Text\n-- \nSignature\nmore", "Text"),
        ("Text\n--\nSignature", "Text"),
        ("Text\n\nSent from my iPhone", "Text"),
        ("Text\n\nGet Outlook for Android", "Text"),
        ("From: the start of my story\nwe met.", "From: the start of my story\nwe met."),
    ],
)
def test_strip_reply(text: str, kept: str) -> None:
    assert strip_reply(text) == kept


def test_forwarded_content_is_kept_even_below_a_signature() -> None:
    text = "FYI\n-- \nSam\n\n---------- Forwarded message ---------\nFrom: X\n\nSkills: Go\n> q"
    assert strip_reply(text) == (
        "FYI\n---------- Forwarded message ---------\nFrom: X\n\nSkills: Go\n> q"
    )
    apple = "See below\n\nBegin forwarded message:\n\nFrom: X\nDate: Y\n\nName: Z"
    assert strip_reply(apple) == apple


def test_outlook_forward_headers_kept_when_subject_is_a_forward() -> None:
    text = "FYI\n\n-----Original Message-----\nFrom: Lena\nSent: Monday\n\nSkills: Rust"
    assert strip_reply(text) == "FYI"
    assert strip_reply(text, forwarded=True) == text
    raw = mail("From: a@example.org\nSubject: WG: Anmeldung", text)
    assert parse_message(raw).new_text == text


def test_quoted_history_is_cut_in_html_replies() -> None:
    msg = sample("32-reply-html-withdraw.eml")
    assert msg.new_text == "Withdraw please.\nI found a mentor at work.\n\nThanks!"


# --- never raises ----------------------------------------------------------------------


def _assert_sane(msg: ParsedMessage) -> None:
    assert isinstance(msg, ParsedMessage)
    assert msg.message_id.startswith("<")
    for value in (msg.subject, msg.sender_name, msg.sender, *msg.headers.values()):
        assert "\n" not in value and "\r" not in value


def test_random_bytes_never_raise() -> None:
    rng = random.Random(3464)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 600)))
        _assert_sane(parse_message(raw))


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.name)
def test_truncations_and_corruptions_never_raise(path: Path) -> None:
    data = path.read_bytes()
    rng = random.Random(path.name)
    for cut in range(0, len(data), max(1, len(data) // 10)):
        _assert_sane(parse_message(data[:cut]))
    for _ in range(5):
        corrupt = bytearray(data)
        for _ in range(10):
            if corrupt:
                corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        _assert_sane(parse_message(bytes(corrupt)))


def test_not_bytes_at_all() -> None:
    msg = parse_message(cast(bytes, None))
    assert msg.message_id.endswith("@mentordesk.invalid>")
    assert msg.defects and "not bytes" in msg.defects[0]


def test_empty_message() -> None:
    msg = parse_message(b"")
    assert (msg.sender, msg.subject, msg.text, msg.delivery_report) == ("", "", "", None)


@pytest.mark.parametrize(
    "line",
    [
        " " * 100_000 + "1",
        "-" + " " * 100_000 + "1",
        "On " + "x " * 50_000,
        "Sent from my " + "a " * 50_000 + "!",
        "thanks" + "," * 100_000 + "x y z",
        ">" * 100_000,
    ],
)
def test_pathological_lines_take_linear_time(line: str) -> None:
    # Each would take minutes if a pattern backtracked quadratically.
    msg = parse_message(mail("From: a@example.org", f"Details: x\n{line}\nSkills: {line}"))
    assert msg.text
