"""The exceptions mentordesk raises on purpose.

    MentordeskError                 base of everything below
    ├── ConfigError                 config.toml is missing, unreadable or wrong
    ├── MailSourceError             the mailbox cannot be reached or used
    ├── DeliveryError               an outgoing message was not accepted
    │   ├── TemporaryDeliveryError  try again later (4xx, connection trouble)
    │   └── PermanentDeliveryError  do not try again (5xx); names the refused addresses
    └── StoreError                  the state file cannot be read or written

Every message says what to do next; none carries a secret.
"""

from __future__ import annotations


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
