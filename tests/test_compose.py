"""mailer/compose.py: templates → MIME → bytes, read back with the stdlib parser."""

from __future__ import annotations

import email
import email.policy
import os
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage, MIMEPart
from pathlib import Path
from typing import Any
from unittest.mock import patch

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from mentordesk.calendar.invite import (
    Attendee,
    EventHead,
    calendar_mime_parts,
    session_cancel,
    session_request,
)
from mentordesk.mailer import compose
from mentordesk.mailer.compose import (
    AUTO_SUBMITTED_VALUES,
    MAX_REFERENCES,
    Email,
    Renderer,
    as_bytes,
    build_message,
    build_references,
    header_safe,
    make_message_id,
    message_bytes,
)

NOW = datetime(2024, 5, 6, 14, 30, tzinfo=UTC)


@dataclass(frozen=True)
class _Program:
    name: str = "Code Mentors"
    address: str = "mentors@program.example.org"


def _build(**overrides: Any) -> EmailMessage:
    args: dict[str, Any] = {
        "from_addr": "mentors@program.example.org",
        "from_name": "Code Mentors",
        "to": "ana@example.com",
        "to_name": "Ana",
        "subject": "[MD-0042] We have your request",
        "text": "Hello Ana,\n\nWe have your request.\n",
        "html": "<p>Hello Ana,</p><p>We have your request.</p>",
        "message_id": "<abc123@program.example.org>",
        "date": NOW,
    }
    args.update(overrides)
    return build_message(Email(**args))


def _roundtrip(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(as_bytes(msg), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _header_names(raw: bytes) -> list[str]:
    """Names of the top-level header fields, read straight from the bytes."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]


def _body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None and isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    # Quoted-printable keeps the wire's CRLF line ends in the decoded text.
    return content.replace("\r\n", "\n")


# --- make_message_id / header_safe --------------------------------------------------


def test_message_ids_are_unique_and_well_formed() -> None:
    ids = {make_message_id("program.example.org") for _ in range(1000)}
    assert len(ids) == 1000
    for msg_id in ids:
        assert msg_id.startswith("<") and msg_id.endswith("@program.example.org>")
        assert " " not in msg_id


def test_a_forked_process_gives_out_other_message_ids() -> None:
    """Ids come from a pool of random bytes: a child must not draw the parent's."""
    make_message_id("program.example.org")  # the pool holds bytes now
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reading)
        ids = " ".join(make_message_id("program.example.org") for _ in range(300))
        os.write(writing, ids.encode())
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        theirs = set(pipe.read().decode().split())
    os.waitpid(child, 0)
    ours = {make_message_id("program.example.org") for _ in range(300)}
    assert len(theirs) == 300
    assert not ours & theirs


@pytest.mark.parametrize("domain", ["", "bad domain", "x>y", "a\r\nb.org"])
def test_message_id_refuses_a_bad_domain(domain: str) -> None:
    with pytest.raises(ValueError):
        make_message_id(domain)


@pytest.mark.parametrize(
    ("unsafe", "expected"),
    [
        ("Hello\r\nBcc: evil@x", "Hello Bcc: evil@x"),
        ("  a\t\tb \n c  ", "a b c"),
        ("nul\x00bell\x07del\x7fc1\x85end", "nul bell del c1 end"),
        ("line\u2028sep\u2029para", "line sep para"),
        ("bad\udcffsurrogate", "bad surrogate"),
        ("Grüße, 你好 👋", "Grüße, 你好 👋"),
        ("", ""),
    ],
)
def test_header_safe_cleans(unsafe: str, expected: str) -> None:
    assert header_safe(unsafe) == expected


def test_header_safe_cuts_at_max_len() -> None:
    assert header_safe("word " * 100, max_len=12) == "word word wo"
    assert len(header_safe("x" * 500)) == 200


# --- build_message ------------------------------------------------------------------


def test_every_header_is_set_and_parses_back() -> None:
    parsed = _roundtrip(
        _build(
            in_reply_to="<parent@mail.example.com>",
            references=["<root@mail.example.com>"],
            reply_to="coordinator@program.example.org",
        )
    )
    assert parsed["From"].addresses[0].display_name == "Code Mentors"
    assert parsed["From"].addresses[0].addr_spec == "mentors@program.example.org"
    assert parsed["To"].addresses[0].display_name == "Ana"
    assert parsed["To"].addresses[0].addr_spec == "ana@example.com"
    assert parsed["Reply-To"].addresses[0].addr_spec == "coordinator@program.example.org"
    assert parsed["Subject"] == "[MD-0042] We have your request"
    assert parsed["Date"].datetime == NOW
    assert parsed["Message-ID"] == "<abc123@program.example.org>"
    assert parsed["In-Reply-To"] == "<parent@mail.example.com>"
    assert parsed["References"] == "<root@mail.example.com> <parent@mail.example.com>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.defects == []


def test_optional_headers_are_left_out() -> None:
    parsed = _roundtrip(_build(auto_submitted="auto-generated"))
    assert parsed["Auto-Submitted"] == "auto-generated"
    for name in ("In-Reply-To", "References", "Reply-To", "Bcc", "Cc"):
        assert name not in parsed


def test_date_keeps_its_offset() -> None:
    local = datetime(2024, 5, 6, 10, 30, tzinfo=timezone(timedelta(hours=-4)))
    raw = as_bytes(_build(date=local))
    assert b"Date: Mon, 06 May 2024 10:30:00 -0400\r\n" in raw


def test_text_and_html_parts_are_utf8_and_7bit_on_the_wire() -> None:
    text = "Héllo Zoë,\n\n" + "long line " * 30 + "\n"
    html = "<p>Héllo Zoë — 你好</p>"
    msg = _build(text=text, html=html)
    raw = as_bytes(msg)
    assert raw.isascii()  # passes any server, with or without 8BITMIME
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    parsed = _roundtrip(msg)
    plain, rich = list(parsed.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert rich.get_content_type() == "text/html"
    for part in (plain, rich):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert "MIME-Version" not in part
    assert _body(parsed, "plain") == text
    assert _body(parsed, "html").rstrip("\n") == html


def test_non_ascii_names_and_subject_round_trip() -> None:
    msg = _build(
        from_name="Mentorat Genève",
        to_name="José Müller-Łukasz 王小明",
        subject="[MD-7] Grüße — your request about “Rust” 🦀",
    )
    raw = as_bytes(msg)
    assert b"=?utf-8?" in raw  # RFC 2047 encoded words, not raw UTF-8
    parsed = _roundtrip(msg)
    assert parsed["From"].addresses[0].display_name == "Mentorat Genève"
    assert parsed["To"].addresses[0].display_name == "José Müller-Łukasz 王小明"
    assert parsed["Subject"] == "[MD-7] Grüße — your request about “Rust” 🦀"


def test_names_with_specials_are_quoted_not_parsed() -> None:
    parsed = _roundtrip(_build(to_name='Smith, John "JJ" <boss@evil.example>'))
    [address] = parsed["To"].addresses
    assert address.display_name == 'Smith, John "JJ" <boss@evil.example>'
    assert address.addr_spec == "ana@example.com"


@pytest.mark.parametrize("field", ["to_name", "from_name", "subject"])
def test_no_header_injection(field: str) -> None:
    msg = _build(**{field: "Innocent\r\nBcc: evil@x.example\r\nX-Evil: 1"})
    raw = as_bytes(msg)
    names = _header_names(raw)
    assert "bcc" not in names and "x-evil" not in names
    assert names.count("to") == names.count("from") == names.count("subject") == 1
    parsed = _roundtrip(msg)
    assert parsed["Bcc"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ana@example.com"]


@pytest.mark.parametrize("field", ["to", "from_addr", "reply_to"])
@pytest.mark.parametrize(
    "bad", ["ana@example.com\r\nBcc: evil@x", "ana@example.com, evil@x", "<ana@example.com>"]
)
def test_addresses_must_be_one_plain_addr_spec(field: str, bad: str) -> None:
    with pytest.raises(ValueError):
        _build(**{field: bad})


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _build(date=datetime(2024, 5, 6, 14, 30))
    with pytest.raises(ValueError, match="Auto-Submitted"):
        _build(auto_submitted="no")
    with pytest.raises(ValueError, match="Message-ID"):
        _build(message_id="<a b@c>")
    with pytest.raises(ValueError, match="Message-ID"):
        _build(message_id="<x@y>\r\nBcc: evil@x")


def test_malformed_ids_from_received_mail_are_dropped() -> None:
    parsed = _roundtrip(
        _build(
            in_reply_to="<p@x>\r\nBcc: evil@x",
            references=["<ok@x>", "<no spaces@x>", "<a<b@x>", "junk>"],
        )
    )
    assert "In-Reply-To" not in parsed
    assert parsed["References"] == "<ok@x>"
    assert "Bcc" not in parsed


def test_long_message_ids_stay_intact() -> None:
    # Gmail- and Outlook-style ids are long; the email package would otherwise turn a
    # line over 78 characters into RFC 2047 encoded words, which breaks threading.
    long_id = "<CAH+w=7ZkVnH3qZ1-Jb3rH4kC1U7VxhT2vN9D4vT9rN0w0vS0Qabcdefghijk@mail.gmail.com>"
    refs = [f"<{i}.{'y' * 60}@mail.example.com>" for i in range(5)]
    msg = _build(message_id=long_id, in_reply_to=long_id, references=refs)
    raw = as_bytes(msg)
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]
    parsed = _roundtrip(msg)
    assert parsed["Message-ID"] == long_id
    assert parsed["In-Reply-To"] == long_id
    assert parsed["References"].split() == [*refs, long_id]


def test_alternatives_and_attachments() -> None:
    invite = MIMEPart()
    invite.set_content("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", subtype="calendar")
    invite.set_param("method", "REQUEST")
    attachment = MIMEPart()
    attachment.set_content(
        b"BEGIN:VCALENDAR\r\n", maintype="application", subtype="ics", filename="invite.ics"
    )

    only_alt = _roundtrip(_build(alternatives=[invite]))
    assert only_alt.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in only_alt.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]

    mixed = _roundtrip(_build(alternatives=[invite], attachments=[attachment]))
    assert mixed.get_content_type() == "multipart/mixed"
    first, second = list(mixed.iter_parts())
    assert first.get_content_type() == "multipart/alternative"
    assert len(list(first.iter_parts())) == 3
    assert second.get_filename() == "invite.ics"
    assert mixed["Message-ID"] == "<abc123@program.example.org>"
    assert _body(mixed, "plain").startswith("Hello Ana")


# --- message_bytes: the same bytes without the message objects ----------------------

_BOUNDARY = re.compile(rb"={15}\d{19}==")

# Pieces that exercise quoting, RFC 2047, folding, quoted-printable and line ends.
_PIECES = [
    "a", "Z", " ", "  ", ".", ",", '"', "<", ">", "@", "=?", "?=", "é", "王", "🦀", "\n",
    "\r\n", "\r", "\t", "=", "-", "From ", "\\", "(", ")", ";", ":", "x" * 80, "\u2028",
    "\x85", "\x00", "_", "'", "Dr.", "Smith, John",
]  # fmt: skip


def _random_text(rng: random.Random, pieces: int) -> str:
    return "".join(rng.choice(_PIECES) for _ in range(rng.randrange(pieces)))


def test_message_bytes_are_what_build_message_serialises_to() -> None:
    rng = random.Random(20240506)
    for n in range(800):
        args: dict[str, Any] = {
            "from_name": _random_text(rng, 8),
            "to": rng.choice(["ana@example.com", "x.y+z@sub.example.net", '"q"@ex.org', "a b"]),
            "to_name": _random_text(rng, 10),
            "subject": _random_text(rng, 30),
            "text": _random_text(rng, 60),
            "html": _random_text(rng, 60),
            "message_id": f"<{n}@program.example.org>",
            "in_reply_to": rng.choice([None, "<p@x>", "bad id", "q@x", f"<{'l' * 200}@x>"]),
            "references": rng.choice(
                [(), ["<a@x> <b@x>", "junk"], [f"<{k}@x>" for k in range(30)]]
            ),
            "auto_submitted": rng.choice(sorted(AUTO_SUBMITTED_VALUES)),
            "reply_to": rng.choice([None, "coordinator@program.example.org"]),
            "date": NOW.astimezone(rng.choice([UTC, timezone(timedelta(hours=5, minutes=45))])),
        }
        try:
            expected = as_bytes(_build(**args))
        except ValueError as exc:
            with pytest.raises(type(exc)):
                message_bytes(Email(**{**_defaults(), **args}))
            continue
        got = message_bytes(Email(**{**_defaults(), **args}))
        assert _BOUNDARY.sub(b"B", got) == _BOUNDARY.sub(b"B", expected), args


def test_message_bytes_write_plain_subjects_as_the_email_package_does() -> None:
    # Short printable ASCII subjects skip the header classes (see _subject_field).
    pieces = [chr(c) for c in range(0x20, 0x7F)] + ["=?", "?=", "  ", "Re: ", "[MD-0042] "]
    rng = random.Random(3834)
    for _ in range(1000):
        subject = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 45)))
        args = {**_defaults(), "subject": subject}
        expected = as_bytes(_build(**args))
        got = message_bytes(Email(**args))
        assert _BOUNDARY.sub(b"B", got) == _BOUNDARY.sub(b"B", expected), subject


def test_message_bytes_write_plain_addresses_as_the_email_package_does() -> None:
    # Plain names and dot-atom addresses skip the header classes (see _address_field).
    rng = random.Random(5322)

    def word(chars: str, longest: int) -> str:
        return "".join(rng.choice(chars) for _ in range(rng.randrange(1, longest)))

    for _ in range(1000):
        name = " ".join(word("abcXYZ0189", 8) for _ in range(rng.randrange(0, 5)))
        local = ".".join(word("abcXYZ09_+-", 8) for _ in range(rng.randrange(1, 4)))
        domain = ".".join(word("abcxyz09-", 8) for _ in range(rng.randrange(1, 4)))
        args = {**_defaults(), "to_name": name, "to": f"{local}@{domain}"}
        if rng.random() < 0.3:
            args["reply_to"] = f"{local}@{domain}"
        expected = as_bytes(_build(**args))
        got = message_bytes(Email(**args))
        assert _BOUNDARY.sub(b"B", got) == _BOUNDARY.sub(b"B", expected), args


# --- message_bytes with invitations: the parts the program makes, written directly ----

_NAMES = ["Ana", "Dana Müller", "王小明", 'Smith, John "JJ"', "O'Brien (mentor)", "x" * 90]


def _invitation_parts(
    method: str, summary: str, description: str, names: list[str]
) -> tuple[bytes, MIMEPart, MIMEPart]:
    """An invitation as flows/session_mail.py sends it: the VCALENDAR and its two parts."""
    people = [Attendee(f"p{n}@example.org", name) for n, name in enumerate(names)]
    head = EventHead("u1@program.example.org", 2, summary, people[0], people, NOW)
    start = NOW + timedelta(days=3)
    if method == "CANCEL":
        ics = session_cancel(head, start, timedelta(minutes=45))
    else:
        ics = session_request(
            head, start, timedelta(minutes=45), description=description, location="Online"
        )
    return ics, *calendar_mime_parts(ics, method)


def _original_eml(data: bytes) -> MIMEPart:
    """The attachment of a coordinator notice (mailer/outbox.py)."""
    part = MIMEPart()
    part.set_content(data, maintype="application", subtype="octet-stream", filename="original.eml")
    return part


def _shape(part: MIMEPart) -> tuple[Any, ...]:
    """What a reader sees of a part: type and parameters (but the random boundary),
    disposition, filename, encoding, and the decoded payload or the subparts' shapes."""
    params = {k: v for k, v in part.get_params() or [] if k != "boundary"}
    return (
        part.get_content_type(),
        params,
        part.get_content_disposition(),
        part.get_filename(),
        part.get("Content-Transfer-Encoding"),
        [_shape(child) for child in part.iter_parts()],
        None if part.is_multipart() else part.get_payload(decode=True),
    )


def _calendar(msg: EmailMessage) -> bytes:
    """The decoded text/calendar part of ``msg``."""
    part = msg.get_body(preferencelist=("calendar",))
    assert part is not None
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def _assert_same_message(fast: bytes, slow: bytes, ics: bytes | None) -> None:
    """``fast`` reads back as ``slow`` does: header fields, MIME tree, decoded payloads,
    the calendar as icalendar reads it; and it is the same bytes but for the boundaries."""
    ours, theirs = (
        email.message_from_bytes(raw, policy=email.policy.default) for raw in (fast, slow)
    )
    assert isinstance(ours, EmailMessage) and isinstance(theirs, EmailMessage)
    assert [(k, str(v)) for k, v in ours.items() if k != "Content-Type"] == [
        (k, str(v)) for k, v in theirs.items() if k != "Content-Type"
    ]
    assert _shape(ours) == _shape(theirs)
    if ics is not None:
        assert _calendar(ours) == ics
        assert Calendar.from_ical(_calendar(ours)) == Calendar.from_ical(_calendar(theirs))
    assert _BOUNDARY.sub(b"B", fast) == _BOUNDARY.sub(b"B", slow)


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["REQUEST", "CANCEL"]),
    texts=st.lists(st.sampled_from(_PIECES) | st.text(max_size=40), max_size=12).map("".join),
    summary=st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=120),
    names=st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3),
    shape=st.sampled_from(["invitation", "inline only", "with original", "original only"]),
    original=st.binary(max_size=300),
)
def test_message_bytes_write_invitations_as_the_email_package_does(
    method: str, texts: str, summary: str, names: list[str], shape: str, original: bytes
) -> None:
    ics, inline, attachment = _invitation_parts(method, summary, texts + summary, names)
    alternatives = [] if shape == "original only" else [inline]
    attachments = {
        "invitation": [attachment],
        "inline only": [],
        "with original": [attachment, _original_eml(original)],
        "original only": [_original_eml(original)],
    }[shape]
    args = {
        **_defaults(),
        "to_name": names[-1],
        "subject": f"{summary} {texts}",
        "text": texts,
        "html": f"<p>{texts}</p>",
        "alternatives": alternatives,
        "attachments": attachments,
    }
    with patch.object(compose, "build_message", side_effect=AssertionError("the long way")):
        fast = message_bytes(Email(**args))
    slow = as_bytes(build_message(Email(**args)))
    _assert_same_message(fast, slow, ics if alternatives else None)


def _other_parts() -> list[tuple[list[MIMEPart], list[MIMEPart]]]:
    """(alternatives, attachments) of shapes written the long way: each must still come
    out as build_message makes it."""
    eight_bit = MIMEPart()
    eight_bit.set_content("Grüße\n", subtype="calendar", cte="8bit")
    long_name = MIMEPart()
    long_name.set_content(b"x", maintype="application", subtype="pdf", filename="n" * 80 + ".pdf")
    with_id = MIMEPart()
    with_id.set_content(b"x", maintype="image", subtype="png", cid="<logo@program.example.org>")
    nested = MIMEPart()
    nested.set_content("plain")
    nested.add_alternative("<p>rich</p>", subtype="html")
    text = MIMEPart()
    text.set_content("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", subtype="calendar")
    # A multipart whose body is a string: the generator writes it without touching
    # its line ends.
    opaque = MIMEPart()
    opaque["Content-Type"] = 'multipart/mixed; boundary="b"'
    opaque.set_payload("--b\n\nx\n--b--\n")
    return [
        ([eight_bit], []),
        ([], [long_name]),
        ([text], [with_id]),
        ([], [nested]),
        ([], [opaque]),
    ]


@pytest.mark.parametrize("alternatives, attachments", _other_parts())
def test_message_bytes_with_other_parts_take_the_long_way(
    alternatives: list[MIMEPart], attachments: list[MIMEPart]
) -> None:
    args = {**_defaults(), "alternatives": alternatives, "attachments": attachments}
    fast, slow = message_bytes(Email(**args)), as_bytes(build_message(Email(**args)))
    _assert_same_message(fast, slow, None)


def _defaults() -> dict[str, Any]:
    return {
        "from_addr": "mentors@program.example.org",
        "from_name": "Code Mentors",
        "to": "ana@example.com",
        "to_name": "Ana",
        "subject": "[MD-0042] We have your request",
        "text": "Hello Ana,\n\nWe have your request.\n",
        "html": "<p>Hello Ana,</p><p>We have your request.</p>",
        "message_id": "<abc123@program.example.org>",
        "date": NOW,
    }


# --- References ---------------------------------------------------------------------


def test_references_dedupe_keep_order_and_end_with_the_parent() -> None:
    assert build_references(["<a@x>", "<b@x>", "<a@x>"], "<c@x>") == ["<a@x>", "<b@x>", "<c@x>"]
    # Already there: it stays where the thread put it.
    assert build_references(["<a@x>", "<b@x>"], "<a@x>") == ["<a@x>", "<b@x>"]
    assert build_references([], "<c@x>") == ["<c@x>"]
    assert build_references([], None) == []
    # A whole References header as received, and an id without its brackets.
    assert build_references(["<a@x>\r\n <b@x>", "c@x"]) == ["<a@x>", "<b@x>", "<c@x>"]


def test_references_are_cut_keeping_the_root() -> None:
    ids = [f"<{i}@x>" for i in range(40)]
    thread = build_references(ids, "<parent@x>")
    assert len(thread) == MAX_REFERENCES
    assert thread[0] == "<0@x>"
    assert thread[-1] == "<parent@x>"
    assert thread[1:-1] == ids[-(MAX_REFERENCES - 2) :]


# --- Renderer -----------------------------------------------------------------------


def _context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "program": _Program(),
        "tag": "MD-0042",
        "name": "Ana",
        "details": "Help with\nJavaScript & CSS",
        "link": "https://mentors.example.org/claim?t=abc&u=1",
    }
    context.update(overrides)
    return context


def test_renders_the_example_pair() -> None:
    rendered = Renderer().render("example", _context())
    assert rendered.subject == "[MD-0042] Hello Ana"
    assert rendered.text.startswith("Hello Ana,\n")
    assert "[MD-0042]" not in rendered.text  # the subject block is not in the body
    assert "  Help with\n  JavaScript & CSS\n" in rendered.text
    assert "\n-- \nCode Mentors <mentors@program.example.org>\n" in rendered.text
    assert "Sent automatically by the Code Mentors mentoring desk." in rendered.text
    assert rendered.text.endswith("Reference: MD-0042\n")
    html = rendered.html
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in html and 'role="article"' in html
    assert "max-width:560px" in html
    assert "<title>[MD-0042] Hello Ana</title>" in html
    assert "Help with\nJavaScript &amp; CSS" in html
    assert 'href="https://mentors.example.org/claim?t=abc&amp;u=1"' in html
    assert "Code Mentors" in html and "Just reply to write to us" in html
    assert "<style" not in html and "<img" not in html


def test_autoescape_is_on_for_html_and_off_for_text() -> None:
    evil = '<script>alert("x")</script>'
    rendered = Renderer().render("example", _context(name=evil))
    assert f"Hello {evil}," in rendered.text
    assert evil in rendered.subject
    assert "<script>" not in rendered.html
    assert "Hello &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;," in rendered.html
    assert "<title>[MD-0042] Hello &lt;script&gt;" in rendered.html


def test_undefined_variables_are_errors() -> None:
    context = _context()
    del context["tag"]
    with pytest.raises(jinja2.UndefinedError):
        Renderer().render("example", context)


def test_subject_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text(
        "{% block subject %}\n  Hello\n  {{ who }}\n{% endblock %}Body for {{ who }}\n"
    )
    (tmp_path / "m.html").write_text("<p>{{ who }}: {{ subject }}</p>")
    rendered = Renderer(tmp_path).render("m", {"who": "<Zoë>"})
    assert rendered.subject == "Hello <Zoë>"
    assert rendered.html == "<p>&lt;Zoë&gt;: Hello &lt;Zoë&gt;</p>"


def test_a_template_without_subject_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("just a body\n")
    (tmp_path / "m.html").write_text("<p>body</p>")
    with pytest.raises(ValueError, match="subject"):
        Renderer(tmp_path).render("m", {})


def test_missing_template_is_an_error() -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        Renderer().render("no-such-email", _context())


def test_rendered_email_builds_and_parses() -> None:
    rendered = Renderer().render("example", _context(name="José"))
    parsed = _roundtrip(_build(subject=rendered.subject, text=rendered.text, html=rendered.html))
    assert parsed["Subject"] == "[MD-0042] Hello José"
    assert _body(parsed, "plain") == rendered.text
    assert "Hello José," in _body(parsed, "html")


# --- header injection through RFC 2047 encoded words, against what ships ---------------

_ENCODED_ATTACKS = [
    "=?utf-8?q?Eve=0D=0ABcc:_victim@evil.test?=",
    "=?utf-8?q?Eve=0D=0A=0D=0AClick_here_to_verify?=",
    "=?UTF-8?B?RXZlDQpCY2M6IHZpY3RpbUBldmlsLnRlc3Q=?=",
    # an encoded word hiding another encoded word
    "=?utf-8?b?PT91dGYtOD9xP0V2ZT0wRD0wQUJjYzpfdmljdGltQGV2aWwudGVzdD89?=",
    "Ann =?utf-8?q?=0A?=Bcc: victim@evil.test",
]


@pytest.mark.parametrize("field", ["to_name", "from_name", "subject"])
@pytest.mark.parametrize("attack", _ENCODED_ATTACKS)
def test_encoded_words_cannot_inject_headers(field: str, attack: str) -> None:
    for raw in (
        message_bytes(Email(**{**_defaults(), field: attack})),
        as_bytes(_build(**{field: attack})),
    ):
        names = _header_names(raw)
        assert "bcc" not in names
        assert names.count("to") == names.count("from") == names.count("subject") == 1
        # The body is still ours: the attack did not open it with an empty line.
        assert b"Click here" not in raw.split(b"\r\n\r\n", 1)[1]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"=?qQbB_:\r\n -utf8AZaz@.", "=0D", "=0A", "?=", "=?", "utf-8", "Bcc"]),
        max_size=40,
    ).map("".join),
    st.sampled_from(["to_name", "from_name", "subject"]),
)
def test_no_user_text_adds_a_header_line(text: str, field: str) -> None:
    raw = message_bytes(Email(**{**_defaults(), field: text}))
    names = _header_names(raw)
    assert set(names) <= {
        "from", "to", "subject", "date", "message-id", "auto-submitted",
        "x-auto-response-suppress", "mime-version", "content-type",
    }  # fmt: skip
    assert names.count("subject") == 1


def test_the_last_guard_refuses_a_head_with_a_foreign_field() -> None:
    from mentordesk.mailer.compose import _only_our_headers

    with pytest.raises(ValueError, match="Bcc"):
        _only_our_headers(b"From: a@b\r\nBcc: victim@evil.test\r\n\r\nbody")
    assert _only_our_headers(b"From: a@b\r\n folded\r\n\r\nBcc: in the body") is not None


# Found by tests/test_hostile_daemon.py: a long display name full of specials, folded by
# the email package, lost its quotes, and the To header named "<>" and the victim.
_LONG_NAMES_WITH_SPECIALS = [
    "; Bcc: victim@evil.test)<victim@evil.test><: <victim@evil.test><victim@evil.test>: Bo",
    "Smith, John (the elder); Doe, Jane <jane@evil.example>, victim@evil.test: team;",
    '"' * 30 + "\\" * 30 + "<>" * 20,
    "Zoë, Müller; " * 12,
]


@pytest.mark.parametrize("name", _LONG_NAMES_WITH_SPECIALS)
@pytest.mark.parametrize("field", ["to_name", "from_name"])
def test_long_names_with_specials_name_one_mailbox(field: str, name: str) -> None:
    header = "To" if field == "to_name" else "From"
    args = {**_defaults(), field: name}
    for raw in (message_bytes(Email(**args)), as_bytes(_build(**{field: name}))):
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert all(len(line) <= 78 for line in head.split(b"\r\n")), head
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        [mailbox] = parsed[header].addresses
        assert mailbox.addr_spec == args["to" if header == "To" else "from_addr"]
        # (Between encoded words the email package keeps a space RFC 2047 drops.)
        assert "".join(mailbox.display_name.split()) == "".join(header_safe(name).split())
        assert not parsed[header].defects, parsed[header].defects
