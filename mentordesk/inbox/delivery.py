"""Delivery reports: RFC 3464 notifications, bounces in words, and RFC 5965 complaints.

``delivery_report`` reads which recipients failed, whether for good or only for now, and
which of our messages came back. In order of trust:

1. a ``message/delivery-status`` part (RFC 3464; ``message/global-delivery-status``,
   RFC 6533): every recipient block counts, wherever it sits (RFC 3464 §2.1 puts a
   per-message block first; some servers put the recipient's fields in the only block),
   and each block's ``Action`` is its final verdict;
2. ``X-Failed-Recipients`` (Exim, Google), read always: Google's current bounces carry an
   empty delivery-status part and name the address only there;
3. the prose of a bounce (``delivery_text``), when the message comes from a mail system
   (``MAILER-DAEMON``, ``postmaster``, an empty From or Return-Path) and says it is one.

A feedback report (ARF, RFC 5965 ``message/feedback-report``) is read into the same
record: an ``abuse`` or ``fraud`` report names the address that complained.

The Message-ID of our returned message (``original_message_id``) comes from the returned
message or its headers, else from the report, else from the bounce's own threading.
"""

from __future__ import annotations

import email.parser
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from email.policy import default as _POLICY

from .bodies import content_type, param, payload_bytes, subparts_of, walk
from .charsets import decode_bytes
from .delivery_text import MAX_NOTICE_CHARS, copy_start, read_text_bounce, reads_as_bounce
from .headers import clean_address, first_msg_id, msg_ids, raw_headers_of
from .text import clean_line, unique

__all__ = [
    "BOUNCE_SENDERS",
    "BOUNCE_SUBJECT",
    "COMPLAINT_TYPES",
    "MAX_RECIPIENTS",
    "DeliveryReport",
    "delivery_report",
    "is_bounce_sender",
]


@dataclass(frozen=True)
class DeliveryReport:
    """A delivery status notification, a bounce we can read, or a feedback report."""

    failed_recipients: tuple[str, ...]  # lower-case addresses; () when none could be read
    original_message_id: str | None  # Message-ID of our message it returns, if found
    permanent: bool  # failed for good (or complained) → True; still being tried → False
    diagnostic: str
    feedback_type: str | None = None  # RFC 5965 Feedback-Type, lower-case; None: a bounce

    @property
    def complaint(self) -> bool:
        """An abuse report: the person asks not to get our mail (RFC 5965 §7.3)."""
        return self.feedback_type in COMPLAINT_TYPES


# Subjects mail systems give bounces. Shared with classify so both agree.
BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undelivered mail returned to sender|undeliverable\b|undelivered\b"
    r"|delivery status notification\b|mail delivery failed|delivery failure"
    r"|permanent delivery failure|failure notice|returned mail\b|mail system error"
    r"|message undeliverable|notice: mail delivery status|delivery delayed\b|delayed mail\b"
    r"|warning: message \S+ delayed|warning: could not send message"
    # Exchange and Office 365 in other languages, and webmail in theirs.
    r"|unzustellbar|nicht zustellbar|non remis\b|no se puede entregar\b|non recapitabile"
    r"|não é possível entregar|não entregue|mensagem não entregue|onbestelbaar\b"
    r"|niedostarczalne|olevererbart|teslim edilemez|配信不能|无法投递|無法傳遞|系统退信|退信"
    r"|недоставляемое|недоставленное сообщение|сообщение не доставлено)",
    re.IGNORECASE,
)


# Local parts bounces come from. Shared with classify's loop guard, like BOUNCE_SUBJECT.
BOUNCE_SENDERS = frozenset(
    {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mdaemon"}
)
# Exchange 2010+ sends its reports from the organisation's system mailbox.
_EXCHANGE_SYSTEM = re.compile(r"^microsoftexchange[0-9a-f]{32}$")

# We write to one person per email: a report naming more is cut here (a forged one could
# name thousands, each to be marked).
MAX_RECIPIENTS = 100
# The most of a report's machine-written part (delivery-status or feedback fields, the
# headers it returns) that is decoded and read: a mail system writes a few KB; a forged
# report may carry megabytes, cut before the work.
MAX_REPORT_PART_BYTES = 100_000

# RFC 5965 §7.3 types that mean "the recipient does not want this mail". "auth-failure"
# (RFC 6591) is about a forgery, "not-spam" (RFC 6650) the opposite of a complaint.
COMPLAINT_TYPES = frozenset({"abuse", "fraud"})

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")  # RFC 6533
_RETURNED_TYPES = ("text/rfc822-headers", "message/global-headers", "message/rfc822")
_FEEDBACK_TYPE = "message/feedback-report"  # RFC 5965 §3
_MESSAGE_ID_LINE = re.compile(r"\bmessage-id:[ \t]*(<[^<>\s]+@[^<>\s]+>)", re.IGNORECASE)
# A recipient a feedback loop blanked out: "redacted@", "xxxxxx@", "****@".
_REDACTED = re.compile(r"redacted|^[x*#]+$", re.IGNORECASE)


def is_bounce_sender(address: str) -> bool:
    """Whether ``address`` (or its local part) is a mail system's, not a person's."""
    local = address.partition("@")[0].strip().lower()
    return local in BOUNCE_SENDERS or bool(_EXCHANGE_SYSTEM.match(local))


def delivery_report(
    msg: Message,
    text: str,
    subject: str,
    sender: str,
    headers: Mapping[str, str],
    in_reply_to: tuple[str, ...],
) -> DeliveryReport | None:
    """The report ``msg`` carries, or None when it is no delivery or feedback report.

    ``text`` is the body a person reads, ``headers`` the decoded headers (lower-case
    names), ``sender`` the From address ("" when there is none).
    """
    parts = list(walk(msg, into_messages=False))
    returned = _returned_message(parts)
    feedback = next((p for p in parts if content_type(p) == _FEEDBACK_TYPE), None)
    if feedback is not None:
        return _feedback_report(feedback, returned, in_reply_to)

    x_failed = _x_failed_recipients(msg)
    status_parts = [p for p in parts if content_type(p) in _STATUS_TYPES]
    raw_from = raw_headers_of(msg).get("from", "")
    if not status_parts and not _is_bounce(sender, raw_from, headers, subject, text, x_failed):
        return None
    fields = [block for part in status_parts for block in _dsn_blocks(part)]
    original_id = (
        (returned and first_msg_id(returned.get("message-id")))
        or next((i for b in fields if (i := first_msg_id(b.get("x-original-message-id")))), None)
        or _copied_message_id(text)
        or _threaded_on(in_reply_to, headers)
    )
    recipients = [block for block in fields if _is_recipient_block(block)]
    if recipients:
        return _dsn(recipients, x_failed, original_id)
    # No delivery-status fields, or an empty part (Google): X-Failed-Recipients and words.
    ignore = [sender, headers.get("to", ""), (returned or {}).get("from", "")]
    reading = read_text_bounce(text, subject, ignore=_addresses_in(ignore))
    failed = unique([*x_failed, *reading.recipients])
    if not failed and returned is not None:
        # The report names a person, not an address ("Ana Lima on 4/4/2025"): when the
        # returned message went to one address only, that is the one.
        to = _addresses_in([returned.get("to", ""), returned.get("cc", "")])
        failed = to if len(to) == 1 else ()
    return DeliveryReport(
        failed_recipients=failed[:MAX_RECIPIENTS],
        original_message_id=original_id,
        permanent=not reading.delayed,
        diagnostic=reading.diagnostic,
    )


# --- is it a bounce? ---------------------------------------------------------------------


def _is_bounce(
    sender: str,
    from_header: str,
    headers: Mapping[str, str],
    subject: str,
    text: str,
    x_failed: tuple[str, ...],
) -> bool:
    """A message without a delivery-status part is a bounce when a mail system sent it
    (RFC 5321 §4.5.5: notifications go out with an empty reverse-path) and it says so.

    ``from_header`` is the raw From: decoding drops an empty ``<>`` or ``<@>``.
    """
    from_system = (
        is_bounce_sender(sender)
        or headers.get("return-path", "").replace(" ", "") == "<>"
        # "MAILER-DAEMON <>", Courier's "<@>": a From with no address at all.
        or bool(re.search(r"<\s*@?\s*>", from_header))
        or (not sender and bool(re.match(r"\s*\"?mailer-daemon\b", from_header, re.I)))
    )
    # A person may well write "Mail delivery failed, can you help?": only a mail system's
    # words count.
    if not from_system:
        return False
    return bool(BOUNCE_SUBJECT.match(subject) or x_failed) or reads_as_bounce(text)


# --- RFC 3464 ------------------------------------------------------------------------------


def _dsn_blocks(part: Message) -> list[dict[str, str]]:
    """Every field block of a delivery-status part, per-message and per-recipient alike."""
    subparts = subparts_of(part)
    if not subparts:
        text, _ = decode_bytes(payload_bytes(part, MAX_REPORT_PART_BYTES), "utf-8", [])
        return _blocks_in(text)
    # The stdlib splits message/delivery-status into one part per block; it reads
    # message/global-delivery-status like message/rfc822: the first block as headers,
    # the others as the body.
    blocks: list[dict[str, str]] = []
    for sub in subparts:
        blocks.append(raw_headers_of(sub))
        if not sub.is_multipart():
            body, _ = decode_bytes(payload_bytes(sub, MAX_REPORT_PART_BYTES), "utf-8", [])
            blocks += _blocks_in(body)
    return blocks


def _blocks_in(text: str) -> list[dict[str, str]]:
    parser = email.parser.HeaderParser(policy=_POLICY)
    return [
        raw_headers_of(parser.parsestr(block.strip() + "\n"))
        for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n"))
        if block.strip()
    ]


def _is_recipient_block(block: Mapping[str, str]) -> bool:
    """RFC 3464 §2.3: a recipient's fields; Final-Recipient and Action are required."""
    return any(name in block for name in ("final-recipient", "original-recipient", "action"))


def _dsn(
    blocks: list[dict[str, str]], x_failed: tuple[str, ...], original_id: str | None
) -> DeliveryReport:
    permanent: list[tuple[str, str]] = []
    delayed: list[tuple[str, str]] = []
    named: set[str] = set()
    for block in blocks:
        action = block.get("action", "").strip().lower().split(";")[0].split()[:1]
        status = block.get("status", "").strip()
        final = _dsn_address(block.get("final-recipient"))
        original = _dsn_address(block.get("original-recipient"))
        named.update(a for a in (final, original) if a)
        # The address we wrote to is the Original-Recipient (RFC 3464 §2.3.1); the Final-
        # Recipient may be the mailbox an alias or forward led to.
        address = original or final
        diagnostic = clean_line(block.get("diagnostic-code", "").partition(";")[2] or status)
        verdict = action[0] if action else ""
        # "error": OpenSMTPD's word for "failed". Without an Action, the status class says.
        if verdict in ("failed", "error") or (not verdict and status.startswith("5")):
            permanent.append((address, diagnostic or "failed"))
        elif verdict == "delayed" or (not verdict and status.startswith("4")):
            delayed.append((address, diagnostic or "delayed"))
    # X-Failed-Recipients names failures the blocks may have left out.
    permanent += [(address, "failed") for address in x_failed if address not in named]
    # A report listing both: the permanent failures are the news; the delays may yet resolve.
    chosen = permanent or delayed
    return DeliveryReport(
        failed_recipients=unique(address for address, _ in chosen if address)[:MAX_RECIPIENTS],
        original_message_id=original_id,
        permanent=bool(permanent),
        diagnostic=chosen[0][1][:500] if chosen else "no failed recipients reported",
    )


def _dsn_address(value: str | None) -> str:
    """``rfc822; user@host`` or ``utf-8; usér@host`` (RFC 3464 §2.3.2, RFC 6533 §3)."""
    if not value:
        return ""
    kind, _, address = value.partition(";")
    address = address if address else kind
    # RFC 6533 §3: utf-8-addr-xtext writes some characters as \x{HEX}.
    address = re.sub(r"\\x\{([0-9A-Fa-f]{1,6})\}", lambda m: _char(m.group(1)), address)
    return clean_address(address)


def _char(hex_digits: str) -> str:
    code = int(hex_digits, 16)
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else ""


def _x_failed_recipients(msg: Message) -> tuple[str, ...]:
    """Every address of every X-Failed-Recipients header (comma-separated, Exim)."""
    try:
        values = [str(value) for value in msg.get_all("x-failed-recipients") or []]
    except Exception:  # a header the parser cannot represent: as if absent
        return ()
    return _addresses_in(values)


def _addresses_in(values: Iterable[str]) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        for item in re.split(r"[,;\s]+", value):
            address = clean_address(item.rpartition("<")[2] if "<" in item else item)
            if address:
                found.append(address)
    return unique(found)


# --- the returned message ------------------------------------------------------------------


def _returned_message(parts: list[Message]) -> dict[str, str] | None:
    """The headers of our message the report returns, if it returns one."""
    for part in parts:
        if content_type(part) not in _RETURNED_TYPES:
            continue
        subparts = subparts_of(part)
        if subparts:
            return raw_headers_of(subparts[0])
        text, _ = decode_bytes(
            payload_bytes(part, MAX_REPORT_PART_BYTES), param(part, "charset"), []
        )
        parser = email.parser.HeaderParser(policy=_POLICY)
        headers = raw_headers_of(parser.parsestr(text.lstrip().replace("\r\n", "\n")))
        if headers:
            return headers
    return None


def _threaded_on(in_reply_to: tuple[str, ...], headers: Mapping[str, str]) -> str | None:
    """Exchange and Google thread a bounce on the message it returns (In-Reply-To); Exim
    names it in References."""
    references = msg_ids(headers.get("references"))
    return in_reply_to[0] if in_reply_to else (references[-1] if references else None)


def _copied_message_id(text: str) -> str | None:
    """The Message-ID of a copy quoted in the bounce text (below the copy marker if any)."""
    text = text[: 2 * MAX_NOTICE_CHARS]
    start = copy_start(text)
    match = _MESSAGE_ID_LINE.search(text, start or 0) or (
        _MESSAGE_ID_LINE.search(text) if start else None
    )
    return first_msg_id(match.group(1)) if match else None


# --- RFC 5965 feedback reports -------------------------------------------------------------


def _feedback_report(
    part: Message, returned: dict[str, str] | None, in_reply_to: tuple[str, ...]
) -> DeliveryReport:
    subparts = subparts_of(part)
    if subparts:
        fields = subparts[0]
    else:
        text, _ = decode_bytes(payload_bytes(part, MAX_REPORT_PART_BYTES), "utf-8", [])
        fields = email.parser.HeaderParser(policy=_POLICY).parsestr(text.lstrip())
    first = raw_headers_of(fields)
    kind = clean_line(first.get("feedback-type", "")).lower() or "other"
    # RFC 5965 §3.2: Original-Rcpt-To may repeat; the returned message's To is the fallback
    # when the loop leaves it out (Outlook.com), as long as it names one person only.
    named = _addresses_in(_all_values(fields, "original-rcpt-to"))
    if not named and returned is not None:
        to = _addresses_in([returned.get("to", "")])
        named = to if len(to) == 1 else ()
    complainers = tuple(a for a in named if not _REDACTED.search(a.partition("@")[0]))
    reporter = clean_line(first.get("user-agent", "")) or "a feedback loop"
    complaint = kind in COMPLAINT_TYPES
    return DeliveryReport(
        failed_recipients=complainers[:MAX_RECIPIENTS] if complaint else (),
        original_message_id=(returned and first_msg_id(returned.get("message-id")))
        or _threaded_on(in_reply_to, {}),
        permanent=complaint,
        diagnostic=f"{kind} report (RFC 5965) from {reporter}"[:500],
        feedback_type=kind,
    )


def _all_values(fields: Message, name: str) -> list[str]:
    try:
        return [str(value) for value in fields.get_all(name) or []]
    except Exception:
        return []
