"""Did the receiving server authenticate the sender? (RFC 8601 Authentication-Results)

Optional (``[inbox] require_authentication``): with it on, mail whose From domain did
not pass DMARC — or, where the server runs no DMARC check, aligned DKIM or SPF — is
not acted upon, because anyone can write any From address. Only the header added by our
own receiving server counts (``authserv_id``; the topmost header otherwise), since
every other Authentication-Results header was written by someone we do not know.
"""

from __future__ import annotations

import re

_RESULT = re.compile(
    r"\b(?P<method>dmarc|dkim|spf)\s*=\s*(?P<result>[a-z]+)(?P<props>[^;]*)", re.IGNORECASE
)
_PROP = re.compile(r"\b(header\.from|header\.d|header\.i|smtp\.mailfrom)\s*=\s*([^\s;()]+)", re.I)


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment (RFC 7489 §3.1): same organisational domain, roughly."""
    domain = domain.lower().rsplit("@", 1)[-1].strip(".")
    from_domain = from_domain.lower().strip(".")
    return (
        domain == from_domain
        or domain.endswith("." + from_domain)
        or (from_domain.endswith("." + domain))
    )


def sender_authenticated(
    authentication_results: str, from_domain: str, authserv_id: str = ""
) -> bool:
    """True when our server's Authentication-Results vouches for ``from_domain``."""
    if not authentication_results or not from_domain:
        return False
    server, _, results = authentication_results.partition(";")
    if authserv_id and server.strip().split()[0:1] != [authserv_id]:
        return False
    verdicts: dict[str, bool] = {}
    for match in _RESULT.finditer(results):
        method, result = match.group("method").lower(), match.group("result").lower()
        props = dict((k.lower(), v) for k, v in _PROP.findall(match.group("props")))
        identity = (
            props.get("header.from")
            or props.get("header.d")
            or props.get("header.i")
            or props.get("smtp.mailfrom")
            or ""
        )
        passed = result == "pass" and (not identity or _aligned(identity, from_domain))
        verdicts[method] = verdicts.get(method, False) or passed
    if "dmarc" in verdicts:
        return verdicts["dmarc"]
    return verdicts.get("dkim", False) or verdicts.get("spf", False)
