"""Hostile mail through ``parse_message`` and ``classify``: limits apply before the work.

Issue 14, items 2, 6 and 7: headers with tens of thousands of encoded words, header
sections of megabytes, MIME nested a thousand deep or split into a hundred thousand parts,
HTML and text bodies of 10 MB, and From headers that hide a second address. Each is read
in bounded memory (measured with tracemalloc; tests never assert time), never raises, and
leaves a sender that is a plain address or nothing.
"""

from __future__ import annotations

import base64
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

import pytest

from mentordesk.inbox import parse as parse_module
from mentordesk.inbox.bodies import MAX_CALENDAR_PARTS
from mentordesk.inbox.classify import Kind, classify
from mentordesk.inbox.headers import MAX_ENCODED_WORDS, MAX_RAW_HEADER_CHARS, clean_address
from mentordesk.inbox.parse import MAX_NEW_TEXT_CHARS, MAX_TEXT_CHARS, ParsedMessage, parse_message

T = TypeVar("T")
PROGRAM = "mentors@program.test"
MB = 1_000_000


def peak_bytes(work: Callable[[], T]) -> tuple[T, int]:
    """``work()`` and the most memory Python held for it at any moment, in bytes."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return result, peak - base


def parsed_within(raw: bytes, limit_bytes: int, **kwargs: int) -> ParsedMessage:
    msg, peak = peak_bytes(lambda: parse_message(raw, **kwargs))
    assert peak < limit_bytes, f"parsing {len(raw):,} bytes took {peak:,} bytes at peak"
    return msg


def message(*headers: str, body: str | bytes = "Hello.\n") -> bytes:
    head = "\r\n".join(headers).encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    return head + (body.encode() if isinstance(body, str) else body)


# --- item 2: headers -----------------------------------------------------------------------

WORD = "=?utf-8?q?=C3=A9t=C3=A9?="  # "été": 19 characters, like the 380 KB Subject


def test_twenty_thousand_encoded_words_in_a_subject_parse_in_bounded_memory() -> None:
    subject = " ".join([WORD] * 20_000)
    raw = message("From: Ann <ann@example.org>", f"Subject: {subject}")
    assert len(raw) > 380_000
    # Before the limits: 5,000 such words took 233 MB, 20,000 took 3.6 GB.
    msg = parsed_within(raw, 8 * MB)
    assert msg.sender == "ann@example.org"
    assert msg.subject.startswith("étéétéété")  # adjacent encoded words join (RFC 2047 §6.2)
    assert len(msg.subject) <= 4_000
    assert any("Subject" in defect and "cut" in defect for defect in msg.defects)


@pytest.mark.parametrize(
    "header",
    [
        "From: " + " ".join([WORD] * 20_000) + " <ann@example.org>",
        "To: " + ", ".join(f"{WORD} <a{n}@example.org>" for n in range(10_000)),
        "References: " + " ".join(f"<{n}.{WORD}@example.org>" for n in range(20_000)),
        "Content-Type: text/plain; " + "; ".join(f"p{n}={WORD}" for n in range(20_000)),
        "Content-Type: text/plain; " + "; ".join(f"name*{n}*=utf-8''%C3%A9" for n in range(20_000)),
        "Content-Disposition: inline; " + "; ".join(f'x{n}="{WORD}"' for n in range(20_000)),
        "X-Anything: " + " ".join([WORD] * 20_000),
        "Subject: " + "=?utf-8?b?" + "w6k=" * 100_000 + "?=",
        "Subject: " + "(" * 100_000 + WORD,
        "From: " + "(" * 50_000 + "<ann@example.org>" + ")" * 50_000,
        "From: " + '"' + '\\"' * 100_000 + '" <ann@example.org>',
    ],
    ids=[
        "from-name",
        "to-list",
        "references",
        "content-type-params",
        "rfc2231-pieces",
        "content-disposition",
        "unstructured",
        "one-huge-word",
        "open-comments",
        "nested-comments",
        "escaped-quotes",
    ],
)
def test_huge_header_values_are_cut_before_decoding(header: str) -> None:
    raw = message("Message-ID: <huge@example.org>", header, "Subject: hello")
    msg = parsed_within(raw, 12 * MB)
    assert msg.message_id == "<huge@example.org>"
    assert all(len(value) <= 4_000 for value in msg.headers.values())


def test_a_header_section_of_megabytes_is_cut() -> None:
    raw = message("From: ann@example.org", *(["X-Junk: x"] * 300_000), "Subject: late")
    msg = parsed_within(raw, 16 * MB)
    assert msg.sender == "ann@example.org"
    assert msg.text == "Hello."  # the body survives the cut
    assert any("header section" in defect for defect in msg.defects)


def test_limits_are_generous_for_real_mail() -> None:
    subject = " ".join(["=?utf-8?b?5pel5pys6Kqe44Gu5Lu25ZCN?="] * 60)  # a long CJK subject
    references = " ".join(f"<{n}.thread@mail.example.org>" for n in range(150))
    raw = message(
        "From: a@example.org",
        "Message-ID: <long@example.org>",
        f"Subject: {subject}",
        f"References: {references}",
    )
    msg = parse_message(raw)
    assert msg.subject == "日本語の件名" * 60
    assert len(msg.references) == 150
    assert not msg.defects
    assert MAX_ENCODED_WORDS >= 150 and MAX_RAW_HEADER_CHARS >= 8_000


# --- item 7: senders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_", "sender", "name"),
    [
        # The issue's own: an encoded CR/LF and a colon in the display name.
        (
            "=?utf-8?q?Eve=0D=0ABcc:_victim@evil.test?= <eve@example.org>",
            "eve@example.org",
            "Eve Bcc: victim@evil.test",
        ),
        ("=?utf-8?q?Eve=0D=0A?= <eve@example.org>", "eve@example.org", "Eve"),
        ('"=?utf-8?q?Eve=0D=0ABcc:_victim@evil.test?=" <eve@example.org>', "eve@example.org", None),
        (
            "=?utf-8?b?RXZlDQpCY2M6IHZpY3RpbUBldmlsLnRlc3Q=?= <eve@example.org>",
            "eve@example.org",
            None,
        ),
        ("Eve <eve@example.org>, =?utf-8?q?x=0D=0A?= <x@evil.test>", "eve@example.org", "Eve"),
        ("=?utf-8?q?Eve=0D=0A?= <_victim@evil.test?=>", "", None),
        ("=?utf-8?q?Eve?= <victim@evil.test?=>", "", None),
        ("_victim@evil.test?=", "", ""),
        # An encoded word is never part of an address, though the header classes decode it.
        ("=?utf-8?b?dmljdGltQGV2aWwudGVzdA==?=", "", None),
        ("<=?utf-8?q?victim?=@evil.test>", "", None),
        ("victim@=?utf-8?q?evil.test?=", "", None),
        ("x=?utf-8?q?victim?=@evil.test", "", None),
        ("Nul <nul\x00@example.com>", "", None),
        ("Nul <nul@exa\x00mple.com>", "", None),
        ("<>", "", None),
        ("undisclosed-recipients:;", "", None),
        ('"john doe"@example.org', "", None),
        ("eve@[127.0.0.1]", "", None),
        ("eve@example.org\x85", "eve@example.org", None),  # NEL is white space
        ("eve@-example.org", "", None),
        ("eve@example..org", "", None),
        ("eve@example.org.", "", None),
        ("eve@localhost", "", None),
        (".eve@example.org", "", None),
        ("Ann <ann.o'neil+tag@mail.example.org>", "ann.o'neil+tag@mail.example.org", "Ann"),
        ("Bea <bea@bücher.example>", "bea@bücher.example", "Bea"),
        ("Group: Cy <cy@example.org>;", "cy@example.org", "Cy"),
        ("Dee <DEE@Example.ORG> (work)", "dee@example.org", "Dee"),
    ],
)
def test_the_sender_comes_only_from_a_valid_addr_spec(
    from_: str, sender: str, name: str | None
) -> None:
    msg = parse_message(message(f"From: {from_}", "Subject: hi"))
    assert msg.sender == sender
    if name is not None:
        assert msg.sender_name == name
    assert "\r" not in msg.sender_name and "\n" not in msg.sender_name


def test_reply_to_and_recipients_are_validated_the_same_way() -> None:
    raw = message(
        "From: Ann <ann@example.org>",
        "Reply-To: =?utf-8?q?x=0D=0ABcc:_victim@evil.test?= <_victim@evil.test?=>",
        "To: =?utf-8?q?Eve=0D=0ABcc:_victim@evil.test?= <mentors@program.test>, ok@example.org",
    )
    msg = parse_message(raw)
    assert msg.reply_to is None
    assert msg.recipients == ("mentors@program.test", "ok@example.org")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"Just some words, and no header at all.\r\n",
        b"\x00\x00\x00\x00",
        b"To: mentors@program.test\r\nSubject: no from\r\n\r\nHello.\r\n",
        b"From: Nul <nul\x00@example.com>\r\nSubject: nul\r\n\r\nHello.\r\n",
        b"From:\r\nSubject: empty from\r\n\r\nHello.\r\n",
    ],
    ids=["empty", "blank", "no-headers", "nul-only", "no-from", "nul-in-from", "empty-from"],
)
def test_mail_without_a_readable_sender_has_no_sender_and_says_why(raw: bytes) -> None:
    msg = parse_message(raw)
    assert msg.sender == ""
    assert any("sender" in defect for defect in msg.defects)


# --- item 7: MIME depth and breadth --------------------------------------------------------


def nested_multipart(depth: int) -> bytes:
    lines = ['Content-Type: multipart/mixed; boundary="b0"', ""]
    for level in range(1, depth):
        lines += [f"--b{level - 1}", f'Content-Type: multipart/mixed; boundary="b{level}"', ""]
    lines += [f"--b{depth - 1}", "Content-Type: text/plain", "", "the bottom"]
    lines += [f"--b{level}--" for level in reversed(range(depth))]
    return "\r\n".join(lines).encode()


def nested_rfc822(depth: int) -> bytes:
    head = "Content-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\n"
    return (head * depth + "Content-Type: text/plain\r\n\r\nthe bottom\r\n").encode()


def nested_digest(depth: int) -> bytes:
    """multipart/digest parts default to message/rfc822 (RFC 2046 §5.1.5): no header."""
    lines = ['Content-Type: multipart/digest; boundary="d0"', ""]
    for level in range(1, depth):
        lines += [f"--d{level - 1}", "", f'Content-Type: multipart/digest; boundary="d{level}"', ""]
    lines += [f"--d{depth - 1}", "", "the bottom"]
    lines += [f"--d{level}--" for level in reversed(range(depth))]
    return "\r\n".join(lines).encode()


def nested_base64_rfc822(depth: int) -> bytes:
    """message/rfc822 parts base64-encoded, which RFC 2046 §5.2.1 forbids but clients do."""
    inner = b"From: inner@example.org\r\nContent-Type: text/plain\r\n\r\nthe bottom\r\n"
    for _ in range(depth):
        inner = (
            b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(inner)
        )
    return inner


@pytest.mark.parametrize(
    ("build", "depth"),
    [
        (nested_multipart, 1_000),
        (nested_multipart, 5_000),
        (nested_rfc822, 1_000),
        (nested_rfc822, 5_000),
        (nested_digest, 1_000),
        (nested_base64_rfc822, 12),
    ],
)
def test_deeply_nested_mime_parses_and_reaches_a_person(
    build: Callable[[int], bytes], depth: int
) -> None:
    head = b"From: Nell <nell@example.org>\r\nSubject: deep\r\nMessage-ID: <deep@example.org>\r\n"
    msg = parsed_within(head + build(depth), 40 * MB)
    assert msg.sender == "nell@example.org"
    assert msg.message_id == "<deep@example.org>"
    assert not any("could not be parsed" in defect for defect in msg.defects), msg.defects
    assert classify(msg, PROGRAM).kind is Kind.UNKNOWN  # unplaceable: goes to the coordinator


def test_a_hundred_thousand_parts_are_not_all_built() -> None:
    body = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\nx{n}\r\n" for n in range(100_000))
    raw = message(
        "From: ann@example.org", 'Content-Type: multipart/mixed; boundary="b"', body=body + "--b--"
    )
    # Before the limit: 72 MB and 32 s, and every part's text joined into the body.
    msg = parsed_within(raw, 24 * MB)
    assert msg.sender == "ann@example.org"
    assert any("parts" in defect for defect in msg.defects)


# --- item 6: big bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line_end", "limit_bytes"),
    # One 10 MB line costs more: the email package's parser keeps an unfinished line in
    # a StringIO, at 4 bytes a character.
    [("\r\n", 40 * MB), (" ", 64 * MB)],
    ids=["lines", "one-line"],
)
def test_a_ten_megabyte_body_is_cut_early(line_end: str, limit_bytes: int) -> None:
    body = "Details: " + f"I would like a mentor for my python project.{line_end}" * 230_000
    raw = message("From: ann@example.org", "Subject: Mentor request", body=body)
    assert len(raw) > 10 * MB
    # Before: 103 MB, and the whole 10 MB kept as text and new_text.
    msg = parsed_within(raw, limit_bytes, max_body_chars=10_000_000)
    assert len(msg.text) <= MAX_TEXT_CHARS
    assert len(msg.new_text) <= MAX_NEW_TEXT_CHARS
    assert msg.new_text.startswith("Details: I would like a mentor")
    assert any("cut" in defect for defect in msg.defects)


def test_a_ten_megabyte_html_body_is_cut_before_it_is_parsed() -> None:
    raw = message(
        "From: ann@example.org", "Content-Type: text/html", body="<div><b>word</b>\r\n" * 600_000
    )
    # Before: 48 s in html.parser for 10 MB of tags.
    msg = parsed_within(raw, 32 * MB, max_body_chars=10_000_000)
    assert msg.text.startswith("word")
    assert len(msg.text) <= MAX_TEXT_CHARS


def test_a_ten_megabyte_base64_body_is_cut_before_it_is_decoded() -> None:
    body = base64.encodebytes(b"Details: I need help with python. " * 300_000).decode()
    raw = message("From: ann@example.org", "Content-Transfer-Encoding: base64", body=body)
    # Before: 76 MB (the lines of base64, joined, decoded, then cut).
    msg = parsed_within(raw, 40 * MB, max_body_chars=10_000_000)
    assert msg.new_text.startswith("Details: I need help with python.")


# --- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "clean"),
    [
        ("Ann@Example.ORG", "ann@example.org"),
        ("<ann@example.org>", "ann@example.org"),
        ("a.b-c_d+e@x-y.example.org", "a.b-c_d+e@x-y.example.org"),
        ("josé@exämple.org", "josé@exämple.org"),
        ("_victim@evil.test?=", ""),
        ("a@b", ""),
        ("a@@b.org", ""),
        ("a b@example.org", ""),
        ("a\x00@example.org", ""),
        ("a@exa_mple.org", ""),
        ("a" * 65 + "@example.org", ""),
        ("a@" + "b" * 64 + ".org", ""),
        ("a@" + ".".join(["b" * 60] * 5) + ".org", ""),
        ("a..b@example.org", ""),
        ("a@example.org\u2028", "a@example.org"),  # white space around is dropped
        ("a\u2028b@example.org", ""),
        ("a\u200b@example.org", ""),
    ],
)
def test_clean_address_accepts_only_plain_addresses(address: str, clean: str) -> None:
    assert clean_address(address) == clean


def test_a_message_the_parser_fails_on_still_says_who_wrote_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = parse_module.message_tree  # type: ignore[attr-defined]
    calls: list[int] = []

    def fails_once(data: bytes, limits: object) -> object:
        calls.append(len(data))
        if len(calls) == 1:
            raise RuntimeError("boom\r\nBcc: x")
        return real(data, limits)  # type: ignore[arg-type]

    monkeypatch.setattr(parse_module, "message_tree", fails_once)
    raw = message("From: Ann <ann@example.org>", "Subject: hello", "Message-ID: <m@x.org>")
    msg = parse_message(raw)
    assert (msg.sender, msg.subject, msg.message_id) == ("ann@example.org", "hello", "<m@x.org>")
    assert msg.defects == ("the message could not be parsed (RuntimeError: boom Bcc: x)",)


def test_calendar_parts_are_few_and_small() -> None:
    ics = "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nEND:VCALENDAR\r\n"
    big = "BEGIN:VCALENDAR\r\n" + "X-JUNK:" + "x" * 70 + "\r\n" * 1 + ("X-A:b\r\n" * 150_000)
    parts = [ics] * 20 + [big]
    body = "".join(f"--b\r\nContent-Type: text/calendar\r\n\r\n{part}\r\n" for part in parts)
    raw = message(
        "From: ann@example.org", 'Content-Type: multipart/mixed; boundary="b"', body=body + "--b--"
    )
    msg = parse_message(raw)
    assert len(msg.calendar_parts) == MAX_CALENDAR_PARTS
    big_only = message(
        "From: ann@example.org", 'Content-Type: text/calendar; method="REPLY"', body=big
    )
    assert parse_message(big_only).calendar_parts == ()
