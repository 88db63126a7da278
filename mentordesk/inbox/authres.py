"""Did the receiving server authenticate the sender? (RFC 8601 Authentication-Results)

Optional (``[inbox] require_authentication``): with it on, mail whose From domain did
not pass DMARC — or, where the server runs no DMARC check, aligned DKIM or SPF — is
not acted upon, because anyone can write any From address. Only the header added by our
own receiving server counts (``authserv_id``; the topmost header otherwise), since
every other Authentication-Results header was written by someone we do not know.

The header is read by its grammar (RFC 8601 §2.2), comments and quoted strings
included: ``dmarc=fail (x; dmarc=pass) header.from=victim.com`` is one DMARC fail with a
comment, not a fail and then a pass. What does not parse counts for nothing, and a
method that reports more than once must pass every time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Result", "parse_results", "sender_authenticated"]

# RFC 2045 §5.1 tspecials and white space end a token; "." and "@" do not here, so that
# "header.from" and "user@example.com" are one token each (RFC 8601 §2.2 pvalue).
_SPECIALS = frozenset('()<>,;:\\"/[]?= \t\r\n')
# Identities (RFC 8601 §2.7) that name the domain each method vouches for, best first.
_IDENTITIES = {
    "dmarc": ("header.from",),
    "dkim": ("header.d", "header.i"),
    "spf": ("smtp.mailfrom",),
}


# A token: its text, and whether it is one of the specials ";", "=", "/" (or a stray one).
_Token = tuple[str, bool]


@dataclass(frozen=True)
class Result:
    """One resinfo (RFC 8601 §2.2): ``dkim=pass header.d=example.com``."""

    method: str  # lower-case, without a version
    result: str  # lower-case
    properties: dict[str, str] = field(default_factory=dict)  # "header.d" → value


def sender_authenticated(
    authentication_results: str, from_domain: str, authserv_id: str = ""
) -> bool:
    """True when our server's Authentication-Results vouches for ``from_domain``."""
    if not authentication_results or not from_domain:
        return False
    parsed = parse_results(authentication_results)
    if parsed is None:
        return False
    server, results = parsed
    if authserv_id and server.lower() != authserv_id.lower():
        return False
    verdicts: dict[str, list[bool]] = {}
    for result in results:
        if result.method in _IDENTITIES:
            verdicts.setdefault(result.method, []).append(_passed(result, from_domain))
    if "dmarc" in verdicts:
        return all(verdicts["dmarc"])
    return any(verdicts.get("dkim", [])) or any(verdicts.get("spf", []))


def _passed(result: Result, from_domain: str) -> bool:
    """A pass for an identity aligned with ``from_domain``; no identity is no pass."""
    identity = next(
        (
            result.properties[name]
            for name in _IDENTITIES[result.method]
            if name in result.properties
        ),
        "",
    )
    return result.result == "pass" and bool(identity) and _aligned(identity, from_domain)


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment (RFC 7489 §3.1): same organisational domain, roughly."""
    domain = domain.lower().rsplit("@", 1)[-1].strip(".")
    from_domain = from_domain.lower().strip(".")
    return (
        domain == from_domain
        or domain.endswith("." + from_domain)
        or (from_domain.endswith("." + domain))
    )


def parse_results(value: str) -> tuple[str, list[Result]] | None:
    """(authserv-id, results) of an Authentication-Results value; None when it has no
    authserv-id. Statements that do not parse are left out."""
    statements = _statements(value)
    head = statements[0]
    if not head or head[0][1]:
        return None
    results = []
    for tokens in statements[1:]:
        result = _result(tokens)
        if result is not None:
            results.append(result)
    return head[0][0], results


def _result(tokens: list[_Token]) -> Result | None:
    """``method [/ version] = result [reason = value] [ptype.property = pvalue ...]``."""
    if len(tokens) >= 3 and tokens[1] == ("/", True) and not tokens[2][1]:
        tokens = tokens[:1] + tokens[3:]  # the method version (RFC 8601 §2.2) says nothing here
    if not _assignment(tokens):
        return None
    properties: dict[str, str] = {}
    rest = tokens[3:]
    while _assignment(rest):
        name = rest[0][0].lower()
        if name != "reason" and "." in name:
            properties.setdefault(name, rest[2][0])
        rest = rest[3:]
    if rest:
        return None  # something that is no property: trust none of it
    return Result(tokens[0][0].lower(), tokens[2][0].lower(), properties)


def _assignment(tokens: list[_Token]) -> bool:
    """Whether ``tokens`` start with ``word = word``."""
    return len(tokens) >= 3 and not tokens[0][1] and tokens[1] == ("=", True) and not tokens[2][1]


def _statements(value: str) -> list[list[_Token]]:
    """The tokens of each ";"-separated part of ``value``, comments left out."""
    statements: list[list[_Token]] = [[]]
    for token in _tokens(value):
        if token == (";", True):
            statements.append([])
        else:
            statements[-1].append(token)
    return statements


def _tokens(value: str) -> Iterator[_Token]:
    """Words, quoted strings (their text) and specials; comments
    (RFC 5322 §3.2.2, nested, with quoted pairs) and white space are skipped. Linear."""
    at, end = 0, len(value)
    while at < end:
        char = value[at]
        if char in " \t\r\n":
            at += 1
        elif char == "(":
            depth = 0
            while at < end:
                if value[at] == "\\":
                    at += 1
                elif value[at] == "(":
                    depth += 1
                elif value[at] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                at += 1
            at += 1  # past ")" (or the end: an unclosed comment hides the rest)
        elif char == '"':
            text = []
            at += 1
            while at < end and value[at] != '"':
                if value[at] == "\\" and at + 1 < end:
                    at += 1
                text.append(value[at])
                at += 1
            at += 1
            yield "".join(text), False
        elif char in _SPECIALS:
            yield char, True  # ";", "=", "/"; any other makes its statement unreadable
            at += 1
        else:
            start = at
            while at < end and value[at] not in _SPECIALS:
                at += 1
            yield value[start:at], False
