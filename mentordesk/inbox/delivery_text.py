"""Bounces written for people: what a mail server says when it sends no RFC 3464 report.

Most servers send a ``message/delivery-status`` part (``delivery.py`` reads it). Many do
not, or send it empty, and say in prose which address failed: qmail, old Sendmail,
Exchange 2003, Domino, IMail, MDaemon, hMailServer, Zoho, GMX, Mimecast, Office 365
passed through a gateway, and the localised Exchange reports. The prose differs, but the
failed address sits in one of three places, and those are what this module reads:

    at the start of its line    ``<ana@example.org>:``, ``ana@example.org on 1/28/2025``,
                                ``ana@example.org<mailto:ana@example.org>``,
                                ``ana@example.org Invalid Address``, ``> ana@example.org``
    after a label               ``Unknown user: ana@…``, ``Recipient: ana@… - 550 …``,
                                ``RCPT TO:<ana@…>``, ``收件人：ana@…``, ``Empfänger: ana@…``
    in a delivery sentence      ``wasn't delivered to ana@…``, ``Your message to ana@…
                                couldn't be delivered``, ``Votre message à ana@… n'a pas…``,
                                ``您发送给 ana@… 的邮件``, ``无法发送到 ana@…``

Only the part above the returned copy of our message counts. Whether the failure is for
good is decided by the final verdict: a warning says so ("THIS IS A WARNING ONLY", "will
be retried", "has not yet been delivered"), and a final notice wins over any warning
words or 4.x.x codes in it (qmail's "I'm not going to try again; this message has been
in the queue too long" after a 451 is the end).

Pure functions of text; ``delivery.py`` decides whether a message is a bounce at all.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from .headers import clean_address
from .text import clean_line, unique

__all__ = ["MAX_NOTICE_CHARS", "TextReading", "copy_start", "read_text_bounce", "reads_as_bounce"]

# A server's own words fit well within this; what follows is the returned copy, or junk
# that would only make the searches below slow.
MAX_NOTICE_CHARS = 32_000


@dataclass(frozen=True)
class TextReading:
    """What a bounce written for people says."""

    recipients: tuple[str, ...]  # lower-case, in the order the text names them
    delayed: bool  # a warning: the server is still trying
    diagnostic: str  # the most specific line (status code, SMTP reply), one line


# An address as bounces print it. Local parts and domains may be non-ASCII (RFC 6531).
# CJK and full-width punctuation ("收件人：ana@…") ends an address like ASCII punctuation.
_NOT_IN_ADDR = r"\s<>()\[\]\\,;:\"'@*=|\u3000-\u303f\uff00-\uffef"
_ADDR = rf"[^{_NOT_IN_ADDR}]+@[^{_NOT_IN_ADDR}]+\.[^{_NOT_IN_ADDR}.]+"

# Where the returned message (or its headers) starts: nothing below is the server's word.
# (A phrase, not a "^.*phrase" line: that backtracks quadratically on one long line.)
_COPY_MARKER = re.compile(
    r"(?:this is a copy of (?:the|your) message|below this line is a copy"
    r"|original message follows|original message headers|-+\s*original message\s*-+"
    r"|returned message follows|message headers follow|unsent message below"
    r"|below is a copy of the original message|returned mail follows"
    r"|-+\s*forwarded message\s*-+|es folgt eine kopie|kopie der nachricht"
    r"|ursprüngliche nachrichtenkopfzeilen|en-têtes du message d'origine"
    r"|encabezados del mensaje original|debajo de esta línea hay una copia"
    r"|cópia da mensagem original|元のメッセージ ?ヘッダー|原始邮件头|原邮件)",
    re.IGNORECASE,
)

# 1. The address opens its line (after indentation, quote marks or bullets).
_LEADING = re.compile(rf"^[\s>*•·'\"-]*<?(?P<addr>{_ADDR})>?(?P<rest>.*)$")
# What may follow a leading address on a recipient's line. A sentence that merely starts
# with an address ("ana@example.org has left the company.") is not a recipient line.
_LEADING_REST = re.compile(
    r"^\s*(?:$|:|\.{3}|<mailto:|\(|\[|-{1,2}\s|on\s+\S*\d|invalid|unknown|not\s|no\s+such"
    r"|user\s|mailbox\s|account\s|recipient|does\s+not|doesn't|is\s+not|isn't|was\s+not"
    r"|wasn't|could\s+not|couldn't|cannot|can't|failed|rejected|refused|quota|over\s"
    r"|\d{3}\b)",
    re.IGNORECASE,
)
_EXPANDED_FROM = re.compile(rf"\(expanded from:?\s*<?(?P<addr>{_ADDR}?)>?\)", re.IGNORECASE)

# 2. After a label that names the recipient (not "From:", "To:" or "Sender:").
_LABELLED = re.compile(
    r"(?:(?:failed|final|original|intended|invalid|unknown|undeliverable)\s+recipient"
    r"|recipient(?:\s+address)?|undeliverable\s+address|unknown\s+user|user\s+unknown"
    r"|no\s+such\s+user|mailbox\s+(?:full|unavailable|not\s+found)|rcpt\s+to|error-for"
    r"|empfänger|destinataire|destinatario|destinatário|получатель|адресат|收件人|收信人|宛先"
    r"|受信者)"
    rf"\s*[:：]\s*<?(?P<addr>{_ADDR})",
    re.IGNORECASE,
)

# 3. Inside a sentence about the delivery.
_INLINE = (
    # "wasn't delivered to X", "delivering your message to X", "delivery to X failed"
    re.compile(rf"\bdeliver\w*\b[^.\n]{{0,40}}?\bto:?\s+<?(?P<addr>{_ADDR})", re.IGNORECASE),
    # "Your message to X couldn't be delivered", "Votre message à X n'a pas pu être remis"
    re.compile(
        rf"\b(?:message|mail|e-?mail|nachricht|mensaje|correo)\s+(?:to|à|a|an|para)\s+"
        rf"<?(?P<addr>{_ADDR})>?\s+(?:couldn't|could\s+not|can't|cannot|wasn't|was\s+not"
        r"|has\s+not|failed|n'a\s+pas|no\s+se|no\s+pudo|konnte)",
        re.IGNORECASE,
    ),
    # 您发送给 X 的邮件 / 无法发送到 X / 投递到 X
    re.compile(rf"(?:发送给|发送到|投递到|发往|送信先)\s*<?(?P<addr>{_ADDR})"),
)

# Addresses in bounce prose that are never the failed recipient.
_ROLE_LOCALS = frozenset(
    {"postmaster", "mailer-daemon", "mailerdaemon", "mail-daemon", "abuse", "hostmaster"}
)

# Said by servers that give up; wins over every warning word (see module docstring).
_FINAL = re.compile(
    r"permanent\s+(?:error|failure|fatal|delivery\s+failure)|failed\s+permanently"
    r"|permanently\s+(?:failed|rejected)|fatal\s+(?:delivery\s+)?errors?"
    r"|not\s+going\s+to\s+try\s+again|in\s+the\s+queue\s+too\s+long|giving\s+up|given\s+up"
    r"|gave\s+up|will\s+not\s+(?:try|retry|be\s+retried|attempt)|won't\s+(?:try|retry)"
    r"|dauerhafter\s+fehler|permanenter\s+fehler|erreur\s+permanente|error\s+permanente"
    r"|errore\s+permanente|erro\s+permanente"
    r"|постоянная\s+ошибка|永久|恒久的",
    re.IGNORECASE,
)
# Said by servers that are still trying.
_DELAY = re.compile(
    r"warning\s+(?:message\s+)?only|this\s+is\s+a\s+warning|not\s+yet\s+been\s+delivered"
    r"|(?:has\s+not|hasn't)\s+been\s+delivered\s+yet|not\s+delivered\s+yet|still\s+being"
    r"\s+retried|will\s+be\s+retried|will\s+(?:continue\s+to\s+|keep\s+)?(?:re)?try"
    r"|will\s+continue\s+to\s+be\s+attempted|delivery\s+(?:is\s+)?delayed|delay\s+reason"
    r"|delivery\s+attempts\s+will\s+continue|temporary\s+problem|no\s+action\s+is\s+required"
    r"|do\s+not\s+need\s+to\s+resend|\(delay\)|delayed\s+mail|status\s+notification:\s*delay"
    r"|verzögert|noch\s+nicht\s+zugestellt|retardée|pas\s+encore\s+été\s+remis|retrasad"
    r"|aún\s+no\s+se\s+ha\s+entregado|задерж|ещё\s+не\s+доставлен|遅延|延迟",
    re.IGNORECASE,
)

# A bounce in words, in the languages mentordesk has seen them in.
_BOUNCE_WORDS = re.compile(
    r"could\s+not\s+be\s+delivered|couldn't\s+be\s+delivered|wasn't\s+delivered"
    r"|was\s+not\s+delivered|not\s+(?:yet\s+)?been\s+delivered|delivery\s+(?:has\s+)?failed"
    r"|delivery\s+to\s+the\s+following|failed\s+(?:recipient|permanently)"
    r"|unable\s+to\s+deliver|wasn't\s+able\s+to\s+deliver|could\s+not\s+deliver"
    r"|did\s+not\s+reach|could\s+not\s+be\s+reached|cannot\s+be\s+delivered"
    r"|undeliverable|permanent\s+(?:fatal\s+)?error|following\s+(?:address|recipient)"
    r"|error\s+occurred\s+while\s+(?:trying|attempting)\s+to\s+deliver|delivery\s+is\s+delayed"
    r"|unknown\s+user|user\s+unknown|invalid\s+address|did\s+not\s+receive\s+a\s+copy"
    r"|nicht\s+zugestellt|fehlgeschlagen|n'a\s+pas\s+pu\s+être\s+remis|error\s+en\s+la\s+entrega"
    r"|no\s+se\s+pudo\s+entregar|no\s+he\s+podido\s+entregar|recapito\s+non\s+riuscito"
    r"|impossibile\s+recapitare|não\s+foi\s+possível\s+entregar|não\s+pôde\s+ser\s+entregue"
    r"|не\s+удалось\s+доставить|не\s+был[оа]?\s+доставлен"
    r"|配信に失敗|配信できません|退信|被退回|无法发送|投递失败",
    re.IGNORECASE,
)

_STATUS_CODE = re.compile(r"(?<![\d.])[245]\.\d{1,3}\.\d{1,3}(?![\d.])")
_SMTP_REPLY = re.compile(r"(?<![\d.])[45]\d\d(?:[ -]|$)|said:", re.IGNORECASE)
_FAILURE_WORD = re.compile(
    r"permanent|failed|undeliverable|unknown|not\s+found|does\s+not\s+exist", re.IGNORECASE
)


def copy_start(text: str) -> int | None:
    """Where the returned copy of the message begins in ``text`` (the start of the line
    that says so); None if nowhere."""
    marker = _COPY_MARKER.search(text)
    return text.rfind("\n", 0, marker.start()) + 1 if marker else None


def reads_as_bounce(text: str) -> bool:
    """Whether ``text`` says, in words, that mail could not be delivered (or not yet)."""
    text = text[:MAX_NOTICE_CHARS]
    start = copy_start(text)
    return bool(_BOUNCE_WORDS.search(text[:start] if start is not None else text))


def read_text_bounce(text: str, subject: str, ignore: Collection[str] = ()) -> TextReading:
    """The failed addresses, the verdict and a diagnostic line of a bounce in words.

    ``ignore`` holds addresses that are never the failed one (ours, the bounce's own).
    """
    text = text[:MAX_NOTICE_CHARS]
    start = copy_start(text)
    human = text[:start] if start is not None else text
    lines = human.split("\n")
    skip = {address.lower() for address in ignore}
    found = [
        address
        for line in lines
        for address in _line_recipients(line)
        if address not in skip and address.partition("@")[0] not in _ROLE_LOCALS
    ]
    said = f"{subject}\n{human}"
    return TextReading(
        recipients=unique(found),
        delayed=bool(_DELAY.search(said)) and not _FINAL.search(said),
        diagnostic=_diagnostic(lines),
    )


def _line_recipients(line: str) -> list[str]:
    found: list[str] = []
    leading = _LEADING.match(line)
    if leading and _LEADING_REST.match(leading.group("rest")):
        # Postfix: "<alias@x> (expanded from <what-we-wrote@y>)": we wrote to the second.
        expanded = _EXPANDED_FROM.search(leading.group("rest"))
        found.append((expanded or leading).group("addr"))
    found.extend(match.group("addr") for match in _LABELLED.finditer(line))
    for pattern in _INLINE:
        found.extend(match.group("addr") for match in pattern.finditer(line))
    return [address for raw in found if (address := clean_address(raw.rstrip(".")))]


def _diagnostic(lines: list[str]) -> str:
    """The most specific line: an enhanced status code (RFC 3463), an SMTP reply, a phrase."""
    for pattern in (_STATUS_CODE, _SMTP_REPLY, _FAILURE_WORD):
        for line in lines:
            if pattern.search(line):
                return clean_line(line)[:500]
    return next((clean_line(line)[:500] for line in lines if line.strip()), "bounce")
