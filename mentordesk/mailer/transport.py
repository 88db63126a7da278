"""Hands finished messages (bytes) to the world: an SMTP server, or a local Maildir.

``Transport`` is the seam: the outbox calls ``send`` and gets either success or one of

    DeliveryError
    ├── TemporaryDeliveryError   keep the message, retry with back-off
    └── PermanentDeliveryError   stop; ``.recipients`` are the refused addresses

How SMTP replies map onto them (RFC 5321 §4.2.1: the first digit decides):

    4xx to anything (MAIL, RCPT, DATA), connection refused, reset
    or timed out, server disconnected                            → Temporary
    5xx to MAIL FROM or to DATA                                  → Permanent(all recipients)
    5xx to RCPT TO for every recipient                           → Permanent(those)
    RCPT TO refused for some recipients only                     → the others get the
                                                                    message, then
                                                                    Permanent(the refused)
    5xx to EHLO, STARTTLS or AUTH (our setup, not the message)   → Temporary

The partial case is the one place where a 4xx RCPT refusal is reported as permanent: the
message is already delivered to the accepted recipients, and a retry of the whole message
would deliver it to them twice. mentordesk's emails have a single recipient, so in
practice the partial case does not arise.

No password appears in any message, log line or repr here.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import re
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import aiosmtplib

from ..config import SmtpConfig
from ..errors import (
    DeliveryError,
    LoginRefused,
    OAuthError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from ..oauth import shared_keeper
from ..tls import client_context, plaintext_refusal, untrusted_certificate, untrusted_message

__all__ = ["MaildirTransport", "SmtpTransport", "Transport", "open_transport"]

log = logging.getLogger(__name__)

# How long close() waits for a connection to be closed for good after QUIT.
_CLOSE_WAIT_S = 2.0

# An envelope address as we accept to put on the wire: printable ASCII without spaces or
# angle brackets, with an "@". Non-ASCII mailboxes would need SMTPUTF8 (RFC 6531).
_ADDRESS = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+")


class Transport(Protocol):
    """Delivers one serialised message (CRLF line ends, 7-bit) to an envelope."""

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Deliver ``message`` from ``sender`` (the reverse-path; "" for the null one)
        to ``recipients``. Raises TemporaryDeliveryError or PermanentDeliveryError."""
        ...

    async def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""
        ...


def open_transport(config: SmtpConfig) -> Transport:
    """The transport ``[smtp] kind`` asks for. Opens nothing until the first send."""
    if config.kind == "smtp":
        return SmtpTransport(config)
    if config.kind == "maildir":
        return MaildirTransport(config)
    raise ValueError(f'[smtp] kind must be "smtp" or "maildir", not {config.kind!r}')


class _Dropped(Exception):
    """The connection closed before DATA began: the server accepted nothing yet."""

    def __init__(self, error: aiosmtplib.SMTPException) -> None:
        super().__init__(str(error))
        self.error = error


class SmtpTransport:
    """Sends through one SMTP connection that stays open between messages.

    Sends on one transport are serialised by a lock. A connection the server closed while
    idle is noticed on the next send (a disconnect, or a 421 answer) and that send
    reconnects and tries once more — only when the server had not yet seen DATA, so the
    retry can never deliver a message twice. A bad sender or an empty recipient list is
    a bug and raises ValueError.
    ``tls``: "ssl" is implicit TLS (RFC 8314, port 465), "starttls" upgrades a plain
    connection (RFC 3207, port 587) and fails if the server cannot, "none" never uses
    TLS. ``tls_context`` replaces the system's trust store (tests use it).
    """

    def __init__(
        self,
        config: SmtpConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self._config = config
        self._where = f"{config.host}:{config.port}"
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._smtp: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        # XOAUTH2: the token last handed to aiosmtplib, and one the server refused.
        oauth = config.oauth if config.auth == "oauth2" else None
        self._keeper = shared_keeper(oauth) if oauth is not None else None
        self._token = ""
        self._refused_token = ""

    def __repr__(self) -> str:
        user = self._config.username or "(no login)"
        return f"<SmtpTransport {self._where} tls={self._config.tls} user={user}>"

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Deliver ``message``; see the module docstring for what raises what."""
        rcpts = _check_envelope(sender, recipients)
        async with self._lock:
            try:
                refused = await self._deliver(message, sender, rcpts)
            except DeliveryError:
                self._discard()
                raise
            except (aiosmtplib.SMTPException, OSError, _Dropped) as exc:
                # After a failure the session may sit mid-transaction; a fresh connection
                # next time is simpler and safer than repairing it with RSET.
                self._discard()
                raise self._translate(exc, rcpts) from exc
            except BaseException:
                # Cancelled mid-transaction: the server's state is unknown, start over.
                self._discard()
                raise
        if refused:
            delivered = [r for r in rcpts if r not in refused]
            details = "; ".join(
                f"RCPT TO:<{r}> got {exc.code} {exc.message}" for r, exc in refused.items()
            )
            raise PermanentDeliveryError(
                f"{self._where} delivered to {', '.join(delivered)} but refused {details}",
                list(refused),
            )

    async def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        async with self._lock:
            smtp, self._smtp = self._smtp, None
            if smtp is None:
                return
            # Done when the socket is: a TLS session closes after the server's close_notify.
            link = getattr(smtp.protocol, "transport", None)
            sock = link.get_extra_info("socket") if link is not None else None
            try:
                if smtp.is_connected:
                    await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass  # we are leaving anyway
            finally:
                smtp.close()
            deadline = asyncio.get_running_loop().time() + _CLOSE_WAIT_S
            while sock is not None and sock.fileno() != -1:
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.005)

    async def _deliver(
        self, message: bytes, sender: str, recipients: list[str]
    ) -> dict[str, aiosmtplib.SMTPRecipientRefused]:
        if self._smtp is not None and self._smtp.is_connected:
            try:
                return await self._transaction(self._smtp, message, sender, recipients)
            except _Dropped:
                # Servers close idle connections (RFC 5321 §4.5.3.2.7 lets them after
                # 5 minutes); we only learn of it now. Nothing was accepted: go again.
                log.info(
                    "SMTP connection to %s was closed by the server; reconnecting", self._where
                )
                self._discard()
        self._smtp = await self._connect()
        return await self._transaction(self._smtp, message, sender, recipients)

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = await self.open_session()
        try:
            await self.log_in(smtp)
        except BaseException:
            smtp.close()
            raise
        return smtp

    # The two steps of a connection, apart so that ``check-config --connect`` can say
    # which one failed. Both raise aiosmtplib's exceptions (or OSError) untranslated,
    # or LoginRefused (a secret over plain text, no token to log in with).

    async def open_session(self) -> aiosmtplib.SMTP:
        """Connect: the greeting, EHLO and STARTTLS as configured; no login yet."""
        config = self._config
        tls = config.tls
        oauth = self._keeper is not None
        refusal = plaintext_refusal(
            "smtp", config.host, tls, sends_secret=oauth or bool(config.username)
        )
        if refusal:
            raise LoginRefused(f"{self._where}: {refusal}")
        if self._tls_context is None and tls != "none":
            self._tls_context = client_context(config.ca_file)
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            local_hostname=self._local_hostname,
            timeout=config.timeout.total_seconds(),
            use_tls=tls == "ssl",
            # False, not None, for "ssl" and "none": None would mean "upgrade if offered".
            start_tls=tls == "starttls",
            tls_context=self._tls_context,
        )
        try:
            await smtp.connect()
        except Exception:
            smtp.close()
            # A failed handshake leaves closing the socket to the event loop's next
            # turns: let them run now, so the socket is not left open if the loop stops.
            await asyncio.sleep(0.01)
            raise
        log.debug("connected to SMTP server %s (tls=%s)", self._where, tls)
        return smtp

    async def log_in(self, smtp: aiosmtplib.SMTP) -> None:
        """Authenticate on ``smtp``: XOAUTH2 with an access token ([smtp] auth = "oauth2"),
        else a password when [smtp] username is set."""
        if self._keeper is not None:
            await self._xoauth2_login(smtp, await self._access_token())
        elif self._config.username:
            await smtp.login(self._config.username, self._config.password)

    async def _xoauth2_login(self, smtp: aiosmtplib.SMTP, token: str) -> None:
        """AUTH XOAUTH2; once more on the same session with a fresh token if the server
        refuses this one (revoked, or expired before its time)."""
        if not smtp.server_auth_methods:
            await smtp.ehlo()  # after STARTTLS the extensions are asked for again
        if "xoauth2" not in smtp.server_auth_methods:
            raise LoginRefused(f"{self._where} does not offer AUTH XOAUTH2 (only a password)")
        try:
            await smtp.auth_xoauth2(self._config.username, token)
        except aiosmtplib.SMTPAuthenticationError:
            log.info("SMTP %s: access token refused; trying a fresh one", self._where)
            self._refused_token = token
            await smtp.auth_xoauth2(self._config.username, await self._access_token())

    async def _access_token(self) -> str:
        """A valid access token (the keeper may block on HTTP); LoginRefused if none."""
        assert self._keeper is not None
        try:
            self._token = await asyncio.to_thread(
                self._keeper.access_token, refused=self._refused_token
            )
        except OAuthError as exc:
            raise LoginRefused(f"cannot log in to {self._where}: {exc}") from exc
        return self._token

    @staticmethod
    async def _transaction(
        smtp: aiosmtplib.SMTP, message: bytes, sender: str, recipients: list[str]
    ) -> dict[str, aiosmtplib.SMTPRecipientRefused]:
        """One RFC 5321 §3.3 mail transaction; returns the refused recipients when the
        message went to the others. Raises _Dropped if the link died before DATA."""
        refused: dict[str, aiosmtplib.SMTPRecipientRefused] = {}
        try:
            await smtp.mail(sender)
            for rcpt in recipients:
                try:
                    await smtp.rcpt(rcpt)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    refused[rcpt] = exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise _Dropped(exc) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # RFC 5321 §3.8: 421 means the server is closing the channel, typically an
            # idle timeout whose notice we read only now, as the answer to MAIL.
            if exc.code == 421:
                raise _Dropped(exc) from exc
            raise
        if len(refused) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(list(refused.values()))
        await smtp.data(message)
        return refused

    def _discard(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _translate(self, exc: Exception, recipients: list[str]) -> DeliveryError:
        """One place that turns what went wrong into what the outbox should do."""
        where = self._where
        if isinstance(exc, _Dropped):
            exc = exc.error
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            details = "; ".join(
                f"RCPT TO:<{r.recipient}> got {r.code} {r.message}" for r in exc.recipients
            )
            if all(_is_permanent(r.code) for r in exc.recipients):
                refused = [r.recipient for r in exc.recipients]
                return PermanentDeliveryError(f"{where} refused {details}", refused)
            return TemporaryDeliveryError(f"{where} deferred {details}")
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            if self._keeper is not None:
                return LoginRefused(
                    f"{where} refused the XOAUTH2 login as {self._config.username!r} with a "
                    f"fresh token: {exc.code} {exc.message}. Check [smtp] username and the "
                    f"scopes in [oauth]."
                )
            return LoginRefused(
                f"{where} refused the login as {self._config.username!r}: "
                f"{exc.code} {exc.message}. Check [smtp] username and the password in "
                f"the environment variable {self._config.password_env or '(none set)'}."
            )
        untrusted = untrusted_certificate(exc)
        if untrusted is not None:
            return TemporaryDeliveryError(untrusted_message("smtp", where, untrusted))
        step = None
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            step = f"MAIL FROM:<{exc.sender}>"
        elif isinstance(exc, aiosmtplib.SMTPDataError):
            step = "DATA"
        if step is not None and isinstance(exc, aiosmtplib.SMTPResponseException):
            reason = f"{where} answered {step} with {exc.code} {exc.message}"
            if _is_permanent(exc.code):
                return PermanentDeliveryError(reason, list(recipients))
            return TemporaryDeliveryError(reason)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            # EHLO, STARTTLS and the like: the server dislikes our session, not this
            # message, so marking the recipient as undeliverable would be wrong.
            return TemporaryDeliveryError(f"{where} refused the session: {exc.code} {exc.message}")
        return TemporaryDeliveryError(f"cannot deliver through {where}: {exc}")


class MaildirTransport:
    """Writes each message into the Maildir ``config.path / "sent"`` instead of sending.

    The embedded default and ``mentordesk demo`` use it: nothing leaves the machine, and
    any mail client (or ``mailbox.Maildir``) can read what would have been sent.
    """

    def __init__(self, config: SmtpConfig) -> None:
        self.path: Path = config.path / "sent"

    def __repr__(self) -> str:
        return f"<MaildirTransport {self.path}>"

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Store ``message`` with the envelope noted in two header lines on top."""
        rcpts = _check_envelope(sender, recipients)
        await asyncio.to_thread(self._write, message, sender, rcpts)

    async def close(self) -> None:
        """Nothing to release: every send opens and closes its own file."""

    def _write(self, message: bytes, sender: str, recipients: list[str]) -> None:
        # What a delivery agent adds at final delivery: Return-Path (RFC 5321 §4.4) and
        # Envelope-To (as Exim writes it), so the demo can show who got what.
        envelope = f"Return-Path: <{sender}>\nEnvelope-To: {', '.join(recipients)}\n"
        # Maildir files use the local line end (LF), not the wire's CRLF.
        data = envelope.encode("ascii") + message.replace(b"\r\n", b"\n")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Maildir delivery (write to tmp/, then rename into new/) never leaves a
            # half-written message visible, even when several writers run at once.
            mailbox.Maildir(self.path, create=True).add(data)
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write to the Maildir {self.path}: {exc}") from exc


def _is_permanent(code: int) -> bool:
    # RFC 5321 §4.2.1: 5yz is a permanent negative completion reply. Anything else that
    # is not success (4yz, or a reply that makes no sense here) is worth another try.
    return 500 <= code <= 599


def _check_envelope(sender: str, recipients: Sequence[str]) -> list[str]:
    """The recipients as a list, once no address can break the SMTP command line or the
    Maildir header it goes into. A bad recipient raises PermanentDeliveryError naming it,
    and then nothing is sent to anyone."""
    if isinstance(recipients, str):
        raise TypeError("recipients must be a sequence of addresses, not one string")
    rcpts = list(recipients)
    if not rcpts:
        raise ValueError("a message needs at least one recipient")
    # "" is the null reverse-path (RFC 5321 §4.5.5), allowed for the sender only. The
    # sender is ours (from the config), so a bad one is a bug, not a delivery failure.
    if sender and not _ADDRESS.fullmatch(sender):
        raise ValueError(f"{sender!r} cannot be used as the envelope sender")
    bad = [r for r in rcpts if not _ADDRESS.fullmatch(r)]
    if bad:
        raise PermanentDeliveryError(f"cannot deliver to {bad!r}: not an email address", bad)
    return rcpts
