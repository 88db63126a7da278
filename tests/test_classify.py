"""inbox.classify: loop guards first, then subject, thread and content (SPEC §4–5)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from mentordesk.inbox.classify import Classification, Kind, classify, request_tag
from mentordesk.inbox.parse import DeliveryReport, ParsedMessage, parse_message

SAMPLES = Path(__file__).resolve().parent / "samples"
PROGRAM = "mentors@program.example.org"

BASE = parse_message(
    b"From: Ana Lima <ana.lima@example.biz>\n"
    b"To: mentors@program.example.org\n"
    b"Subject: hello\n"
    b"Message-ID: <base@example.biz>\n\n"
    b"Hello there.\n"
)


def message(
    subject: str = "hello",
    text: str = "Hello there.",
    sender: str = "ana.lima@example.biz",
    headers: dict[str, str] | None = None,
    **changes: object,
) -> ParsedMessage:
    """BASE with the given changes; ``text`` sets both text and new_text."""
    return replace(
        BASE,
        subject=subject,
        text=text,
        new_text=text,
        sender=sender,
        headers=MappingProxyType(headers or {}),
        **changes,  # type: ignore[arg-type]
    )


def kind_of(msg: ParsedMessage) -> Kind:
    return classify(msg, PROGRAM).kind


# --- the samples -----------------------------------------------------------------------

EXPECTED: dict[str, tuple[Kind, str | None, int | None]] = {
    "01-enrollment-plain.eml": (Kind.ENROLLMENT, None, None),
    "02-enrollment-outlook-html.eml": (Kind.ENROLLMENT, None, None),
    "03-request-gmail-alternative.eml": (Kind.REQUEST, None, None),
    "04-request-latin1.eml": (Kind.REQUEST, None, None),
    "05-request-windows1252.eml": (Kind.REQUEST, None, None),
    "06-request-iso2022jp.eml": (Kind.REQUEST, None, None),  # by its form: Details
    "07-request-quoted-printable.eml": (Kind.REQUEST, None, None),
    "08-request-base64.eml": (Kind.REQUEST, None, None),  # subject "iOS help": by its form
    "09-enrollment-forwarded.eml": (Kind.ENROLLMENT, None, None),
    "10-enrollment-forwarded-attachment.eml": (Kind.ENROLLMENT, None, None),
    "11-reply-quoted-signature.eml": (Kind.REPLY, None, 42),
    "12-auto-reply-exchange-oof.eml": (Kind.AUTO_REPLY, None, 3),
    "13-auto-reply-gmail-vacation.eml": (Kind.AUTO_REPLY, None, 7),
    "14-bounce-postfix-dsn.eml": (Kind.BOUNCE, None, None),
    "15-bounce-exchange-ndr.eml": (Kind.BOUNCE, None, 42),
    "16-bounce-qmail-plain.eml": (Kind.BOUNCE, None, None),
    "17-bounce-delayed-dsn.eml": (Kind.BOUNCE, None, None),
    "18-list-message.eml": (Kind.LIST, None, None),
    "19-noreply-notification.eml": (Kind.NOREPLY, None, None),
    "20-own-address.eml": (Kind.OWN, None, None),
    "21-no-message-id.eml": (Kind.REQUEST, None, None),
    "22-unknown-charset.eml": (Kind.REQUEST, None, None),
    "23-truncated-mime.eml": (Kind.ENROLLMENT, None, None),
    "24-binary-garbage.eml": (Kind.NOREPLY, None, None),
    "25-header-injection.eml": (Kind.REQUEST, None, None),
    "26-reply-missing-details.eml": (Kind.REPLY, None, 57),
    "27-command-pause.eml": (Kind.COMMAND, "pause", None),
    "28-command-resign.eml": (Kind.COMMAND, "resign", None),
    "29-reply-claim.eml": (Kind.REPLY, "claim", 42),
    "30-office-hours.eml": (Kind.OFFICE_HOURS, None, None),
    "31-calendar-reply.eml": (Kind.REPLY, None, 42),
    "32-reply-html-withdraw.eml": (Kind.REPLY, "withdraw", 42),
}


def test_every_sample_has_an_expected_kind() -> None:
    assert {path.name for path in SAMPLES.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str) -> None:
    result = classify(parse_message((SAMPLES / name).read_bytes()), PROGRAM)
    assert (result.kind, result.command, result.tag) == EXPECTED[name]
    assert result.reason


# --- loop guards -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    ["mentors@program.example.org", "mentors+bounces@program.example.org"],
)
def test_own_address(sender: str) -> None:
    assert kind_of(message("Mentor request", sender=sender)) is Kind.OWN


def test_program_address_given_in_any_case() -> None:
    msg = message(sender="mentors@program.example.org")
    assert classify(msg, " Mentors@Program.Example.org ").kind is Kind.OWN


@pytest.mark.parametrize(
    "sender", ["mentors@other.example.org", "mentorship@program.example.org", "x@mentors.org"]
)
def test_lookalikes_are_not_own(sender: str) -> None:
    assert kind_of(message("Mentor request", sender=sender)) is Kind.REQUEST


def test_our_own_header_coming_back_is_own() -> None:
    msg = message("Re: [MD-4] hi", headers={"x-mentordesk-request": "4"})
    assert kind_of(msg) is Kind.OWN


def test_delivery_report_is_bounce() -> None:
    report = DeliveryReport(("gone@example.org",), "<md.1@program.example.org>", True, "550")
    result = classify(message("Mentor request", delivery_report=report), PROGRAM)
    assert result.kind is Kind.BOUNCE
    assert "gone@example.org" in result.reason


@pytest.mark.parametrize(
    "subject",
    [
        "Undelivered Mail Returned to Sender",
        "Delivery Status Notification (Failure)",
        "Mail delivery failed: returning message to sender",
        "Undeliverable: [MD-0042] Meet your mentor",
        "Returned mail: see transcript for details",
        "Unzustellbar: Anmeldung",
    ],
)
def test_bounce_subjects(subject: str) -> None:
    assert kind_of(message(subject)) is Kind.BOUNCE


@pytest.mark.parametrize(
    "sender", ["mailer-daemon@mx.example.org", "MAILER-DAEMON@mx.example.org", "postmaster@x.org"]
)
def test_bounce_senders(sender: str) -> None:
    assert kind_of(message("Mentor request", sender=sender.lower())) is Kind.BOUNCE


def test_domainless_mailer_daemon_is_bounce() -> None:
    msg = message("hello", sender="", headers={"from": "MAILER-DAEMON (Mail Delivery System)"})
    assert kind_of(msg) is Kind.BOUNCE


def test_report_content_type_is_bounce() -> None:
    content_type = 'multipart/report; report-type="delivery-status"; boundary="x"'
    assert kind_of(message("hello", headers={"content-type": content_type})) is Kind.BOUNCE


@pytest.mark.parametrize(
    "headers",
    [
        {"auto-submitted": "auto-replied"},
        {"auto-submitted": "auto-generated"},
        {"auto-submitted": "auto-notified; owner-email=x@example.org"},
        {"x-autoreply": "yes"},
        {"x-autorespond": "Out of office"},
        {"precedence": "auto_reply"},
        {"content-type": "multipart/report; report-type=disposition-notification"},
    ],
)
def test_auto_reply_headers(headers: dict[str, str]) -> None:
    assert kind_of(message("Mentor request", headers=headers)) is Kind.AUTO_REPLY


@pytest.mark.parametrize("headers", [{"auto-submitted": "no"}, {"auto-submitted": "No "}])
def test_auto_submitted_no_is_a_person(headers: dict[str, str]) -> None:
    assert kind_of(message("Mentor request", headers=headers)) is Kind.REQUEST


def test_auto_response_suppress_alone_is_not_an_auto_reply() -> None:
    # Exchange asks *us* not to auto-reply to it; it does not say the mail is automatic.
    msg = message("Mentor request", headers={"x-auto-response-suppress": "All"})
    assert kind_of(msg) is Kind.REQUEST


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Mentor request",
        "Automatic reply: Re: [MD-3] mentor request",
        "Autoreply: enroll",
        "Auto-Reply: pause",
        "Abwesenheitsnotiz: Mentor enrollment",
        "AUTO: Dan is out of the office (returning 03/02/2025)",
        "RE: Out of office",
        "Réponse automatique : demande",
    ],
)
def test_auto_reply_subjects(subject: str) -> None:
    assert kind_of(message(subject)) is Kind.AUTO_REPLY


@pytest.mark.parametrize(
    "headers",
    [
        {"list-id": "Python <python.lists.example.org>"},
        {"list-unsubscribe": "<mailto:leave@lists.example.org>"},
        {"precedence": "bulk"},
        {"precedence": "list"},
        {"precedence": "junk"},
    ],
)
def test_mailing_lists(headers: dict[str, str]) -> None:
    assert kind_of(message("Need a mentor", headers=headers)) is Kind.LIST


def test_program_address_as_a_list_is_not_list_mail() -> None:
    # A Google Group as the program address stamps every message with its own List-Id.
    headers = {
        "list-id": "Code Mentors <mentors.program.example.org>",
        "list-unsubscribe": "<mailto:googlegroups-manage+1+unsubscribe@googlegroups.com>",
        "precedence": "list",
    }
    assert kind_of(message("Need a mentor", headers=headers)) is Kind.REQUEST
    posted = {"list-post": "<mailto:mentors@program.example.org>", "precedence": "list"}
    assert kind_of(message("Need a mentor", headers=posted)) is Kind.REQUEST


@pytest.mark.parametrize(
    "sender",
    [
        "noreply@example.com",
        "no-reply@accounts.example.com",
        "no_reply@example.com",
        "NoReply-Alerts@example.com".lower(),
        "do-not-reply@example.com",
        "donotreply@example.com",
        "bounce@example.com",
        "bounces+12345@mail.example.com",
        "bounce-mc.us5_1234.5678-ana=example.biz@mail.example.com",
    ],
)
def test_noreply_senders(sender: str) -> None:
    assert kind_of(message("Mentor request", sender=sender)) is Kind.NOREPLY


@pytest.mark.parametrize("sender", ["reply@example.com", "norene@example.com", "bob@noreply.org"])
def test_people_who_look_a_bit_like_noreply(sender: str) -> None:
    assert kind_of(message("Mentor request", sender=sender)) is Kind.REQUEST


def test_no_sender_is_noreply() -> None:
    assert kind_of(message("Mentor request", sender="")) is Kind.NOREPLY


# --- order of the rules ----------------------------------------------------------------


def test_auto_reply_in_a_tagged_thread_is_never_a_reply() -> None:
    msg = message(
        "Re: [MD-3] mentor request",
        "claim",
        headers={"auto-submitted": "auto-replied"},
        in_reply_to=("<md.3@program.example.org>",),
    )
    assert classify(msg, PROGRAM) == Classification(
        Kind.AUTO_REPLY, None, 3, "Auto-Submitted: auto-replied (RFC 3834)"
    )


def test_guards_in_order() -> None:
    everything = {
        "auto-submitted": "auto-replied",
        "list-id": "<x.example.org>",
        "content-type": "multipart/report; report-type=delivery-status",
    }
    own = message("Undeliverable: x", sender=PROGRAM, headers=everything)
    assert kind_of(own) is Kind.OWN
    bounce = message("Out of office", sender="noreply@example.org", headers=everything)
    assert kind_of(bounce) is Kind.BOUNCE
    auto = message("hi", sender="noreply@example.org", headers={**everything, "content-type": ""})
    assert kind_of(auto) is Kind.AUTO_REPLY
    listed = message("hi", sender="noreply@example.org", headers={"list-id": "<x.example.org>"})
    assert kind_of(listed) is Kind.LIST


def test_tag_beats_subject_keywords() -> None:
    # Replies keep the subject they answer; the tag is what places them.
    msg = message("Re: [MD-0042] Mentor request received: web dev", "Here is more detail.")
    assert classify(msg, PROGRAM) == Classification(Kind.REPLY, None, 42, "subject carries [MD-42]")


def test_subject_keywords_beat_thread_headers() -> None:
    msg = message("Re: Mentor enrollment", in_reply_to=("<md.conf@program.example.org>",))
    assert kind_of(msg) is Kind.ENROLLMENT


def test_thread_headers_beat_content() -> None:
    msg = message("Re: hi", "Skills: Go\nDetails: help", references=("<x@program.example.org>",))
    assert kind_of(msg) is Kind.REPLY


# --- subject ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("enroll", Kind.ENROLLMENT),
        ("Enrol", Kind.ENROLLMENT),
        ("ENROLLMENT", Kind.ENROLLMENT),
        ("Re-enrolling for 2025", Kind.ENROLLMENT),
        ("Mentor enrollment", Kind.ENROLLMENT),
        ("I'd like to volunteer as a mentor", Kind.ENROLLMENT),
        ("How can I become a mentor?", Kind.ENROLLMENT),
        ("Mentor request", Kind.REQUEST),
        ("Request a mentor", Kind.REQUEST),
        ("I need a mentor!", Kind.REQUEST),
        ("Looking for a mentor in Go", Kind.REQUEST),
        ("Mentoring request: career", Kind.REQUEST),
        ("Help with React hooks", Kind.REQUEST),
        ("Help with enrollment at my university", Kind.REQUEST),
        ("Office hours", Kind.OFFICE_HOURS),
        ("office-hours invite please", Kind.OFFICE_HOURS),
        ("Question", Kind.UNKNOWN),
        ("Enrollment form for the mentor request", Kind.REQUEST),
    ],
)
def test_subject_keywords(subject: str, kind: Kind) -> None:
    assert kind_of(message(subject, "")) is kind


@pytest.mark.parametrize(
    "subject",
    [
        "Re: enroll",
        "RE: Fwd: enroll",
        "Fw: enroll",
        "AW: WG: enroll",
        "SV: VS: enroll",
        "RE : enroll",
        "Antw: enroll",
        "Re[2]: enroll",
        "[MD-7] enroll",
    ],
)
def test_prefixes_are_stripped(subject: str) -> None:
    result = classify(message(subject, ""), PROGRAM)
    assert result.kind is (Kind.REPLY if "MD-" in subject else Kind.ENROLLMENT)


@pytest.mark.parametrize(
    ("subject", "command"),
    [
        ("pause", "pause"),
        ("Pause me", "pause"),
        ("Please pause my mentoring", "pause"),
        ("resume", "resume"),
        ("Unpause", "resume"),
        ("Resign", "resign"),
        ("I want to resign as a mentor", "resign"),
        ("withdraw my request", "withdraw"),
        ("Renew my term", "renew"),
        ("claim", "claim"),
        ("Release", "release"),
    ],
)
def test_subject_commands(subject: str, command: str) -> None:
    assert classify(message(subject, ""), PROGRAM) == Classification(
        Kind.COMMAND, command, None, f"subject says {command!r}"
    )


@pytest.mark.parametrize(
    ("subject", "command", "tag"),
    [("[MD-0003] claim", "claim", 3), ("release MD-12", "release", 12)],
)
def test_subject_commands_with_a_tag(subject: str, command: str, tag: int) -> None:
    result = classify(message(subject, ""), PROGRAM)
    assert (result.kind, result.command, result.tag) == (Kind.COMMAND, command, tag)


@pytest.mark.parametrize(
    ("text", "command"), [("No thanks, not this one.", None), ("claim", "claim")]
)
def test_tagged_reply_takes_its_command_from_the_body(text: str, command: str | None) -> None:
    # Our claim email may well be titled "[MD-3] Claim request"; replies keep that subject.
    result = classify(message("Re: [MD-3] Claim request", text), PROGRAM)
    assert (result.kind, result.command, result.tag) == (Kind.REPLY, command, 3)


@pytest.mark.parametrize(
    ("text", "command"),
    [("Thanks!", "pause"), ("Actually, resume", "pause"), ("resume", "resume")],
)
def test_reply_to_a_command_subject(text: str, command: str) -> None:
    result = classify(message("Re: pause", text), PROGRAM)
    assert (result.kind, result.command) == (Kind.COMMAND, command)


@pytest.mark.parametrize(
    "subject",
    ["pause and resume", "Resume attached", "Pause button broken", "leave", "How to claim?"],
)
def test_not_commands(subject: str) -> None:
    assert kind_of(message(subject, "")) is not Kind.COMMAND


@pytest.mark.parametrize(
    ("subject", "command"),
    [
        ("Office hours", None),
        ("Leave office hours", "leave"),
        ("Unsubscribe from office hours", "leave"),
        ("office hours - please stop", "leave"),
    ],
)
def test_office_hours(subject: str, command: str | None) -> None:
    result = classify(message(subject, ""), PROGRAM)
    assert (result.kind, result.command) == (Kind.OFFICE_HOURS, command)


# --- thread ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("claim", "claim"),
        ("Claim!", "claim"),
        ("Withdraw please", "withdraw"),
        ("Hi,\n\nrelease\n\nSorry!", "release"),
        ("Hello team!\nPause me", "pause"),
        ("Hi, claim", "claim"),
        ("Dear Code Mentors,\n\nRelease please.", "release"),
        ("Yes, claim", "claim"),
        ("leave", "leave"),
        ("I can claim this maybe", None),
        ("Thanks for the update.", None),
        ("", None),
    ],
)
def test_reply_commands(text: str, command: str | None) -> None:
    result = classify(message("Re: [MD-5] Can you take this request?", text), PROGRAM)
    assert (result.kind, result.command, result.tag) == (Kind.REPLY, command, 5)


@pytest.mark.parametrize(
    "changes",
    [{"in_reply_to": ("<a@b.org>",)}, {"references": ("<a@b.org>", "<c@d.org>")}],
)
def test_thread_headers_make_a_reply(changes: dict[str, Any]) -> None:
    msg = message("Re: our chat", "Claim", **changes)
    assert classify(msg, PROGRAM) == Classification(
        Kind.REPLY, "claim", None, "In-Reply-To/References: a reply"
    )


@pytest.mark.parametrize(
    ("subject", "tag"),
    [
        ("[MD-42] x", 42),
        ("Re: [MD-0042] x", 42),
        ("[ md-7 ] x", 7),
        ("About MD-0042 again", 42),
        ("Re: [md-3]", 3),
        ("MD-", None),
        ("CMD-42", None),
        ("[MD-x]", None),
        ("", None),
    ],
)
def test_request_tag(subject: str, tag: int | None) -> None:
    assert request_tag(subject) == tag


# --- content ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Skills: Go\nAvailability: Tue 18-20", Kind.ENROLLMENT),
        ("Skills: Go\nCapacity: 2", Kind.ENROLLMENT),
        ("Skills: Go\nAbout: I teach", Kind.ENROLLMENT),
        ("Skills: Go\nAbout: Can I help?", Kind.ENROLLMENT),
        ("Details: my app crashes", Kind.REQUEST),
        ("Topics: Go", Kind.REQUEST),
        ("Skills: Go\nHow do I use channels?", Kind.REQUEST),
        ("Skills: Go\nAvailability: Tue 18-20\nCan someone help?", Kind.REQUEST),
        ("Skills: Go", Kind.UNKNOWN),
        ("Name: Ana\nTimezone: CET", Kind.UNKNOWN),
        ("Just saying hello.", Kind.UNKNOWN),
        ("- **Skills:** Go\n- **Capacity:** 2", Kind.ENROLLMENT),
    ],
)
def test_content(text: str, kind: Kind) -> None:
    assert kind_of(message("hello", text)) is kind


def test_quoted_form_does_not_count() -> None:
    raw = (
        b"From: ana@example.biz\nSubject: hello\n\nSure.\n\n"
        b"On Mon, 1 Jan 2025, Code Mentors wrote:\n> Skills:\n> Details:\n"
    )
    assert kind_of(parse_message(raw)) is Kind.UNKNOWN
