"""TLS for the mail servers: one way to build the client context, one loopback rule.

Certificates are always verified (there is no option to turn that off); ``ca_file`` is a
PEM bundle trusted instead of the system store, for servers signed by a private CA.
A password or an OAuth2 token goes over an unencrypted connection only to a loopback
address, where nothing but this machine can read it.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context; trusts ``ca_file`` instead of the system store.

    Raises OSError or ssl.SSLError when ``ca_file`` cannot be read as PEM certificates.
    """
    if ca_file is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(ca_file))


def plaintext_refusal(table: str, host: str, tls: str, *, sends_secret: bool) -> str:
    """Why this connection must not be made, or "" when it may.

    A secret (password or token) over ``tls = "none"`` is refused unless ``host`` is a
    loopback address.
    """
    if tls != "none" or not sends_secret or is_loopback(host):
        return ""
    return (
        f'[{table}] tls: "none" would send the password or token to {host} unencrypted; '
        f'use "ssl" or "starttls" (only a loopback address may go without TLS)'
    )


def untrusted_certificate(error: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``error`` (its causes), if any."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def untrusted_message(table: str, host: str, error: ssl.SSLCertVerificationError) -> str:
    """The one wording for a server certificate we do not trust."""
    reason = error.verify_message or str(error)
    return (
        f"certificate of {host} not trusted: {reason}; set [{table}] ca_file to the PEM "
        f"file of the CA that signed it"
    )


def check_server_tls(
    table: str, values: dict[str, Any], used: bool, base: Path, fail: Callable[..., Exception]
) -> None:
    """Config check of one mail server's table: makes ``ca_file`` absolute (or None),
    checks it reads as PEM, and applies the plaintext rule. ``fail(table, key, reason,
    example)`` builds the ConfigError raised."""
    ca_file = str(values["ca_file"]).strip()
    values["ca_file"] = (base / ca_file).resolve() if ca_file else None
    if not used:
        return
    if values["ca_file"] is not None:
        try:
            client_context(values["ca_file"])
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise fail(
                table, "ca_file", f"{values['ca_file']} is not a readable PEM file ({reason})"
            ) from None
    if values["auth"] == "oauth2" and not values["username"]:
        raise fail(table, "username", 'is required with auth = "oauth2"', '"mentors@program.org"')
    # IMAP always logs in; SMTP only with a username (else it relays unauthenticated).
    sends_secret = table == "inbox" or values["auth"] == "oauth2" or bool(values["username"])
    refusal = plaintext_refusal(table, values["host"], values["tls"], sends_secret=sends_secret)
    if refusal:
        raise fail(table, "tls", refusal.removeprefix(f"[{table}] tls: "), '"ssl"')
