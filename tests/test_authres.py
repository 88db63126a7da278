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
