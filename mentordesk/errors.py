"""The exceptions mentordesk raises on purpose.

    MentordeskError                 base of everything below
    ├── ConfigError                 config.toml is missing, unreadable or wrong
    ├── MailSourceError             the mailbox cannot be reached or used
    ├── DeliveryError               an outgoing message was not accepted
    │   ├── TemporaryDeliveryError  try again later (4xx, connection trouble)
    │   └── PermanentDeliveryError  do not try again (5xx); names the refused addresses
    ├── StoreError                  the state file cannot be read or written
    ├── OfficeHoursError            a coordinator's office-hours command cannot be applied
    ├── CommandError                a coordinator command is malformed
    ├── AdminError                  the running daemon could not be asked, or refused
    └── TokenError                  a link's token cannot be used (safe to show on a page)
        ├── TamperedToken           malformed, altered or signed with another secret
        │   └── ForgedForm          a changing POST without our page's form token
        ├── WrongPurpose            genuine, but made for another kind of link
        └── ExpiredToken            genuine, but past its expiry (``claims`` says what for)

Every message says what to do next; none carries a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tokens import Claims


class MentordeskError(Exception):
    """Base class of every error mentordesk raises on purpose."""


class ConfigError(MentordeskError):
    """The configuration cannot be used; the message names file, table and key."""


class MailSourceError(MentordeskError):
    """The mailbox could not be reached or used; the caller reconnects with back-off."""


class DeliveryError(MentordeskError):
    """An outgoing message was not accepted by the mail server."""


class TemporaryDeliveryError(DeliveryError):
    """The server said "later" (4xx) or could not be reached: retry with back-off."""


class PermanentDeliveryError(DeliveryError):
    """The server refused the message for good (5xx).

    ``recipients`` lists the refused addresses (all of them when the whole message failed).
    """

    def __init__(self, message: str, recipients: list[str]) -> None:
        super().__init__(message)
        self.recipients = recipients


class StoreError(MentordeskError):
    """The state file is unreadable or cannot be written."""


class OfficeHoursError(MentordeskError):
    """A coordinator's office-hours command cannot be applied; the message says why."""


class CommandError(MentordeskError):
    """A coordinator's command is malformed (unknown action, missing or bad field)."""


class AdminError(MentordeskError):
    """The running daemon could not be asked, or refused the command; the message says why."""


class TokenError(MentordeskError):
    """A link's token cannot be used; the message can be shown to the person who followed it."""


class TamperedToken(TokenError):
    """The token is malformed, was altered, or was not signed with this program's secret."""


class ForgedForm(TamperedToken):
    """A POST that would change something came without the form token of our page."""


class WrongPurpose(TokenError):
    """The token is genuine but made for another kind of link (say, a survey, not a claim)."""


class ExpiredToken(TokenError):
    """The token is genuine but past its expiry.

    ``claims`` holds what it was for, so the page can offer to send a fresh link.
    """

    def __init__(self, message: str, claims: Claims) -> None:
        super().__init__(message)
        self.claims = claims
