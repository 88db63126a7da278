"""inbox.subjects: one table of reply/forward prefixes, for reading and writing subjects."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mentordesk.inbox.subjects import (
    PREFIXES,
    PrefixKind,
    bare_subject,
    is_forward,
    prefix_kind,
    reply_subject,
    request_tag,
    strip_prefixes,
)

# --- reply_subject ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "number", "expected"),
    [
        ("RV: mentor request", 42, "Re: [MD-0042] mentor request"),
        ("mentor request", 42, "Re: [MD-0042] mentor request"),
        ("mentor request", None, "Re: mentor request"),
        ("Re: [MD-0042] mentor request", 42, "Re: [MD-0042] mentor request"),
        ("RE: Re: [MD-0042] mentor request", 42, "Re: [MD-0042] mentor request"),
        ("[MD-0042] Re: mentor request", 42, "Re: [MD-0042] mentor request"),
        ("Re: AW: Fwd: SV: mentor request", None, "Re: mentor request"),
        ("Re[2]: mentor request", 7, "Re: [MD-0007] mentor request"),
        ("Re^3: Re(2): mentor request", 7, "Re: [MD-0007] mentor request"),
        ("TR : demande de mentor", None, "Re: demande de mentor"),
        ("回复：需要导师", None, "Re: 需要导师"),
        ("İLT: YNT: mentor", None, "Re: mentor"),
        ("Re: [MD-0003] old subject", 42, "Re: [MD-0042] old subject"),
        ("About MD-0042 again", 42, "Re: [MD-0042] About again"),
    ],
)
def test_reply_subject(subject: str, number: int | None, expected: str) -> None:
    assert reply_subject(subject, number) == expected


@pytest.mark.parametrize("subject", ["Re:", "  RE :  ", "Fwd: Re[2]:", "", "[MD-0042]"])
def test_a_subject_that_is_only_a_prefix(subject: str) -> None:
    assert reply_subject(subject) == "Re: Your message"
    assert reply_subject(subject, 42) == "Re: [MD-0042] Your message"


def test_reply_subject_is_one_line() -> None:
    assert reply_subject("Help\r\nBcc: victim@example.org", 1) == (
        "Re: [MD-0001] Help Bcc: victim@example.org"
    )
    assert reply_subject("a\u2028b\x85c\x00d") == "Re: a b c d"


# --- the prefix table ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "bare"),
    [
        ("Re: x", "x"),
        ("RE: FW: x", "x"),
        ("Fwd:Re:x", "x"),
        ("AW: WG: x", "x"),
        ("Antw: Doorst: x", "x"),
        ("SV: VS: VB: VL: x", "x"),
        ("RE: RV: x", "x"),
        ("RES: ENC: x", "x"),
        ("TR: RÉF: x", "x"),
        ("R: RIF: I: x", "x"),
        ("Odp: PD: x", "x"),
        ("YNT: İLT: ILT: x", "x"),
        ("Vá: Továbbítás: x", "x"),
        ("ΑΠ: ΣΧΕΤ: ΠΡΘ: x", "x"),
        ("回复: 转发: 轉寄: x", "x"),
        ("返信: 転送: x", "x"),
        ("Re[2]: x", "x"),
        ("Re(12): x", "x"),
        ("Re^2: x", "x"),
        ("re : x", "x"),
        ("Re: Re: Re: Re: Re: x", "x"),
        ("Re: [MD-3] Re: x", "[MD-3] Re: x"),  # prefixes in front only; bare_subject goes on
    ],
)
def test_strip_prefixes(subject: str, bare: str) -> None:
    assert strip_prefixes(subject) == bare


@pytest.mark.parametrize(
    "subject",
    ["Research: help", "Rezept: Kuchen", "Rev: 2", "Resume attached", "Fwdx: y", "Re-run: x"],
)
def test_words_that_only_start_like_a_prefix(subject: str) -> None:
    assert strip_prefixes(subject) == subject
    assert prefix_kind(subject) is None


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("Re: x", PrefixKind.REPLY),
        ("AW: x", PrefixKind.REPLY),
        ("Fwd: x", PrefixKind.FORWARD),
        ("WG: Re: x", PrefixKind.FORWARD),
        ("Re: WG: x", PrefixKind.REPLY),
        ("TR: x", PrefixKind.FORWARD),
        ("İLT: x", PrefixKind.FORWARD),
        ("转发：x", PrefixKind.FORWARD),
        ("x", None),
    ],
)
def test_prefix_kind(subject: str, kind: PrefixKind | None) -> None:
    assert prefix_kind(subject) is kind
    assert is_forward(subject) is (kind is PrefixKind.FORWARD)


def test_every_table_word_is_recognised_in_any_case() -> None:
    for word, kind in PREFIXES.items():
        for written in {word, word.upper(), word.lower()}:
            if len(written) != len(word):
                continue  # "İLT".lower() adds a combining dot nobody types
            assert strip_prefixes(f"{written}: subject") == "subject", written
            assert prefix_kind(f"{written}[2]: subject") is kind, written


def test_bare_subject_strips_prefixes_and_tags_in_any_order() -> None:
    assert bare_subject("Re: [MD-3] AW: claim") == "claim"
    assert bare_subject("[MD-3] Re: Fwd: pause [MD-3]") == "pause"
    assert bare_subject("Re:  [ md-7 ]   office   hours") == "office hours"
    assert request_tag("Re: [MD-0042] x") == 42


def test_a_long_run_of_spaces_is_read_quickly() -> None:
    subject = "Re:" + " " * 50_000 + "x" + " :" * 10_000
    assert strip_prefixes(subject).startswith("x")
    assert reply_subject(subject).startswith("Re: x")


# --- properties ------------------------------------------------------------------------

_PIECES = [*PREFIXES, ":", "：", " ", "\t", "\r\n", "\n", "[2]", "^2", "[MD-0042]", "MD-7", "x"]


def _check_reply_subject(subject: str, number: int | None) -> None:
    once = reply_subject(subject, number)
    assert "\r" not in once and "\n" not in once
    assert once.startswith("Re: ")
    assert reply_subject(once, number) == once


@given(st.text(), st.none() | st.integers(min_value=0, max_value=10**8))
def test_reply_subject_properties(subject: str, number: int | None) -> None:
    _check_reply_subject(subject, number)


@given(st.lists(st.sampled_from(_PIECES), max_size=12), st.none() | st.integers(0, 9999))
def test_reply_subject_properties_on_prefix_soup(pieces: list[str], number: int | None) -> None:
    _check_reply_subject("".join(pieces), number)


def test_reply_subject_properties_on_random_subjects() -> None:
    # The same properties without hypothesis's search, over a fixed sample.
    rng = random.Random(3834)
    for _ in range(3000):
        subject = "".join(rng.choice(_PIECES) for _ in range(rng.randrange(10)))
        _check_reply_subject(subject, rng.choice([None, rng.randrange(10_000)]))
