"""Generated hostile mail for the daemon-level suite (``test_hostile_daemon.py``).

Hypothesis draws what each message holds; ``generate`` collects them into a list (the
test then APPENDs them all to the real mailbox). Each message has a kind that says what
the daemon must do with it, and a token ``hmNNNNN`` at the start of its Subject, so that
whatever comes out can be traced back to what went in:

- ``request`` / ``enrollment``: a form whose ``Name:`` and whose From and Reply-To display
  names are RFC 2047 words smuggling CR/LF, a second address, ":" and "<", NUL and other
  controls, in good, bad and unknown charsets; the sender's address is unique and plain.
  Placed: answered at that address, nobody else told.
- ``unplaceable``: any From (injections, raw controls, NUL, none readable), a hostile
  subject after the token, bodies huge, deeply nested or many-parted, mislabelled and
  broken in their transfer encoding. The coordinator hears of each exactly once.
- ``no-from``: no From at all; the coordinator hears of it once.
- ``silent``: an auto-reply (RFC 3834); nobody is written to.

One message in ten reuses the Message-ID of an earlier one (different content): it is
handled on its own all the same.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from .test_hostile_properties import (
    CHARSETS,
    INJECTIONS,
    RAW,
    encoded_word,
    from_values,
    quopri_body,
)

PROGRAM = "mentors@program.test"
CONTROLS = ["a\x00b", "a\rb", "\x01\x7f"]
TOKEN_FORMAT = "hm{:05d}"

ENROLL_FORM = (
    "Name: {name}\nSkills: Python, JS, career advice\nTimezone: Berlin\n"
    "Availability: Tue 18:00-20:00, Sat 10:00-12:00\nCapacity: 3\nAbout: {about}\n"
)
REQUEST_FORM = (
    "Name: {name}\nSkills: python\nTimezone: PST\nAvailability: weekdays 18:00-20:00\n"
    "Details: I'd love a review of my first project. {about}\n"
)
# Text in bodies that is no form (no "Details:", "Capacity:" ... that would place it).
WORDS = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30).map(
    lambda text: text.replace(":", " ")
)

_words_smuggling = st.builds(
    encoded_word,
    st.sampled_from(CHARSETS),
    st.lists(st.sampled_from(INJECTIONS + RAW), min_size=1, max_size=4).map("".join),
    st.booleans(),
)
# A display name or field value: encoded words (the attack) between plain words.
hostile_names = st.lists(
    st.one_of(_words_smuggling, st.sampled_from(["Eve", "Ann", "Bo", "Zoë", "O'Neil"])),
    min_size=1,
    max_size=4,
).map(" ".join)
hostile_subjects = st.one_of(
    st.lists(st.one_of(_words_smuggling, st.sampled_from(RAW), WORDS), max_size=6).map(" ".join),
    st.tuples(_words_smuggling, st.integers(1, 3_000)).map(lambda p: " ".join([p[0]] * p[1])),
)


@st.composite
def body_texts(draw: st.DrawFn, big: int) -> str:
    unit = draw(st.one_of(st.sampled_from(INJECTIONS + RAW), WORDS))
    size = draw(st.sampled_from([0, 10, 100, 1_000, 10_000, 50_000, 0, 10, 100, big]))
    return draw(WORDS) + " words " + unit * (size // max(len(unit), 1))


@st.composite
def leaves(draw: st.DrawFn, big: int) -> str:
    """One part: a type, charset and transfer encoding, maybe wrong, maybe broken."""
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream",
                                  "message/rfc822", "text/plain; format=flowed"]))  # fmt: skip
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(["", "8bit", "base64", "quoted-printable", "bogus"]))
    data = draw(body_texts(big)).encode("utf-8", "surrogateescape")
    if encoding == "base64" and draw(st.booleans()):
        body = base64.encodebytes(data).decode("ascii")
    elif encoding == "quoted-printable" and draw(st.booleans()):
        body = quopri_body(data)
    else:
        body = data.decode("ascii", "surrogateescape")
    lines = [f"Content-Type: {ctype}; charset={charset}"]
    if encoding:
        lines.append(f"Content-Transfer-Encoding: {encoding}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


@st.composite
def bodies(draw: st.DrawFn, big: int) -> str:
    """A MIME body (with its Content-Type lines): a leaf, parts side by side, thousands
    of parts, or a chain nested up to a thousand deep."""
    shape = draw(st.sampled_from(["leaf", "leaf", "mixed", "deep", "deep-rfc822", "many"]))
    leaf = draw(leaves(big))
    if shape == "leaf":
        return leaf
    if shape == "mixed":
        parts = [leaf, *draw(st.lists(leaves(big), max_size=3))]
        boundary = draw(st.sampled_from(["b", "=?utf-8?q?b?=", "b\r\nBcc: x", ""]))
        inner = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
        return f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n{inner}'
    if shape == "many":
        count = draw(st.sampled_from([10, 600, 2_000]))
        inner = "".join(f"--b\r\n{leaf[:100]}\r\n" for _ in range(count))
        return f'Content-Type: multipart/mixed; boundary="b"\r\n\r\n{inner}--b--\r\n'
    depth = draw(st.sampled_from([30, 101, 1_000]))
    if shape == "deep-rfc822":
        return "Content-Type: message/rfc822\r\n\r\nSubject: x\r\n" * depth + leaf
    head = "".join(
        f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n' for n in range(depth)
    )
    return head + leaf


@dataclass(frozen=True)
class Hostile:
    """One generated message before it is numbered: ``{token}`` and ``{address}`` in
    its text are filled in by ``raw``."""

    kind: str  # request | enrollment | unplaceable | no-from | silent
    head: tuple[str, ...]  # header lines, From and Subject among them (Message-ID added)
    body: str  # with its Content-Type lines, or after an empty line

    def raw(self, n: int, message_id: str) -> bytes:
        token = TOKEN_FORMAT.format(n)
        head = [
            line.replace("{token}", token).replace("{address}", address(n)) for line in self.head
        ]
        text = "\r\n".join([*head, f"Message-ID: {message_id}", self.body])
        return text.encode("utf-8", "surrogateescape")


def address(n: int) -> str:
    """The sender of a placed message: unique, plain."""
    return f"p{n:05d}@example.net"


@st.composite
def placed(draw: st.DrawFn, kind: str) -> Hostile:
    name = draw(hostile_names)
    head = [f"From: {name} <{{address}}>", f"To: {PROGRAM}"]
    phrase = "Mentor request" if kind == "request" else "Mentor enrollment"
    head.append(f"Subject: {phrase} {{token}} {draw(hostile_subjects)}")
    if draw(st.booleans()):
        head.append(f"Reply-To: {draw(hostile_names)} <{{address}}>")
    form = REQUEST_FORM if kind == "request" else ENROLL_FORM
    text = form.format(name=draw(hostile_names), about=draw(hostile_names))
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "us-ascii"]))
    data = text.encode(charset, "replace").decode("ascii", "surrogateescape")
    body = f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    return Hostile(kind, tuple(head), body + data.replace("\n", "\r\n"))


@st.composite
def unplaceable(draw: st.DrawFn, kind: str, big: int) -> Hostile:
    # The Subject comes first: a From of 20,000 words may push what follows out of the
    # header section the daemon reads, and the token must reach the coordinator.
    # The mark of an auto-reply comes before anything (a raw line break in the Subject
    # ends the header section).
    head = ["Auto-Submitted: auto-replied"] if kind == "silent" else []
    head.append(f"Subject: {{token}} {draw(hostile_subjects)}")
    if kind != "no-from":
        head.append(f"From: {draw(from_values())}")
    for name in draw(st.lists(st.sampled_from(["To", "Cc", "Reply-To", "Comments"]), unique=True)):
        head.append(f"{name}: {draw(from_values() if name != 'Comments' else hostile_subjects)}")
    if draw(st.integers(0, 9)) == 0:  # a NUL or a bare CR in the head
        head.append("X-Note: " + draw(st.sampled_from(CONTROLS)))
    return Hostile(kind, tuple(head), draw(bodies(big)))


# Out of every 20 messages: what each kind's share is (requests need mentors to be
# invited, so a few enroll).
SHARES = {"request": 7, "unplaceable": 8, "no-from": 2, "silent": 1, "enrollment": 2}


def kind_strategy(kind: str, big: int) -> st.SearchStrategy[Hostile]:
    return placed(kind) if kind in ("request", "enrollment") else unplaceable(kind, big)


def generate(count: int, big: int = 200_000) -> list[Hostile]:
    """``count`` messages from Hypothesis, each kind its share (fixed seeds: the same
    list every run), interleaved."""
    by_kind = {
        kind: _collect(kind_strategy(kind, big), -(-count * share // 20))
        for kind, share in SHARES.items()
    }
    mixed = [m for group in zip(*by_kind.values(), strict=False) for m in group]
    rest = [m for group in by_kind.values() for m in group[len(mixed) // len(SHARES) :]]
    return (mixed + rest)[:count]


def _collect(strategy: st.SearchStrategy[Hostile], count: int) -> list[Hostile]:
    found: list[Hostile] = []
    attempt = 0
    while len(found) < count:

        @seed(attempt)
        @settings(
            max_examples=count - len(found),
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def collect(message: Hostile) -> None:
            found.append(message)

        collect()
        attempt += 1
    return found[:count]
