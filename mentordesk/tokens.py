"""Signed tokens for the links in emails: claim, survey, calendar feed (SPEC §6).

A token says "``person`` may do ``purpose`` to ``obj`` until ``expires``", signed with
the program's secret so that nobody can change any part of it or make one up:

    <payload>.<tag>

``payload`` is the base64url (unpadded) UTF-8 JSON ``[purpose, person, obj, expires]``
with ``expires`` in whole seconds since the Unix epoch; ``tag`` is the base64url HMAC-
SHA256 of a version label and the payload, cut to 128 bits. Both parts use only
``A-Z a-z 0-9 - _``, so a token goes into a URL as it is.

Checks run in this order: shape and signature (anything wrong → :class:`TamperedToken`),
then purpose (:class:`WrongPurpose`), then expiry (:class:`ExpiredToken`). The payload is
parsed only once its signature is good, so a forger's bytes never reach the JSON parser.

A page whose button changes something carries a second, shorter token in a hidden form
field: :func:`form_token`, the HMAC of the link's claims under another label. The link
alone (which a scanner, a forwarded email or another site may have) is then not enough
to claim: the POST must come from the page itself (:func:`check_form_token`).

    MentordeskError
    └── TokenError          a link's token cannot be used
        ├── TamperedToken   malformed, altered or signed with another secret
        │   └── ForgedForm  a button's POST without the form token from our page
        ├── WrongPurpose    genuine, but made for another kind of link
        └── ExpiredToken    genuine, but past its expiry (``claims`` says what it was for)

Every message is safe to show on a web page: no secret, no token, no internals.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import ExpiredToken, ForgedForm, TamperedToken, TokenError, WrongPurpose

__all__ = [
    "FORM_FIELD",
    "Claims",
    "ExpiredToken",
    "ForgedForm",
    "Links",
    "TamperedToken",
    "TokenError",
    "WrongPurpose",
    "check_form_token",
    "form_token",
    "sign",
    "verify",
]

# Bumped if the format ever changes, so that old tokens fail the signature check
# instead of being read the wrong way.
_VERSION_LABEL = b"mentordesk-token-v1\x00"
# Another label, so that a form token is never a link's tag, nor the other way round.
_FORM_LABEL = b"mentordesk-form-v1\x00"
#: The name of the hidden field that carries the form token.
FORM_FIELD = "form_token"
_TAG_BYTES = 16  # HMAC-SHA256 cut to 128 bits (RFC 2104 §5: truncation to ≥ half is fine)
# Real tokens are a few hundred characters; longer input is refused before any work.
_MAX_TOKEN_CHARS = 2048
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Claims:
    """What a verified token grants: ``person`` may do ``purpose`` to ``obj`` until ``expires``."""

    purpose: str  # e.g. "claim", "survey", "calendar"
    person: str  # the email address the link was sent to
    obj: str  # what it acts on, e.g. "request:42"
    expires: datetime  # aware, UTC, whole seconds


def sign(secret: bytes, *, purpose: str, person: str, obj: str, expires: datetime) -> str:
    """A URL-safe token for these claims; ``expires`` (aware) is cut to the whole second.

    Raises ValueError for a naive ``expires``, an empty secret, or claims so long that
    :func:`verify` would refuse the token (over 2048 characters).
    """
    _check_secret(secret)
    if expires.tzinfo is None:
        raise ValueError("naive datetime given as a token expiry; pass an aware UTC datetime")
    payload = json.dumps(
        [purpose, person, obj, int(expires.replace(microsecond=0).timestamp())],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    token = f"{_encode(payload)}.{_encode(_tag(secret, payload))}"
    if len(token) > _MAX_TOKEN_CHARS:
        raise ValueError(f"token claims too long: {len(token)} > {_MAX_TOKEN_CHARS} characters")
    return token


def verify(secret: bytes, token: str, *, purpose: str, now: datetime) -> Claims:
    """The claims of ``token`` if it is genuine, made for ``purpose`` and not expired at ``now``.

    Raises :class:`TamperedToken`, :class:`WrongPurpose` or :class:`ExpiredToken` (checked
    in that order) and nothing else, whatever ``token`` holds.
    """
    _check_secret(secret)
    if now.tzinfo is None:
        raise ValueError("naive datetime given to verify; pass an aware UTC datetime")
    claims = _authentic_claims(secret, token)
    if claims.purpose != purpose:
        raise WrongPurpose(
            "This link was made for something else. Please use the link from the email "
            "that asked for this step."
        )
    if now >= claims.expires:
        raise ExpiredToken(
            f"This link expired on {claims.expires:%Y-%m-%d at %H:%M} UTC. "
            "Please ask for a new one by replying to the email it came in.",
            claims,
        )
    return claims


def _authentic_claims(secret: bytes, unsafe_token: object) -> Claims:
    """Claims of a token whose signature checks out; any other input → TamperedToken."""
    refused = TamperedToken(
        "This link is not valid. It may have been cut short or changed on the way: "
        "please open it exactly as it appears in the email."
    )
    if (
        not isinstance(unsafe_token, str)
        or len(unsafe_token) > _MAX_TOKEN_CHARS
        or not _TOKEN_SHAPE.fullmatch(unsafe_token)
    ):
        raise refused
    unsafe_payload_text, unsafe_tag_text = unsafe_token.split(".")
    unsafe_payload = _decode(unsafe_payload_text)
    unsafe_tag = _decode(unsafe_tag_text)
    if unsafe_payload is None or unsafe_tag is None:
        raise refused
    if not hmac.compare_digest(unsafe_tag, _tag(secret, unsafe_payload)):
        raise refused
    payload = unsafe_payload  # signed by us: from here on it is our own writing
    try:
        purpose, person, obj, expires = json.loads(payload.decode("utf-8"))
        if not all(isinstance(text, str) for text in (purpose, person, obj)):
            raise TypeError("a claim is not text")
        if type(expires) is not int:  # bool is an int too, and not a time
            raise TypeError("expiry is not whole seconds")
        expires_at = datetime.fromtimestamp(expires, UTC)
    except (ValueError, TypeError, OverflowError, OSError, RecursionError):
        # Only reachable with a payload we signed in another shape (or a leaked secret).
        raise refused from None
    return Claims(purpose=purpose, person=person, obj=obj, expires=expires_at)


def form_token(secret: bytes, claims: Claims) -> str:
    """The hidden field for the page of the link ``claims`` came from (22 URL-safe chars).

    Bound to the purpose, person, object and expiry of that very link.
    """
    _check_secret(secret)
    return _encode(_form_tag(secret, claims))


def check_form_token(secret: bytes, unsafe_form_token: object, claims: Claims) -> None:
    """Raise :class:`ForgedForm` unless ``unsafe_form_token`` is the page's own."""
    _check_secret(secret)
    unsafe_tag = (
        _decode(unsafe_form_token)
        if isinstance(unsafe_form_token, str) and len(unsafe_form_token) <= 64
        else None
    )
    if unsafe_tag is None or not hmac.compare_digest(unsafe_tag, _form_tag(secret, claims)):
        raise ForgedForm(
            "This button only works on our own page. Nothing was changed: please open the "
            "link from the email again and press the button there."
        )


def _form_tag(secret: bytes, claims: Claims) -> bytes:
    payload = json.dumps(
        [claims.purpose, claims.person, claims.obj, int(claims.expires.timestamp())],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    return hmac.digest(secret, _FORM_LABEL + payload, hashlib.sha256)[:_TAG_BYTES]


def _tag(secret: bytes, payload: bytes) -> bytes:
    return hmac.digest(secret, _VERSION_LABEL + payload, hashlib.sha256)[:_TAG_BYTES]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes | None:
    """Bytes of unpadded base64url ``text``, or None unless it is their one canonical spelling.

    The canonical check matters: the last character carries spare bits the decoder
    ignores, so without it several spellings would name the same token.
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _encode(raw) == text else None


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or not secret:
        raise ValueError("the token signing secret is empty; set it in the environment")


class Links:
    """Makes the signed links in emails: ``links(purpose, person, obj, now)`` → URL.

    Each link is valid for ``lifetime`` from ``now`` and is bound to one person and one
    object (SPEC §6); the web endpoint verifies it with the same secret.
    """

    def __init__(self, secret: bytes, base_url: str, lifetime: timedelta) -> None:
        self._secret = secret
        self._base_url = base_url.rstrip("/")
        self.lifetime = lifetime

    def __call__(self, purpose: str, person: str, obj: str, now: datetime) -> str:
        token = sign(
            self._secret, purpose=purpose, person=person, obj=obj, expires=now + self.lifetime
        )
        return f"{self._base_url}/{purpose}/{token}"
