"""What a person asks for in their own sentences: renew, pause, move a session, claim …

A reply rarely says just "renew": people write "Yes, please renew me for another year.",
"Can we do 7:30am instead?", "I'll take this one!", "Sorry, I can't make it tomorrow".
``read_intent`` finds the one thing a message asks for, and for a move the time it
proposes. The words live in one ``Lexicon`` per language (English first, German to show
the shape); the reading around them is the same for every language:

- only the sender's own words count (quoted history and forwarded mail are not theirs);
- a phrase is either the whole clause give or take polite words ("please", "thanks",
  "yes") — ``whole`` — or may stand anywhere in a clause — ``within``;
- a negation before it turns it around ("I don't want to pause"); a doubt anywhere
  ("not sure yet", "let me think") keeps everything as it is;
- a question asks nothing ("Should I renew?") unless it asks *us* ("Could you pause
  me?") or proposes a time ("Can we do 7:30am instead?");
- two different things asked for is no reading, except that cancelling and proposing
  another time is a move.

Withdrawing a request has its own reader (``classify.means_withdraw``) for English; other
languages list their words here. Pure functions over strings; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .hours import clock_minutes, time_pattern
from .quoting import own_words

__all__ = ["LEXICONS", "Intent", "IntentReading", "Lexicon", "ProposedTime", "read_intent"]


class Intent(StrEnum):
    """What a person can ask for by email; the values are the router's command words."""

    WITHDRAW = "withdraw"  # a mentee calls off their request
    RENEW = "renew"  # a mentor renews their term
    PAUSE = "pause"  # a mentor takes a break from new requests
    RESUME = "resume"  # ... and comes back
    RESIGN = "resign"  # a mentor leaves the program
    CANCEL = "cancel"  # either person calls off a session
    RESCHEDULE = "reschedule"  # either person asks for another time, maybe naming one
    CLAIM = "claim"  # a mentor takes a request they were offered
    RELEASE = "release"  # the mentor who took it gives it back


@dataclass(frozen=True)
class ProposedTime:
    """A time named in a message ("Thursday at 6pm", "7:30am", "tomorrow at 8"), as the
    writer's own clock reads it; what is not said is None."""

    weekday: int | None  # 0 = Monday
    days_ahead: int | None  # "today" 0, "tomorrow" 1
    minute: int | None  # minutes after local midnight
    said: str


@dataclass(frozen=True)
class IntentReading:
    """The one thing a message asks for."""

    intent: Intent
    said: str  # the clause it was read from
    proposed: ProposedTime | None = None  # for RESCHEDULE: the time asked for, if any


@dataclass(frozen=True)
class Lexicon:
    """One language's words. Every pattern is a regular expression over one clause in
    lower case with ’ written as '."""

    language: str
    lead: str  # polite words that may come first: "please", "yes", "ok"
    tail: str  # ... and last: "please", "thanks", "now"
    whole: Mapping[Intent, tuple[str, ...]]  # the clause is this
    within: Mapping[Intent, tuple[str, ...]]  # anywhere in a clause
    negation: str  # before a phrase, turns it around
    doubt: str  # anywhere in the message, keeps everything as it is
    asks_us: str  # a question that asks us to do it: "can you", "could you"
    proposes: str  # a question or sentence proposing a time, with a time in it
    weekdays: Mapping[str, int] = field(default_factory=dict)  # "thursday" → 3
    relative_days: Mapping[str, int] = field(default_factory=dict)  # "tomorrow" → 1


_I_WOULD = r"i(?:'d|\s+would)\s+(?:like|love|prefer)\s+to"
_I_WILL = r"i(?:'ll|\s+will)"
_I_AM = r"i(?:'m|\s+am)"
_CANNOT = r"(?:can't|cannot|can\s+not|won't\s+be\s+able\s+to|will\s+not\s+be\s+able\s+to)"
_IT = r"(?:it|this|this\s+one|that|that\s+one|the\s+request|them|her|him|md-?\d+)"
_FOR_A_WHILE = (
    r"(?:\s+(?:for|until)\s+(?:now|a\s+(?:while|bit|month|week|few\s+(?:weeks|months)"
    r"|couple\s+of\s+(?:weeks|months))|(?:\w+|\d+)\s+(?:weeks?|months?)|the\s+(?:summer"
    r"|holidays|new\s+year|end\s+of\s+the\s+\w+)))?"
)
_SESSION = (
    r"(?:(?:the|our|this|my|tomorrow's|today's|tonight's|next|that)\s+)?"
    r"(?:(?:mentoring|mentorship)\s+)?(?:session|meeting|call|appointment|chat)"
)

ENGLISH = Lexicon(
    language="en",
    lead=r"(?:(?:yes|yeah|yep|ok|okay|sure|please|pls|kindly|hi|hello|hey|so|and|then|thanks"
    r"|thank\s+you|absolutely|definitely|of\s+course|happy\s+to|glad\s+to)\s+)*",
    tail=r"(?:\s+(?:please|pls|thanks|thank\s+you|now|too|again|as\s+well|for\s+now"
    r"|for\s+me|if\s+possible|if\s+you\s+can|asap))*",
    whole={
        Intent.RENEW: (
            r"renew(?:\s+(?:me|it|my\s+(?:term|membership|mentorship|mentoring|spot|place)))?"
            r"(?:\s+for\s+(?:another|one\s+more|a\s+further|a\s+second)\s+(?:year|term|two"
            r"\s+years|2\s+years|round))?",
            r"(?:count|sign)\s+me\s+(?:in|up)\s+for\s+(?:another|one\s+more|a\s+second)\s+"
            r"(?:year|term|round|two\s+years)",
            rf"(?:{_I_WOULD}|i\s+want\s+to|{_I_WILL})\s+(?:renew(?:\s+my\s+term)?|stay\s+on"
            r"|continue(?:\s+mentoring)?|keep\s+mentoring|carry\s+on)",
            r"keep\s+me\s+on",
            r"extend\s+my\s+(?:term|membership)",
        ),
        Intent.PAUSE: (
            r"pause(?:\s+(?:me|it|my\s+(?:mentoring|membership|account|requests|profile)))?"
            + _FOR_A_WHILE,
            r"put\s+me\s+on\s+(?:hold|pause)" + _FOR_A_WHILE,
            rf"(?:i\s+need|{_I_WOULD}\s+take|i\s+want\s+to\s+take|i\s+need\s+to\s+take)\s+a"
            r"\s+(?:short\s+)?break(?:\s+from\s+mentoring)?" + _FOR_A_WHILE,
            rf"{_I_AM}\s+taking\s+a\s+(?:short\s+)?break(?:\s+from\s+mentoring)?" + _FOR_A_WHILE,
            r"no\s+(?:new\s+)?(?:requests|mentees)" + _FOR_A_WHILE,
            r"(?:stop|hold)\s+(?:sending\s+)?(?:me\s+)?(?:new\s+)?requests" + _FOR_A_WHILE,
        ),
        Intent.RESUME: (
            r"(?:resume|unpause)(?:\s+(?:me|my\s+mentoring))?",
            rf"{_I_AM}\s+back(?:\s+(?:now|from\s+my\s+break))?",
            rf"{_I_AM}\s+(?:ready|available)\s+(?:again|for\s+(?:new\s+)?(?:requests|mentees)"
            r"(?:\s+again)?)",
            r"(?:you\s+can\s+)?start\s+sending\s+(?:me\s+)?(?:new\s+)?requests\s+again",
        ),
        Intent.RESIGN: (
            r"resign",
            rf"(?:{_I_WOULD}|i\s+(?:want|need|have)\s+to)\s+(?:resign|step\s+down|quit"
            r"(?:\s+mentoring)?|leave\s+the\s+program(?:me)?)",
            rf"{_I_AM}\s+(?:resigning|stepping\s+down|leaving\s+the\s+program(?:me)?)",
            r"remove\s+me\s+(?:from\s+the\s+(?:program(?:me)?|mentor\s+list|list\s+of\s+"
            r"mentors)|as\s+a\s+mentor)",
        ),
        Intent.CANCEL: (
            rf"cancel(?:\s+(?:it|this|{_SESSION}))?",
            rf"(?:i|we)\s+(?:have|need)\s+to\s+cancel(?:\s+(?:it|this|{_SESSION}))?",
            rf"(?:i|we)\s+{_CANNOT}\s+make\s+(?:it|{_SESSION})(?:\s+(?:after\s+all|anymore"
            r"|any\s+more|tomorrow|today|tonight|this\s+week|on\s+\w+))*",
        ),
        Intent.RESCHEDULE: (
            rf"(?:reschedule|rearrange|postpone)(?:\s+(?:it|this|{_SESSION}))?",
            rf"move\s+(?:it|this|{_SESSION})",
            r"(?:find|pick)\s+(?:another|a\s+different)\s+time",
        ),
        Intent.CLAIM: (
            rf"claim(?:\s+{_IT})?",
            rf"(?:{_I_WILL}|i\s+can)\s+take\s+{_IT}",
            rf"{_I_WOULD}\s+(?:take\s+{_IT}|help(?:\s+(?:them|her|him))?|mentor\s+"
            r"(?:them|her|him))",
            rf"i(?:'d|\s+would)\s+be\s+(?:happy|glad)\s+to\s+(?:take\s+{_IT}|help)",
            r"count\s+me\s+in",
            rf"{_I_AM}\s+in",
            r"sign\s+me\s+up",
            r"(?:happy|glad)\s+to\s+(?:help|take\s+(?:it|this|this\s+one))",
            r"i\s+can\s+help(?:\s+(?:with\s+(?:this|that)|them|her|him))?",
            rf"{_I_WILL}\s+do\s+it",
            r"mine",
        ),
        # Words of someone who has the request: a mentor declining a claim email ("I
        # can't take this one", "please find someone else") is not giving one back.
        Intent.RELEASE: (
            rf"(?:release|unclaim)(?:\s+{_IT})?",
            rf"(?:give|hand)\s+{_IT}\s+back",
            rf"i\s+{_CANNOT}\s+(?:take|do|handle)\s+{_IT}(?:\s+on)?\s+(?:after\s+all|anymore"
            r"|any\s+more)",
            rf"i\s+(?:have|need)\s+to\s+(?:give\s+{_IT}\s+back|back\s+out|drop\s+{_IT})",
        ),
    },
    within={
        Intent.RENEW: (
            r"\brenew\s+(?:me|my\s+(?:term|membership|mentorship))\b",
            r"\b(?:happy|glad|keen)\s+to\s+(?:renew|stay\s+on|continue\s+mentoring)\b",
        ),
        Intent.PAUSE: (
            r"\bpause\s+(?:me|my\s+(?:mentoring|membership|account|requests))\b",
            r"\bput\s+me\s+on\s+(?:hold|pause)\b",
            r"\bno\s+new\s+(?:requests|mentees)\s+(?:for\s+now|for\s+a\s+while|until)\b",
        ),
        Intent.RESIGN: (
            r"\b(?:step|stepping)\s+down\s+(?:as\s+a\s+mentor|from\s+(?:the\s+)?mentoring)\b",
            r"\bresign\s+(?:as\s+a\s+mentor|from\s+the\s+program(?:me)?)\b",
        ),
        Intent.CANCEL: (
            rf"\b(?:cancel|call\s+off)\s+{_SESSION}\b",
            rf"\b{_CANNOT}\s+make\s+(?:it|{_SESSION})\b",
        ),
        Intent.RESCHEDULE: (
            r"\b(?:reschedule|postpone|rearrange)\b",
            rf"\b(?:move|push|shift)\s+(?:it|this|{_SESSION})\s+(?:to|back|forward|later"
            r"|earlier)\b",
            r"\b(?:another|a\s+different|a\s+later|an\s+earlier)\s+(?:time|day|slot)\b",
            r"\bchange\s+the\s+(?:time|day)\b",
        ),
        Intent.CLAIM: (
            rf"\b(?:{_I_WILL}|i\s+can)\s+take\s+(?:this|this\s+one|the\s+request|md-?\d+)\b",
            r"\bi(?:'d|\s+would)\s+(?:love|like|be\s+happy|be\s+glad)\s+to\s+(?:take\s+"
            r"(?:this|this\s+one|it\s+on)|mentor\s+(?:them|her|him))\b",
        ),
        Intent.RELEASE: (
            r"\b(?:give|hand)\s+(?:this|this\s+one|the\s+request|it)\s+back\b",
            rf"\bi\s+{_CANNOT}\s+(?:take|do)\s+(?:this|it)\s+on\s+after\s+all\b",
        ),
    },
    negation=r"\b(?:not|no|never|don't|dont|do\s+not|won't|wouldn't|shouldn't|rather\s+not"
    r"|didn't|doesn't)\b",
    doubt=r"\b(?:not\s+sure|unsure|let\s+me\s+think|i'll\s+think|i\s+will\s+think|thinking"
    r"\s+about\s+it|maybe\s+later|haven't\s+decided|undecided|i'll\s+let\s+you\s+know)\b",
    asks_us=r"\b(?:can|could|would|will)\s+you\b|\bplease\b",
    proposes=r"\b(?:(?:can|could)\s+we\s+(?:do|make\s+it|meet|try|switch|move|go\s+for"
    r"|have\s+it|change)|how\s+about|what\s+about|instead|(?:i|we)(?:'d|\s+would)?\s+prefer"
    r"|works?\s+better|better\s+for\s+me|(?:would|does|is|will)\s+.{0,30}\b(?:work|suit"
    r"|ok|okay|possible|fine|better))\b",
    weekdays={
        "monday": 0,
        "mon": 0,
        "tuesday": 1,
        "tues": 1,
        "tue": 1,
        "wednesday": 2,
        "wed": 2,
        "weds": 2,
        "thursday": 3,
        "thurs": 3,
        "thur": 3,
        "thu": 3,
        "friday": 4,
        "fri": 4,
        "saturday": 5,
        "sat": 5,
        "sunday": 6,
        "sun": 6,
    },
    relative_days={"today": 0, "tonight": 0, "tomorrow": 1},
)

GERMAN = Lexicon(
    language="de",
    lead=r"(?:(?:ja|gerne|gern|bitte|ok|okay|hallo|danke|klar)\s+)*",
    tail=r"(?:\s+(?:bitte|danke|gerne|gern|jetzt))*",
    whole={
        Intent.WITHDRAW: (
            r"(?:ich\s+)?(?:ziehe|zieh)\s+(?:meine\s+anfrage\s+)?zurück",
            r"(?:meine\s+)?anfrage\s+zurückziehen",
        ),
        Intent.RENEW: (
            r"(?:verlängern|verlängere|verlängert)(?:\s+sie)?(?:\s+(?:mich|meine\s+"
            r"(?:amtszeit|mitgliedschaft)))?",
            r"ich\s+(?:möchte|will)\s+(?:verlängern|weitermachen|dabei\s+bleiben)",
        ),
        Intent.PAUSE: (
            r"(?:pause|pausieren)(?:\s+sie\s+mich)?",
            r"ich\s+brauche\s+eine\s+pause",
        ),
        Intent.RESUME: (r"(?:fortsetzen|weitermachen)", r"ich\s+bin\s+wieder\s+da"),
        Intent.RESIGN: (r"ich\s+(?:möchte|will)\s+(?:aufhören|austreten)", r"austreten"),
        Intent.CANCEL: (r"(?:den\s+|unseren\s+)?termin\s+absagen", r"ich\s+muss\s+absagen"),
        Intent.RESCHEDULE: (r"(?:den\s+termin\s+)?verschieben",),
        Intent.CLAIM: (r"ich\s+übernehme(?:\s+(?:das|es|die\s+anfrage))?",),
        Intent.RELEASE: (r"ich\s+gebe\s+(?:es|sie|die\s+anfrage)\s+zurück",),
    },
    within={
        Intent.WITHDRAW: (r"\bich\s+brauche\s+keine\s+hilfe\s+mehr\b",),
        Intent.RESCHEDULE: (r"\b(?:können|koennen)\s+wir\s+(?:den\s+termin\s+)?verschieben\b",),
    },
    negation=r"\b(?:nicht|kein|keine|nie)\b",
    doubt=r"\b(?:nicht\s+sicher|weiß\s+noch\s+nicht|mal\s+sehen)\b",
    asks_us=r"\b(?:können|könnten)\s+sie\b|\bbitte\b",
    proposes=r"\b(?:(?:können|koennen)\s+wir|wie\s+wäre\s+es|ginge\s+auch|lieber|stattdessen)\b",
    weekdays={
        "montag": 0,
        "dienstag": 1,
        "mittwoch": 2,
        "donnerstag": 3,
        "freitag": 4,
        "samstag": 5,
        "sonntag": 6,
    },
    relative_days={"heute": 0, "morgen": 1, "übermorgen": 2},
)

LEXICONS: tuple[Lexicon, ...] = (ENGLISH, GERMAN)

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_CLAUSE = re.compile(r"[,;:()]|\s[-–—]+\s")
_PUNCTUATION = " \t.!?\"'*_"
_CLOCK = re.compile(
    rf"(?:\b(?:at|um|@)\s*)?(?P<clock>{time_pattern('p')})(?!\s*(?:min|hours?|years?|%))",
    re.IGNORECASE,
)


def read_intent(text: str, lexicons: tuple[Lexicon, ...] = LEXICONS) -> IntentReading | None:
    """The one thing ``text`` asks for, in any lexicon's words, or None (see the module
    docstring for what counts)."""
    words = own_words(text).lower().replace("’", "'")
    for lexicon in lexicons:
        if re.search(lexicon.doubt, words):
            return None
    found: list[IntentReading] = []
    for lexicon in lexicons:
        for sentence_match in _SENTENCE.finditer(words):
            sentence = sentence_match.group()
            found += _read_sentence(sentence, lexicon)
    intents = {reading.intent for reading in found}
    if intents <= {Intent.CANCEL, Intent.RESCHEDULE} and Intent.RESCHEDULE in intents:
        moves = [r for r in found if r.intent is Intent.RESCHEDULE]
        return next((r for r in moves if r.proposed is not None), moves[0])
    return found[0] if len(intents) == 1 else None


def _read_sentence(sentence: str, lexicon: Lexicon) -> list[IntentReading]:
    question = sentence.rstrip().endswith("?")
    proposed = _proposed_time(sentence, lexicon)
    readings: list[IntentReading] = []
    if proposed is not None and re.search(lexicon.proposes, sentence):
        # "Can we do 7:30am instead?", "How about Thursday at 6pm?"
        readings.append(IntentReading(Intent.RESCHEDULE, sentence.strip(_PUNCTUATION), proposed))
    for raw_clause in _CLAUSE.split(sentence):
        clause = " ".join(raw_clause.strip(_PUNCTUATION).split())
        if not clause:
            continue
        asks_us = bool(re.search(lexicon.asks_us, clause))
        for intent in Intent:
            if not _says(clause, intent, lexicon):
                continue
            if question and intent is not Intent.RESCHEDULE and not asks_us:
                continue  # "Should I renew?" asks nothing of us
            when = proposed if intent is Intent.RESCHEDULE else None
            readings.append(IntentReading(intent, clause, when))
    return readings


def _says(clause: str, intent: Intent, lexicon: Lexicon) -> bool:
    """Whether ``clause`` asks for ``intent`` in ``lexicon``'s words, not negated."""
    for pattern in lexicon.whole.get(intent, ()):
        whole = rf"{lexicon.lead}(?:{lexicon.asks_us}\s+)?(?:{pattern}){lexicon.tail}"
        if re.fullmatch(whole, clause):
            return True
    for pattern in lexicon.within.get(intent, ()):
        match = re.search(pattern, clause)
        if match and not re.search(lexicon.negation, clause[: match.start()]):
            return True
    return False


def _proposed_time(sentence: str, lexicon: Lexicon) -> ProposedTime | None:
    """A day and/or a clock time named in ``sentence``: "Thursday at 6pm", "7:30am"."""
    weekday = days_ahead = minute = None
    said: list[str] = []
    for word in re.findall(r"[^\W\d_]+", sentence):
        if word in lexicon.weekdays and weekday is None:
            weekday = lexicon.weekdays[word]
            said.append(word)
        elif word in lexicon.relative_days and days_ahead is None:
            days_ahead = lexicon.relative_days[word]
            said.append(word)
    for match in _CLOCK.finditer(sentence):
        bare = not (match.group("pap") or match.group("pm") or match.group("pw"))
        if bare and not match.group().lstrip().startswith(("at", "um", "@")):
            continue  # "3" alone is no time; "at 3" is
        read = clock_minutes(match, "p")
        if read is not None:
            minute = read[0]
            if bare and 1 <= minute // 60 <= 6:
                minute += 720  # "at 6" for a meeting is in the evening
            said.append(match.group("clock").strip())
            break
    if weekday is None and days_ahead is None and minute is None:
        return None
    return ProposedTime(weekday, days_ahead, minute, " ".join(said))
