"""Does a request ask for an ongoing mentor rather than one session? (pure)

Mentees say it in many ways: "I'd love a mentor for the next year", "looking for a
long-term mentor", "regular sessions over the next few months", "someone to meet every
couple of weeks". A negation just before the phrase turns it around ("not looking for
anything long-term"), and "just one session" anywhere (unless negated: "not just a quick
chat") says it is a single session.
Only the mentee's own words count: quoted history is dropped first.
"""

from __future__ import annotations

import re

from .quoting import own_words

__all__ = ["asks_for_ongoing"]

# Longer texts are cut here before reading: the ask is in the first paragraphs.
MAX_CHARS = 20_000

_PHRASES = (
    r"for (?:the (?:next|coming) |a (?:whole |full )?)(?:year|12 months|twelve months)",
    r"(?:over|for) the (?:next|coming) (?:few |several |couple of )?(?:months|year)",
    r"(?:a|one) year(?:-| )long",
    r"long[- ]?term",
    r"on[- ]?going (?:mentor|mentoring|mentorship|support|sessions?)",
    r"(?:regular|recurring|monthly|weekly|fortnightly|bi-?weekly) "
    r"(?:sessions?|meetings?|calls?|check-?ins?|mentoring|coaching)",
    r"(?:meet|talk|chat) (?:regularly|every (?:week|two weeks|couple of weeks|month|few weeks))",
    r"every (?:two|couple of|few) weeks",
    r"(?:a|an) (?:regular|steady|dedicated|permanent) mentor",
    r"mentor (?:for|over) (?:the|a) (?:next |whole |full )?(?:year|months)",
)
_ASK = re.compile("|".join(f"(?:{p})" for p in _PHRASES))
# Words just before a phrase that turn it around ("not long-term", "no regular calls").
_NEGATED = re.compile(
    r"(?:\bnot\b|\bno\b|n't|\bnever\b|\bwithout\b|\brather than\b|\binstead of\b)"
    r"(?:\s+\S+){0,3}\s*$"
)
_ONE_OFF = re.compile(
    r"\b(?:just|only) (?:one|a single|1|a quick|one quick) "
    r"(?:session|call|meeting|chat|conversation)\b|\bone[- ]off\b"
)


def asks_for_ongoing(text: str) -> bool:
    """True when the writer's own words ask for a mentor over time, not a single session."""
    words = own_words(text[:MAX_CHARS]).lower().replace("’", "'")
    words = re.sub(r"\s+", " ", words)
    if any(_said(words, match) for match in _ONE_OFF.finditer(words)):
        return False
    return any(_said(words, match) for match in _ASK.finditer(words))


def _said(words: str, match: re.Match[str]) -> bool:
    """The phrase is meant, not negated just before it in its sentence ("not just one")."""
    start = match.start()
    sentence_start = max(words.rfind(mark, 0, start) for mark in ".!?")
    return not _NEGATED.search(words[sentence_start + 1 : start])
