"""The program mailbox over IMAP, with imapclient.

One connection, one selected folder (``[inbox] folder``). Messages are read with
``BODY.PEEK[]<0.n>`` so they stay unread for the humans who share the mailbox, no
further than ``[inbox] max_message_bytes`` (RFC 3501 §6.4.5 partial fetch), and in
batches of at most ``source.batch_bytes`` (sizes from ``RFC822.SIZE`` first); they are
moved out of the folder only when the daemon is done with them. New mail is noticed with IDLE
when the server offers it, otherwise by polling.

Any trouble with the connection or the server becomes a ``MailSourceError`` and leaves
the source disconnected; the daemon reconnects with ``close()`` and ``connect()``.
"""

from __future__ import annotations

import ast
import contextlib
import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from imapclient import DELETED, IMAPClient, SocketTimeout
from imapclient.exceptions import LoginError

from ..config import InboxConfig
from ..errors import MailSourceError
from ..oauth import shared_keeper
from ..tls import client_context, plaintext_refusal, untrusted_certificate, untrusted_message
from .source import RawMessage, batch_bytes

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
# Long enough for a large message on a slow link; IDLE waits do not use it.
READ_TIMEOUT_S = 60.0
# A blocked wait() looks at stop() this often.
_IDLE_SLICE_S = 0.5
# RFC 2177: a client should re-issue IDLE at least every 29 minutes.
_IDLE_RENEW_S = 25 * 60.0
# How long close() waits for the server's answer to LOGOUT.
_LOGOUT_TIMEOUT_S = 2.0

# What imapclient and imaplib raise when the connection or the server fails. ssl.SSLError
# and socket.timeout are OSErrors; IMAP4.abort and every imapclient error are IMAP4.error.
_FAILURES = (OSError, imaplib.IMAP4.error)


class ImapSource:
    """A MailSource reading ``config.folder`` on ``config.host:config.port``."""

    def __init__(self, config: InboxConfig) -> None:
        self._config = config
        self._client: Any = None  # IMAPClient when connected (imapclient is untyped)
        self._stop = threading.Event()
        self._uidvalidity: int | None = None
        self._last_uid = 0  # highest UID the last fetch() saw
        self._more_waiting = False  # the last fetch() left messages behind (limit)
        self._known_folders: set[str] = set()
        self._can_move = False
        self._can_idle = False
        self._can_uidplus = False

    @property
    def address(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    @property
    def uidvalidity(self) -> int | None:
        return self._uidvalidity

    @property
    def connected(self) -> bool:
        return self._client is not None

    # -- MailSource -------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, log in and select the folder; raises MailSourceError."""
        self.open_connection()
        self.log_in()
        self.select_folder()

    # The three steps of connect(), apart so that ``check-config --connect`` can say
    # which one failed. Each raises MailSourceError and leaves the source disconnected.

    def open_connection(self) -> None:
        """Reach the server (and start TLS as configured); no login yet."""
        self.close()
        config = self._config
        refusal = plaintext_refusal("inbox", config.host, config.tls, sends_secret=True)
        if refusal:
            raise MailSourceError(f"IMAP {self.address}: {refusal}")
        context = None
        if config.tls != "none":
            with self._failures(f"cannot use [inbox] ca_file {config.ca_file}"):
                context = client_context(config.ca_file)
        with self._failures("cannot connect"):
            client = IMAPClient(
                config.host,
                config.port,
                ssl=config.tls == "ssl",
                ssl_context=context if config.tls == "ssl" else None,
                timeout=SocketTimeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
            )
        self._client = client
        client.normalise_times = False
        if config.tls == "starttls":
            with self._failures("STARTTLS failed"):
                client.starttls(context)

    def log_in(self) -> None:
        """Authenticate on the open connection: a password, or XOAUTH2 with a token."""
        client = self._connected_client()
        config = self._config
        if config.auth == "oauth2":
            self._oauth2_login(client)
        else:
            with self._failures(f"login as {config.username!r} failed"):
                client.login(config.username, config.password)

    def select_folder(self) -> None:
        """Select ``[inbox] folder`` on the logged-in connection."""
        client = self._connected_client()
        config = self._config
        with self._failures(f"cannot open folder {config.folder!r}"):
            selected = client.select_folder(config.folder)
            self._can_move = client.has_capability("MOVE")
            self._can_idle = client.has_capability("IDLE")
            self._can_uidplus = client.has_capability("UIDPLUS")
        # RFC 3501 requires UIDVALIDITY; 0 stands in should a server leave it out.
        uidvalidity = int(selected.get(b"UIDVALIDITY", 0))
        if self._uidvalidity is not None and uidvalidity != self._uidvalidity:
            # The server renumbered the folder: old keys are void. The daemon recognises
            # messages it has already handled by their Message-ID.
            log.warning(
                "IMAP %s: UIDVALIDITY of %s changed from %d to %d; messages get new keys",
                self.address,
                config.folder,
                self._uidvalidity,
                uidvalidity,
            )
        self._uidvalidity = uidvalidity
        self._last_uid = 0
        self._more_waiting = False
        self._known_folders.clear()
        log.debug(
            "IMAP %s: %s selected (UIDVALIDITY %d, MOVE %s, IDLE %s)",
            self.address,
            config.folder,
            uidvalidity,
            self._can_move,
            self._can_idle,
        )

    def _oauth2_login(self, client: Any) -> None:
        """SASL XOAUTH2 with a fresh access token; once more with a new one if the server
        refuses it (revoked or expired early). LoginNeeded when the refresh token is gone."""
        config = self._config
        assert config.oauth is not None, "config.py sets oauth with auth = oauth2"
        keeper = shared_keeper(config.oauth)
        refused = ""
        for attempt in (1, 2):
            try:
                token = keeper.access_token(refused=refused)
            except MailSourceError:
                self._drop()
                raise
            try:
                client.oauth2_login(config.username, token)
                return
            except LoginError as exc:
                if attempt == 2:
                    self._drop()
                    raise MailSourceError(
                        f"IMAP {self.address}: XOAUTH2 login as {config.username!r} refused "
                        f"with a fresh token: {_describe(exc)}; check [inbox] username and "
                        f"the scopes in [oauth]"
                    ) from exc
                log.info("IMAP %s: access token refused; trying a fresh one", self.address)
                refused = token
            except _FAILURES as exc:
                self._drop()
                raise MailSourceError(
                    f"IMAP {self.address}: XOAUTH2 login failed: {_describe(exc)}"
                ) from exc

    def fetch(self, limit: int) -> list[RawMessage]:
        """Up to ``limit`` messages still in the folder, lowest UID first, left unread."""
        client = self._connected_client()
        with self._failures(f"cannot search {self._config.folder!r}"):
            # A server answers SEARCH only about messages it has announced (EXISTS);
            # NOOP makes it announce what arrived since the last command.
            client.noop()
            uids = sorted(int(uid) for uid in client.search(["NOT", "DELETED"]))
        if not uids:
            self._more_waiting = False
            return []
        self._last_uid = max(self._last_uid, uids[-1])
        batch = uids[: max(limit, 0)]
        if not batch:
            self._more_waiting = bool(uids)
            return []
        cap = self._config.max_message_bytes
        with self._failures(f"cannot fetch the sizes of {len(batch)} messages"):
            sizes = client.fetch(batch, ["RFC822.SIZE"])
        batch = self._within_budget(batch, sizes)
        self._more_waiting = len(uids) > len(batch)
        with self._failures(f"cannot fetch {len(batch)} messages"):
            found = client.fetch(batch, [f"BODY.PEEK[]<0.{cap}>"])
        messages = []
        for uid in batch:
            # Absent when another client expunged it between SEARCH and FETCH.
            data = found.get(uid, {}).get(b"BODY[]<0>")
            size = _size(sizes, uid)
            if size > cap:
                log.warning(
                    "IMAP %s: message UID %d is %d bytes; only its first %d are read "
                    "([inbox] max_message_bytes)",
                    self.address,
                    uid,
                    size,
                    cap,
                )
            if data is not None:
                messages.append(
                    RawMessage(
                        key=f"imap:{self._uidvalidity}:{uid}",
                        data=bytes(data),
                        uid=uid,
                        uidvalidity=self._uidvalidity,
                    )
                )
        return messages

    def _within_budget(self, batch: list[int], sizes: dict[Any, Any]) -> list[int]:
        """The first messages of ``batch`` whose bytes (each cut to max_message_bytes)
        fit in ``batch_bytes`` together; the first always does."""
        cap = self._config.max_message_bytes
        budget = batch_bytes(self._config)
        total = 0
        for taken, uid in enumerate(batch):
            total += min(_size(sizes, uid), cap)
            if taken and total > budget:
                return batch[:taken]
        return batch

    def mark_done(self, messages: Sequence[RawMessage]) -> None:
        """Move ``messages`` to ``config.processed_folder``."""
        self._move(messages, self._config.processed_folder)

    def quarantine(self, messages: Sequence[RawMessage]) -> None:
        """Move ``messages`` to ``config.quarantine_folder``."""
        self._move(messages, self._config.quarantine_folder)

    def wait(self, timeout_s: float) -> None:
        """Return when new mail may have arrived, after ``timeout_s``, or on ``stop()``.

        Uses IDLE when the server has it and ``[inbox] idle`` is true; otherwise sleeps
        ``min(timeout_s, poll_interval)``. Returns at once if mail is already waiting that
        the last ``fetch()`` did not return.
        """
        if self._stop.is_set():
            return
        client = self._connected_client()
        deadline = time.monotonic() + max(timeout_s, 0.0)
        if self._more_waiting or self._unseen_arrivals(client):
            return
        if self._config.idle and self._can_idle:
            self._idle(client, deadline)
        else:
            poll_s = self._config.poll_interval.total_seconds()
            self._stop.wait(min(max(timeout_s, 0.0), poll_s))

    def stop(self) -> None:
        """Make ``wait()`` return within ~0.5 s, now and from now on. Thread-safe."""
        self._stop.set()

    def close(self) -> None:
        """Log out (briefly) and drop the connection; never raises."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            # Do not hang on a server that stopped answering.
            client.socket().settimeout(_LOGOUT_TIMEOUT_S)
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    # -- internals --------------------------------------------------------------------

    @contextlib.contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        """Turn connection and protocol failures into MailSourceError and disconnect."""
        try:
            yield
        except _FAILURES as exc:
            self._drop()
            untrusted = untrusted_certificate(exc)
            if untrusted is not None:
                message = f"IMAP {self.address}: " + untrusted_message(
                    "inbox", self._config.host, untrusted
                )
            else:
                message = f"IMAP {self.address}: {doing}: {_describe(exc)}"
            if self._config.password:
                message = message.replace(self._config.password, "***")
            raise MailSourceError(message) from exc

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _connected_client(self) -> Any:
        if self._client is None:
            raise MailSourceError(f"IMAP {self.address}: not connected")
        return self._client

    def _move(self, messages: Sequence[RawMessage], folder: str) -> None:
        uids = []
        for message in messages:
            if message.uid is None:
                raise ValueError(f"{message.key} did not come from an IMAP mailbox")
            if message.uidvalidity != self._uidvalidity:
                # Its UID may now name another message; it will be fetched again.
                log.warning("IMAP %s: not moving stale %s", self.address, message.key)
                continue
            uids.append(message.uid)
        if not uids:
            return
        client = self._connected_client()
        self._ensure_folder(client, folder)
        with self._failures(f"cannot move {len(uids)} messages to {folder!r}"):
            if self._can_move:
                client.move(uids, folder)
            else:
                client.copy(uids, folder)
                client.add_flags(uids, [DELETED], silent=True)
                if self._can_uidplus:
                    client.uid_expunge(uids)
                else:
                    # Without UIDPLUS, EXPUNGE removes every \Deleted message in the
                    # folder; in a mailbox the daemon owns those are only ours.
                    client.expunge()

    def has_folder(self, folder: str) -> bool:
        """Whether ``folder`` exists on the logged-in connection."""
        client = self._connected_client()
        with self._failures(f"cannot look for folder {folder!r}"):
            return bool(client.folder_exists(folder))

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` unless it exists (as moving messages there would)."""
        self._ensure_folder(self._connected_client(), folder)

    def _ensure_folder(self, client: Any, folder: str) -> None:
        if folder in self._known_folders:
            return
        with self._failures(f"cannot create folder {folder!r}"):
            if not client.folder_exists(folder):
                if not self._config.create_folders:
                    raise imaplib.IMAP4.error(
                        "it does not exist, and [inbox] create_folders = false"
                    )
                try:
                    client.create_folder(folder)
                except imaplib.IMAP4.error:
                    # Another client may have created it meanwhile.
                    if not client.folder_exists(folder):
                        raise
        self._known_folders.add(folder)

    def _unseen_arrivals(self, client: Any) -> bool:
        """Whether a message arrived after the last fetch() (IDLE would not report it)."""
        with self._failures("cannot check for new mail"):
            client.noop()  # see fetch()
            # "n:*" always matches the highest UID, even when it is below n.
            uids = client.search(["UID", f"{self._last_uid + 1}:*", "NOT", "DELETED"])
        return any(int(uid) > self._last_uid for uid in uids)

    def _idle(self, client: Any, deadline: float) -> None:
        with self._failures("waiting for new mail (IDLE) failed"):
            client.idle()
            log.debug("IMAP %s: idling in %s", self.address, self._config.folder)
            started = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                if now - started >= _IDLE_RENEW_S:
                    client.idle_done()
                    client.idle()
                    started = now
                slice_s = min(_IDLE_SLICE_S, deadline - now)
                responses = client.idle_check(timeout=slice_s)
                for response in responses:
                    if response and response[0] == b"BYE":
                        raise imaplib.IMAP4.abort(f"server said BYE: {_describe_bye(response)}")
                if any(response and response[0] != b"OK" for response in responses):
                    break  # EXISTS, RECENT, EXPUNGE, FETCH: something changed
                if not responses and time.monotonic() - now < slice_s / 2:
                    # The socket was readable yet held no whole line: imapclient hides an
                    # EOF this way. idle_done() below either succeeds or raises.
                    break
            client.idle_done()


def _size(sizes: dict[Any, Any], uid: int) -> int:
    """RFC822.SIZE of ``uid`` from a FETCH response; 0 when the server left it out."""
    try:
        return int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
    except (TypeError, ValueError):
        return 0


def failure_reason(exc: MailSourceError) -> str:
    """What the server or the network said, without the "IMAP host:port: doing:" part."""
    cause = exc.__cause__
    return _describe(cause) if cause is not None else str(exc)


def _describe(exc: BaseException) -> str:
    """A readable one-line reason from an imaplib/imapclient/socket exception."""
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
        return str(exc) or type(exc).__name__
    text: object = exc.args[0] if len(exc.args) == 1 else str(exc)
    if isinstance(text, str) and text[:2] in ("b'", 'b"'):
        # imapclient wraps server replies as str(bytes): "b'[AUTHENTICATIONFAILED] ...'"
        with contextlib.suppress(ValueError, SyntaxError):
            text = ast.literal_eval(text)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text) or type(exc).__name__


def _describe_bye(response: tuple[Any, ...]) -> str:
    return " ".join(
        part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part)
        for part in response[1:]
    )
