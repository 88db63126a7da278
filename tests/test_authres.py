"""Authentication-Results (RFC 8601) reading for the optional sender check."""

from __future__ import annotations

import pytest

from mentordesk.inbox.authres import sender_authenticated

GOOD = (
    "mx.program.test; dkim=pass header.d=example.com header.s=s1; "
    "spf=pass smtp.mailfrom=bounce.example.com; dmarc=pass (p=REJECT) header.from=example.com"
)


@pytest.mark.parametrize(
    ("header", "domain", "server", "expected"),
    [
        (GOOD, "example.com", "mx.program.test", True),
        (GOOD, "example.com", "", True),
        (GOOD, "example.com", "other.server", False),  # not our server's verdict
        (GOOD, "evil.test", "mx.program.test", False),  # DMARC passed for someone else
        (GOOD.replace("dmarc=pass", "dmarc=fail"), "example.com", "", False),
        ("mx.program.test; dkim=pass header.d=mail.example.com", "example.com", "", True),
        ("mx.program.test; spf=pass smtp.mailfrom=other.test", "example.com", "", False),
        ("mx.program.test; spf=softfail smtp.mailfrom=example.com", "example.com", "", False),
        ("mx.program.test; none", "example.com", "", False),
        ("", "example.com", "", False),
        ("garbage;;;==", "example.com", "", False),
    ],
)
def test_sender_authenticated(header: str, domain: str, server: str, expected: bool) -> None:
    assert sender_authenticated(header, domain, server) is expected


# --- RFC 8601 grammar: comments, quoted strings, repeats (issue 14, item 5) ---------------


@pytest.mark.parametrize(
    "header",
    [
        # A comment is no statement: the ";" inside it separates nothing.
        "mx.program.test; dmarc=fail (x; dmarc=pass) header.from=victim.com",
        "mx.program.test; dmarc=fail (x; dmarc=pass header.from=victim.com)",
        "mx.program.test; dmarc=fail ((nested; dmarc=pass) x; dmarc=pass) header.from=victim.com",
        "mx.program.test; dmarc=fail (\\); dmarc=pass) header.from=victim.com",
        # An unclosed comment hides the rest.
        "mx.program.test; dmarc=fail (x; dmarc=pass header.from=victim.com",
        # A quoted string is one value, whatever it holds.
        'mx.program.test; dmarc=fail reason="x; dmarc=pass" header.from=victim.com',
        'mx.program.test; dkim=fail reason="a\\"; dkim=pass header.d=victim.com" header.d=x',
        # A method that reports twice must pass twice.
        "mx.program.test; dmarc=pass header.from=victim.com; dmarc=fail header.from=victim.com",
        # A pass that names no identity, or the wrong one, vouches for nothing.
        "mx.program.test; dmarc=pass",
        "mx.program.test; dkim=pass header.s=s1",
        "mx.program.test; dmarc=pass header.from=evil.test (victim.com)",
        "mx.program.test; dmarc=pass header.from=(victim.com)evil.test",
        # What does not parse counts for nothing.
        "mx.program.test; dmarc=pass header.from=victim.com junk",
        "mx.program.test; dmarc pass header.from=victim.com",
        "mx.program.test; dmarc=pass header.from=victim.com, dmarc=pass",
        "mx.program.test; =pass header.from=victim.com",
        "(victim.com) ; dmarc=pass header.from=victim.com",
        "; dmarc=pass header.from=victim.com",
    ],
)
def test_only_a_real_statement_passes(header: str) -> None:
    assert sender_authenticated(header, "victim.com", "") is False


@pytest.mark.parametrize(
    "header",
    [
        "mx.program.test; dmarc=pass (p=REJECT; sp=NONE) header.from=victim.com",
        "mx.program.test 1; dmarc=pass header.from=victim.com",  # a version after the id
        '"mx.program.test"; dmarc=pass header.from=victim.com',  # a quoted authserv-id
        "MX.Program.Test; DMARC=Pass Header.From=Victim.COM",  # keywords in any case
        "mx.program.test;\r\n\tdkim=pass\r\n\theader.d=victim.com;\r\n\tspf=fail",
        "mx.program.test; dkim/1=pass header.d=victim.com",  # a method version
        'mx.program.test; dkim=pass reason="good; key" header.i=@mail.victim.com',
        "mx.program.test; dkim=fail header.d=other.test; dkim=pass header.d=victim.com",
        "mx.program.test; spf=pass smtp.mailfrom=bounce@victim.com",
    ],
)
def test_real_passes_still_pass(header: str) -> None:
    assert sender_authenticated(header, "victim.com", "mx.program.test") is True
