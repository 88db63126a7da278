"""Signed link tokens: they round-trip, and anything altered, late or misused is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest

from mentordesk.errors import MentordeskError
from mentordesk.tokens import (
    Claims,
    ExpiredToken,
    TamperedToken,
    TokenError,
    WrongPurpose,
    sign,
    verify,
)

SECRET = b"correct horse battery staple, but longer"
NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=14)
ALPHABET = string.ascii_letters + string.digits + "-_"


def claim_token(person: str = "ada@example.org", obj: str = "request:42") -> str:
    return sign(SECRET, purpose="claim", person=person, obj=obj, expires=EXPIRES)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def forge(payload: bytes, secret: bytes = SECRET) -> str:
    """A token made by following the documented format, independently of the module."""
    tag = hmac.digest(secret, b"mentordesk-token-v1\x00" + payload, hashlib.sha256)[:16]
    return f"{b64(payload)}.{b64(tag)}"


# --- good tokens --------------------------------------------------------------------


def test_round_trip() -> None:
    token = claim_token()
    assert verify(SECRET, token, purpose="claim", now=NOW) == Claims(
        purpose="claim", person="ada@example.org", obj="request:42", expires=EXPIRES
    )


def test_token_is_url_safe_and_compact() -> None:
    token = claim_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}", token)  # 128-bit tag
    assert len(token) < 120


def test_format_is_the_documented_one() -> None:
    payload = (
        b'["claim","ada@example.org","request:42",' + str(int(EXPIRES.timestamp())).encode() + b"]"
    )
    assert claim_token() == forge(payload)


def test_expiry_is_cut_to_the_second_and_comes_back_in_utc() -> None:
    in_berlin = EXPIRES.astimezone(timezone(timedelta(hours=1))) + timedelta(microseconds=999_999)
    token = sign(SECRET, purpose="survey", person="p", obj="survey:2026", expires=in_berlin)
    claims = verify(SECRET, token, purpose="survey", now=NOW)
    assert claims.expires == EXPIRES
    assert claims.expires.utcoffset() == timedelta(0)


def test_any_text_round_trips() -> None:
    person, obj = "zoë@bücher.example", 'a.b "c"\n,[]'
    token = sign(SECRET, purpose="calendar", person=person, obj=obj, expires=EXPIRES)
    claims = verify(SECRET, token, purpose="calendar", now=NOW)
    assert (claims.person, claims.obj) == (person, obj)


# --- refused ------------------------------------------------------------------------


def test_every_single_character_change_is_refused() -> None:
    token = claim_token()
    replacements = ALPHABET + ".+/= ~%\x00é\U0001f600"
    for position, original in enumerate(token):
        for replacement in replacements:
            if replacement == original:
                continue
            changed = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(TamperedToken):
                verify(SECRET, changed, purpose="claim", now=NOW)


def test_every_truncation_and_extension_is_refused() -> None:
    token = claim_token()
    for end in range(len(token)):
        with pytest.raises(TamperedToken):
            verify(SECRET, token[:end], purpose="claim", now=NOW)
    for extra in ("A", "=", "==", ".", "\n", " ", "%3D"):
        with pytest.raises(TamperedToken):
            verify(SECRET, token + extra, purpose="claim", now=NOW)


def test_every_bit_flip_is_refused() -> None:
    payload_text, tag_text = claim_token().split(".")
    payload, tag = unb64(payload_text), unb64(tag_text)
    for part, raw in (("payload", payload), ("tag", tag)):
        for bit in range(len(raw) * 8):
            flipped = bytearray(raw)
            flipped[bit // 8] ^= 1 << (bit % 8)
            token = (
                f"{b64(bytes(flipped))}.{tag_text}"
                if part == "payload"
                else f"{payload_text}.{b64(bytes(flipped))}"
            )
            with pytest.raises(TamperedToken):
                verify(SECRET, token, purpose="claim", now=NOW)


def test_another_secret_is_refused() -> None:
    with pytest.raises(TamperedToken):
        verify(b"another program's secret", claim_token(), purpose="claim", now=NOW)


def test_someone_elses_token_cannot_be_rebound() -> None:
    # Person and object are inside the MAC: moving Ada's signature onto Eve's claims fails.
    _, ada_tag = claim_token().split(".")
    eve_payload, _ = claim_token(person="eve@example.org").split(".")
    other_request, _ = claim_token(obj="request:43").split(".")
    for payload in (eve_payload, other_request):
        with pytest.raises(TamperedToken):
            verify(SECRET, f"{payload}.{ada_tag}", purpose="claim", now=NOW)
    claims = verify(SECRET, claim_token(person="eve@example.org"), purpose="claim", now=NOW)
    assert claims.person == "eve@example.org"  # the caller compares this with who clicked


def test_expired() -> None:
    token = claim_token()
    assert verify(SECRET, token, purpose="claim", now=EXPIRES - timedelta(seconds=1))
    for late in (EXPIRES, EXPIRES + timedelta(days=400)):
        with pytest.raises(ExpiredToken) as caught:
            verify(SECRET, token, purpose="claim", now=late)
        assert caught.value.claims.obj == "request:42"
        assert "expired" in str(caught.value)


def test_wrong_purpose() -> None:
    token = claim_token()
    for purpose in ("survey", "calendar", "Claim", "claim ", ""):
        with pytest.raises(WrongPurpose):
            verify(SECRET, token, purpose=purpose, now=NOW)


def test_signature_is_checked_before_purpose_and_expiry() -> None:
    payload, tag = claim_token().split(".")
    tampered = f"{payload}.{'A' if tag[0] != 'A' else 'B'}{tag[1:]}"
    for purpose, now in (("survey", NOW), ("claim", EXPIRES + timedelta(days=1))):
        with pytest.raises(TamperedToken):
            verify(SECRET, tampered, purpose=purpose, now=now)
    # And purpose before expiry: an old survey link used as a claim is the wrong link.
    with pytest.raises(WrongPurpose):
        verify(SECRET, claim_token(), purpose="survey", now=EXPIRES + timedelta(days=1))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b'{"purpose":"claim"}',
        b'["claim","ada@example.org","request:42"]',
        b'["claim","ada@example.org","request:42",1,5]',
        b'["claim","ada@example.org",42,1790000000]',
        b'["claim","ada@example.org","request:42","1790000000"]',
        b'["claim","ada@example.org","request:42",true]',
        b'["claim","ada@example.org","request:42",1.5e9]',
        b'["claim","ada@example.org","request:42",100000000000000000000]',
        b'["claim","ada@example.org","request:42",-100000000000000000000]',
        b'["claim","\xff\xfe","request:42",1790000000]',
    ],
)
def test_signed_payload_of_the_wrong_shape_is_refused(payload: bytes) -> None:
    # Only someone holding the secret could make these; still no exception but TokenError.
    with pytest.raises(TamperedToken):
        verify(SECRET, forge(payload), purpose="claim", now=NOW)


def test_fuzz_raises_nothing_but_token_errors() -> None:
    rng = random.Random(6)
    token = claim_token()
    samples: list[object] = [
        "", ".", "..", "a.", ".a", "a.b.c", "=.=", "A" * 22 + "." + "A" * 22,
        token.replace(".", ""), token + "." + token, token.upper(), token[::-1],
        "\ud800.\udfff", "é." * 50, "\x00" * 64, "A" * 3000, "A" * 1_000_000 + "." + "A" * 22,
        None, 42, b"bytes.token", token.encode(), ["a", "b"],
    ]  # fmt: skip
    pools = [ALPHABET + ".", string.printable, "".join(map(chr, range(0x3000)))]
    for _ in range(2000):
        length = rng.randrange(0, 200)
        pool = rng.choice(pools)
        samples.append("".join(rng.choice(pool) for _ in range(length)))
        raw = rng.randbytes(rng.randrange(0, 120))
        samples.append(f"{b64(raw)}.{b64(rng.randbytes(16))}")
        samples.append(forge(raw, secret=rng.randbytes(8)))
    for sample in samples:
        with pytest.raises(TamperedToken):
            verify(SECRET, cast(str, sample), purpose="claim", now=NOW)


def test_errors_are_safe_to_show_and_form_a_hierarchy() -> None:
    token = claim_token()
    messages = []
    for bad, purpose, now in (
        (token[:-1], "claim", NOW),
        (token, "survey", NOW),
        (token, "claim", EXPIRES),
    ):
        with pytest.raises(TokenError) as caught:
            verify(SECRET, bad, purpose=purpose, now=now)
        assert isinstance(caught.value, MentordeskError)
        messages.append(str(caught.value))
    for message in messages:
        assert SECRET.decode() not in message
        assert token[:20] not in message and token[-10:] not in message
        assert "ada@example.org" not in message
        assert message.endswith(".")


def test_programming_errors_are_not_token_errors() -> None:
    with pytest.raises(ValueError, match="naive"):
        sign(SECRET, purpose="claim", person="p", obj="o", expires=datetime(2026, 3, 6))
    with pytest.raises(ValueError, match="naive"):
        verify(SECRET, claim_token(), purpose="claim", now=datetime(2026, 3, 6))
    with pytest.raises(ValueError, match="secret"):
        sign(b"", purpose="claim", person="p", obj="o", expires=EXPIRES)
    with pytest.raises(ValueError, match="too long"):
        sign(SECRET, purpose="claim", person="p", obj="o" * 2000, expires=EXPIRES)


def test_tokens_are_signed_not_encrypted() -> None:
    # Anyone holding a link can read who and what it is for: put nothing secret in a claim.
    payload = json.loads(unb64(claim_token().split(".")[0]))
    assert payload[:3] == ["claim", "ada@example.org", "request:42"]
