"""Weekly hours said in sentences: "I'm usually free weekday evenings after 6pm".

``hours_in_prose`` reads the sentences of a message that are about availability;
``read_hours_value`` reads an ``Availability:`` value written in words, when the strict
reader of ``inbox/hours.py`` cannot.

What the vague words are taken to mean (every acknowledgement echoes the reading, so a
person can correct it by replying):

===========================================  ===============================================
words                                        read as
===========================================  ===============================================
early mornings                               06:00–09:00
mornings, in the morning                     08:00–12:00
late mornings                                10:00–12:00
lunchtime, over lunch, lunch break           12:00–13:00
noon, midday, around noon                    11:30–13:30
afternoons                                   12:00–17:00
late afternoons                              15:00–18:00
early evenings                               17:00–19:00
evenings, after work, after school           18:00–22:00
late evenings, nights, at night              20:00–23:00
before work                                  07:00–09:00
any time, anytime, all day, whenever         09:00–21:00
after T ("after 6pm", "from 6pm", "6pm       T to 22:00, at least two hours and at most four:
onwards")                                    after 6pm 18:00–22:00, after 9pm 21:00–23:00
before T ("before 9am", "until 9am", "by 9") two to four hours up to T, from 08:00 if that
                                             leaves two: before 9am 07:00–09:00, before noon
                                             08:00–12:00
around T ("around 7pm", "7ish")              T − 30 min to T + 90 min: a session starting
                                             around T (around 7pm 18:30–20:30)
at T ("at 7pm", "Tuesdays 7pm")              T to an hour later
T1 to T2 ("7 to 9am", "6-8pm", "between 6    as said
and 8")
a part of the day with a time                the time, within that part: "evenings after
("weekday evenings after 6pm", "mornings,    6pm" 18:00–22:00, "mornings, 7 to 9am"
7 to 9am")                                   07:00–09:00
weekdays, workdays, during the week          Monday to Friday
weeknights                                   Monday to Friday, 18:00–22:00
weekends, the weekend                        Saturday and Sunday
every day, daily, any day                    all seven days
days with no time ("Saturdays")              those days, 09:00–21:00
a time with no days ("mornings")             every day
a bare hour, no am/pm ("after 6", "7-9")     in a part of the day, that part's half
                                             ("evenings 7-9" 19:00–21:00); alone, 1–6 are
                                             afternoon (13:00–18:00) and 7–11 morning
===========================================  ===============================================

Days are named in full ("Tuesdays"), as capitalised abbreviations ("Tue", "Thurs") or as
ranges ("Mon-Fri", "Monday to Friday"); "except Fridays" and "but not Fridays" take days
away. A clause saying no ("I can't do mornings", "Mondays are busy") gives nothing. Only
sentences about availability count: those with a word such as "free", "available",
"works", "best" or "usually", or made mostly of days and times ("Weekday mornings, 7 to
9am Pacific."); "my cron job runs at 6pm on Mondays" is not read.

Pure functions over strings; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .hours import (
    RANGE_SEPARATOR,
    Window,
    clock_minutes,
    merge_windows,
    time_pattern,
    time_range,
    weekday_number,
)
from .quoting import strip_greeting
from .zones import zone_in_prose

__all__ = ["MEANINGS", "HoursReading", "hours_in_prose", "read_hours_value"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")

# --- in sentences ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """A part of the day: the window it means alone, the stretch a time said with it
    must fall in to refine it, and whether a bare hour in it is after noon."""

    start: int
    end: int
    low: int
    high: int
    pm: bool


def _h(hours: float) -> int:
    return round(hours * 60)


_PARTS = {
    "early morning": _Part(_h(6), _h(9), _h(4), _h(10), False),
    "morning": _Part(_h(8), _h(12), _h(5), _h(12), False),
    "late morning": _Part(_h(10), _h(12), _h(9), _h(13), False),
    "before work": _Part(_h(7), _h(9), _h(5), _h(10), False),
    "lunch": _Part(_h(12), _h(13), _h(11), _h(14.5), True),
    "noon": _Part(_h(11.5), _h(13.5), _h(11), _h(14), True),
    "afternoon": _Part(_h(12), _h(17), _h(12), _h(18), True),
    "late afternoon": _Part(_h(15), _h(18), _h(14), _h(19), True),
    "early evening": _Part(_h(17), _h(19), _h(16), _h(20), True),
    "evening": _Part(_h(18), _h(22), _h(17), _h(24), True),
    "late evening": _Part(_h(20), _h(23), _h(19), _h(24), True),
}
_PART_WORDS = {
    "early mornings": "early morning", "early morning": "early morning",
    "first thing in the morning": "early morning", "late mornings": "late morning",
    "late morning": "late morning", "mornings": "morning", "morning": "morning",
    "before work": "before work", "lunchtimes": "lunch", "lunchtime": "lunch",
    "lunch times": "lunch", "lunch time": "lunch", "lunch breaks": "lunch",
    "lunch break": "lunch", "over lunch": "lunch", "at lunch": "lunch", "noon": "noon",
    "midday": "noon", "late afternoons": "late afternoon", "late afternoon": "late afternoon",
    "afternoons": "afternoon", "afternoon": "afternoon", "early evenings": "early evening",
    "early evening": "early evening", "late evenings": "late evening",
    "late evening": "late evening", "late at night": "late evening",
    "late nights": "late evening", "evenings": "evening", "evening": "evening",
    "after work": "evening", "after school": "evening", "after hours": "evening",
    "at night": "late evening", "nights": "late evening", "night": "late evening",
}  # fmt: skip
_ALL_DAY = (_h(9), _h(21))
_WEEKDAYS = frozenset(range(5))
_EVERY_DAY = frozenset(range(7))

# What the documentation promises, phrase by phrase: tests hold the reader to it.
MEANINGS: tuple[tuple[str, tuple[Window, ...]], ...] = tuple(
    (phrase, tuple(Window(day, start, end) for day in days))
    for phrase, days, start, end in (
        ("early mornings", _EVERY_DAY, _h(6), _h(9)),
        ("mornings", _EVERY_DAY, _h(8), _h(12)),
        ("in the morning", _EVERY_DAY, _h(8), _h(12)),
        ("late mornings", _EVERY_DAY, _h(10), _h(12)),
        ("lunchtime", _EVERY_DAY, _h(12), _h(13)),
        ("over lunch", _EVERY_DAY, _h(12), _h(13)),
        ("noon", _EVERY_DAY, _h(11.5), _h(13.5)),
        ("around noon", _EVERY_DAY, _h(11.5), _h(13.5)),
        ("afternoons", _EVERY_DAY, _h(12), _h(17)),
        ("late afternoons", _EVERY_DAY, _h(15), _h(18)),
        ("early evenings", _EVERY_DAY, _h(17), _h(19)),
        ("evenings", _EVERY_DAY, _h(18), _h(22)),
        ("after work", _EVERY_DAY, _h(18), _h(22)),
        ("late evenings", _EVERY_DAY, _h(20), _h(23)),
        ("nights", _EVERY_DAY, _h(20), _h(23)),
        ("at night", _EVERY_DAY, _h(20), _h(23)),
        ("before work", _EVERY_DAY, _h(7), _h(9)),
        ("any time", _EVERY_DAY, _h(9), _h(21)),
        ("all day", _EVERY_DAY, _h(9), _h(21)),
        ("after 6pm", _EVERY_DAY, _h(18), _h(22)),
        ("after 9pm", _EVERY_DAY, _h(21), _h(23)),
        ("from 2pm", _EVERY_DAY, _h(14), _h(18)),
        ("6pm onwards", _EVERY_DAY, _h(18), _h(22)),
        ("before 9am", _EVERY_DAY, _h(7), _h(9)),
        ("before noon", _EVERY_DAY, _h(8), _h(12)),
        ("until 6pm", _EVERY_DAY, _h(14), _h(18)),
        ("around 7pm", _EVERY_DAY, _h(18.5), _h(20.5)),
        ("7ish", _EVERY_DAY, _h(6.5), _h(8.5)),
        ("at 7pm", _EVERY_DAY, _h(19), _h(20)),
        ("7 to 9am", _EVERY_DAY, _h(7), _h(9)),
        ("6-8pm", _EVERY_DAY, _h(18), _h(20)),
        ("between 6 and 8pm", _EVERY_DAY, _h(18), _h(20)),
        ("evenings after 6pm", _EVERY_DAY, _h(18), _h(22)),
        ("evenings 7-9", _EVERY_DAY, _h(19), _h(21)),
        ("afternoons 1-3", _EVERY_DAY, _h(13), _h(15)),
        ("mornings, 7 to 9am", _EVERY_DAY, _h(7), _h(9)),
        ("mornings before 10", _EVERY_DAY, _h(8), _h(10)),
        ("weekdays", _WEEKDAYS, _h(9), _h(21)),
        ("during the week", _WEEKDAYS, _h(9), _h(21)),
        ("weeknights", _WEEKDAYS, _h(18), _h(22)),
        ("weekends", frozenset({5, 6}), _h(9), _h(21)),
        ("Saturdays", frozenset({5}), _h(9), _h(21)),
        ("every day", _EVERY_DAY, _h(9), _h(21)),
        ("weekday evenings after 6pm", _WEEKDAYS, _h(18), _h(22)),
        ("weekday mornings, 7 to 9am", _WEEKDAYS, _h(7), _h(9)),
        ("Tuesdays or Thursdays around noon", frozenset({1, 3}), _h(11.5), _h(13.5)),
        ("any time on weekends", frozenset({5, 6}), _h(9), _h(21)),
        ("Mon-Fri after 5", _WEEKDAYS, _h(17), _h(21)),
        ("weekdays except Fridays", frozenset(range(4)), _h(9), _h(21)),
    )
)


@dataclass(frozen=True)
class HoursReading:
    """Weekly hours read from sentences, and the words they were read from."""

    windows: tuple[Window, ...]
    said: str  # as written: "weekday evenings after 6pm"


_DAY_FULL = r"(?:monday|tuesday|tues|wednesday|weds|thursday|thurs|friday|saturday|sunday)s?"
# Abbreviations count in capitals only: "sat" and "sun" are words.
_DAY_SHORT = r"(?-i:Mon|Tues?|Weds?|Thu|Thur|Thurs|Fri|Sat|Sun|MON|TUES?|WEDS?|THURS?|FRI|SAT|SUN)"
_DAY_ANY = rf"(?:{_DAY_FULL}|mon|tues?|weds?|thur?s?|fri|sat|sun)"
_DAY_GROUP = (
    r"week\s?days?|work\s?days?|work\s+days?|(?:during|in)\s+the\s+week|(?:the\s+)?weekends?"
    r"|every\s*day|daily|any\s+day|all\s+week|(?:7|seven)\s+days\s+a\s+week"
)
_NOT_A_TIME = (
    r"(?!\s*+(?:min(?:ute)?s?\b|hours?\b|hrs?\b|years?\b|yrs?\b|months?\b|weeks?\b|days?\b"
    r"|times\b|sessions?\b|people\b|percent\b|%|k\b|x\b|st\b|nd\b|rd\b|th\b|/))"
)
_PROSE_ITEM = re.compile(
    rf"(?P<range>(?:\bfrom\s+)?{time_pattern('s')}{RANGE_SEPARATOR}{time_pattern('e')})"
    rf"{_NOT_A_TIME}"
    rf"|(?P<mod>\b(?:after|from|since|past|before|until|till|til|by|around|about|roughly"
    rf"|approximately|approx|circa|at)\b|@)\s*{time_pattern('m')}{_NOT_A_TIME}"
    rf"|(?P<onward>{time_pattern('o')}\s*(?:onwards?|or\s+later|and\s+later)\b)"
    rf"|(?P<ish>{time_pattern('i')}\s*-?\s*ish\b)"
    rf"|\b(?P<weeknight>week\s?nights?)\b"
    rf"|\b(?P<part>in\s+the\s+(?:early\s+|late\s+)?(?:morning|afternoon|evening)s?"
    rf"|{'|'.join(sorted(_PART_WORDS, key=len, reverse=True))})\b"
    rf"|\b(?P<anytime>any\s*time|all\s+day|whenever|any\s+hour)\b"
    rf"|\b(?P<d1>{_DAY_ANY})\s*(?:-|to|through|thru|till|until)\s*(?P<d2>{_DAY_ANY})\b"
    rf"|\b(?P<group>{_DAY_GROUP})\b"
    rf"|\b(?P<day>{_DAY_FULL}|{_DAY_SHORT})\b\.?"
    rf"|(?P<except>\b(?:except(?:\s+(?:for|on))?|but\s+not|other\s+than|apart\s+from"
    rf"|excluding)\b)"
    rf"|(?P<no>\b(?:not|never|can'?t|cannot|won'?t|unavailable|busy|booked|no\s+good"
    rf"|i\s+work|i'?m\s+(?:at\s+work|working)|at\s+work|shifts?)\b)"
    rf"|(?P<reason>\b(?:since|because|cause|as\s+i|as\s+my|when\s+i)\b)"
    rf"|(?P<clause>[,;:()]|\bbut\b|\bso\b(?!\s+(?:far|much|many)))"
    rf"|(?P<time>{time_pattern('t')}){_NOT_A_TIME}",
    re.IGNORECASE,
)
_AVAILABILITY_CUE = re.compile(
    r"\b(?:free|available|availability|avail|works?|suits?|best|prefer\w*|(?:can|could)\s+"
    r"(?:meet|do|talk|chat|make|call)|open|flexible|whenever|any\s*time|usually|generally"
    r"|typically|normally|mostly|reach\s+me|call\s+me|except|busy|unavailable|schedule|slots?)\b",
    re.IGNORECASE,
)
_FILLER_WORDS = frozenset(
    {
        "i", "i'm", "im", "am", "is", "are", "be", "on", "at", "in", "the", "a", "an", "or",
        "and", "also", "only", "just", "usually", "generally", "mostly", "typically",
        "normally", "best", "work", "works", "good", "great", "fine", "ok", "okay", "for",
        "me", "my", "time", "times", "local", "please", "pm", "ish", "would", "could", "can",
        "do", "free", "available", "any", "every", "each", "most", "both", "either", "all",
        "but", "from", "to", "until", "till", "so", "too", "then", "preferably", "ideally",
        "like", "around", "about", "except", "not",
        "it", "that", "this", "those", "these", "when", "whenever", "suits", "suit", "prefer",
        "slot", "slots", "hours", "hour", "day", "days", "week", "weeks", "weekly", "per",
        "here", "there", "i'd", "id", "i'll", "we", "we're", "you", "your", "us", "our", "as",
        "well", "more", "less", "earlier", "later", "early", "late",
    }
)  # fmt: skip
_PROSE_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_MAX_PROSE_CHARS = 20_000


@dataclass
class _Group:
    """Days and times said together ("weekday evenings after 6pm")."""

    days: set[int] = field(default_factory=set)
    excluded: set[int] = field(default_factory=set)
    times: list[tuple[str, re.Match[str]]] = field(default_factory=list)
    first: str = ""  # "days" or "times": which came first
    last: str = ""


def hours_in_prose(text: str) -> HoursReading | None:
    """Weekly hours said in sentences about availability (see the module docstring)."""
    windows, said, _ = _read_prose(text, gated=True)
    return HoursReading(windows, said) if windows else None


def read_hours_value(text: str) -> HoursReading | None:
    """Hours in an ``Availability:`` value written in words ("weekday evenings after 6pm"),
    or None unless every word of it was understood."""
    windows, said, leftover = _read_prose(text, gated=False)
    return HoursReading(windows, said) if windows and not leftover else None


def _read_prose(text: str, *, gated: bool) -> tuple[tuple[Window, ...], str, list[str]]:
    """(windows, the words read, words not understood) of the sentences about hours."""
    text = _normal(text[:_MAX_PROSE_CHARS])
    groups: list[_Group] = []
    current = _Group()
    saids: list[str] = []
    leftover: list[str] = []
    for sentence_match in re.finditer(r"[^.!?\n]+(?:[.!?]+|\n|$)|\n", _paragraphs(text)):
        sentence = sentence_match.group()
        items = [m for m in _PROSE_ITEM.finditer(sentence) if _is_item(m)]
        useful = [m for m in items if _kind(m) in ("days", "times", "days+times", "except")]
        if not useful:
            continue
        unread = _unread_words(sentence, items)
        if (
            gated
            and not _AVAILABILITY_CUE.search(sentence)
            and len(unread) * 4 > len(_PROSE_WORD.findall(sentence))
        ):
            continue
        leftover += unread
        used: list[re.Match[str]] = []
        current = _group_sentence(items, current, groups, used)
        if current.days and current.times:
            groups.append(current)
            current = _Group(excluded=set(current.excluded))
        if used:
            said = sentence[used[0].start() : used[-1].end()].strip(" ,;:.-(")
            saids.append(re.sub(r"\s+", " ", said))
    groups.append(current)
    windows: list[Window] = []
    for group in groups:
        windows += _group_windows(group)
    return merge_windows(windows), "; ".join(saids)[:300], leftover


def _normal(text: str) -> str:
    """Dashes as "-", "a.m." as "am", "between 6 and 8" as "6 to 8", greetings ("Good
    morning,") blanked, keeping every character's position, so that what was read can
    be quoted from the original."""
    text = _CONTROL.sub(" ", text)
    text = "\n".join(_without_greeting(line) for line in text.split("\n"))
    text = re.sub(r"[‐-―−~]", "-", text)
    text = re.sub(
        r"\b([ap])\.\s?m\.?",
        lambda m: m.group(1) + "m" + " " * (len(m.group()) - 2),
        text,
        flags=re.IGNORECASE,
    )
    text = re.sub(r"o['’]?clock\b", lambda m: " " * len(m.group()), text, flags=re.IGNORECASE)
    return re.sub(
        r"\bbetween(\s+\S+\s+)and\b",
        lambda m: " " * 7 + m.group(1) + "to ",
        text,
        flags=re.IGNORECASE,
    )


def _without_greeting(line: str) -> str:
    """``line`` with a greeting at its start blanked: "Good morning, I'm free" → "      …"."""
    rest = strip_greeting(line)
    if rest == line or not line.endswith(rest):
        return line
    return " " * (len(line) - len(rest)) + rest


def _paragraphs(text: str) -> str:
    """Lines of one paragraph joined (mail clients wrap at 72 characters); a blank line
    or a list item ends a sentence. Keeps every character's position."""
    return re.sub(r"(?<=[^\n.!?])\n(?!\s*(?:[-*•]|\d+[.)])\s|\s*\n)", " ", text)


_ALTERNATIVES = (
    "range", "mod", "onward", "ish", "weeknight", "part", "anytime", "d1", "group", "day",
    "except", "no", "reason", "clause", "time",
)  # fmt: skip


def _alternative(match: re.Match[str]) -> str:
    """Which alternative of ``_PROSE_ITEM`` matched (``lastgroup`` names an inner group)."""
    return next(name for name in _ALTERNATIVES if match.group(name) is not None)


def _kind(match: re.Match[str]) -> str:
    name = _alternative(match)
    if name in ("d1", "group", "day"):
        return "days"
    if name == "weeknight":
        return "days+times"
    if name in ("except", "no", "reason", "clause"):
        return name
    return "times"


def _is_item(match: re.Match[str]) -> bool:
    """Whether a match is a day, time or word we read; times need to look like times."""
    name = _alternative(match)
    if name == "time":  # a time alone needs am/pm or minutes: "7pm", "18:30", not "3"
        written = match.group()
        return bool(match.group("tap") or (match.group("tm") and ":" in written))
    if name in ("range", "mod", "onward", "ish"):
        return _span_of(match) is not None
    return True


def _unread_words(sentence: str, items: list[re.Match[str]]) -> list[str]:
    """Words of ``sentence`` that are neither read nor filler nor a zone."""
    covered = [(m.start(), m.end()) for m in items]
    zone = zone_in_prose(sentence)
    unread = []
    for word in _PROSE_WORD.finditer(sentence):
        if any(start <= word.start() < end for start, end in covered):
            continue
        lowered = word.group().lower().replace("’", "'")
        if lowered in _FILLER_WORDS or (zone and word.group() in zone.said.split()):
            continue
        unread.append(word.group())
    return unread


def _group_sentence(
    items: list[re.Match[str]],
    current: _Group,
    groups: list[_Group],
    used: list[re.Match[str]],
) -> _Group:
    """Add one sentence's days and times to ``current``, closing groups as the order
    says ("Tue 6pm, Thu 7pm" is two; "weekday evenings after 6pm" one); the items that
    say when the writer is free go to ``used``."""
    negated = False  # "except", "but not": the rest of the clause
    clauses: list[list[re.Match[str]]] = [[]]
    for match in items:
        if _kind(match) == "clause":
            clauses.append([])
        else:
            clauses[-1].append(match)
    for clause in clauses:
        denied = any(_kind(m) == "no" for m in clause)  # "I can't do mornings"
        negated = False
        for match in clause:
            kind = _kind(match)
            if kind == "reason":  # "since I start at 10": why, not when
                break
            if kind == "except":
                negated = True
                continue
            if kind == "no":
                continue
            days = _days_of(match)
            if (negated or denied) and kind in ("days", "days+times"):
                current.excluded |= days
                continue
            if negated or denied:
                continue
            used.append(match)
            if kind in ("days", "days+times"):
                if current.first == "days" and current.last == "times":
                    groups.append(current)
                    current = _Group()
                current.days |= days
                current.first = current.first or "days"
                current.last = "days"
            if kind in ("times", "days+times"):
                if current.first == "times" and current.days and current.last == "days":
                    groups.append(current)
                    current = _Group()
                current.times.append((_alternative(match), match))
                current.first = current.first or "times"
                current.last = "times"
    return current


def _days_of(match: re.Match[str]) -> set[int]:
    name = _alternative(match)
    if name == "d1":
        first, last = weekday_number(match.group("d1")), weekday_number(match.group("d2"))
        return {(first + i) % 7 for i in range((last - first) % 7 + 1)}
    if name == "group":
        word = re.sub(r"\s+", " ", match.group("group").lower())
        if "end" in word:
            return {5, 6}
        return set(range(5)) if "week" in word or "work" in word else set(range(7))
    if name == "day":
        return {weekday_number(match.group("day"))}
    if name == "weeknight":
        return set(range(5))
    return set()


def _group_windows(group: _Group) -> list[Window]:
    """The windows one group of days and times means."""
    if not group.days and not group.times:
        return []
    days = (group.days or set(range(7))) - group.excluded
    parts: list[tuple[int, _Part]] = []
    explicit: list[tuple[int, re.Match[str]]] = []
    anytime = False
    for index, (name, match) in enumerate(group.times):
        if name == "part":
            parts.append((index, _PARTS[_part_name(match.group("part"))]))
        elif name == "weeknight":
            parts.append((index, _PARTS["evening"]))
        elif name == "anytime":
            anytime = True
        else:
            explicit.append((index, match))
    spans: list[tuple[int, int]] = []
    refined: set[int] = set()
    for index, match in explicit:
        fitting = [
            (abs(index - at), at, part)
            for at, part in parts
            if (span := _span_of(match, part)) is not None and part.low <= span[0] < part.high
        ]
        if fitting:
            _, at, part = min(fitting, key=lambda item: item[:2])
            refined.add(at)
            span = _span_of(match, part)
        else:
            span = _span_of(match)
        if span is not None:
            spans.append(span)
    spans += [(part.start, part.end) for at, part in parts if at not in refined]
    if not spans or (anytime and not spans):
        spans = [_ALL_DAY]
    return [
        Window(day, start, min(end, 1440))
        for day in sorted(days)
        for start, end in spans
        if 0 <= start < min(end, 1440)
    ]


def _part_name(words: str) -> str:
    words = re.sub(r"\s+", " ", words.lower())
    if words.startswith("in the "):
        words = words[len("in the ") :]
    return _PART_WORDS.get(words) or _PART_WORDS[words.rstrip("s")]


def _span_of(match: re.Match[str], part: _Part | None = None) -> tuple[int, int] | None:
    """(start, end) minutes an explicit time means, alone or said with ``part``."""
    name = _alternative(match)
    if name == "range":
        span = time_range(match)
        if span is None:
            return None
        start, end = span
        if end <= start:
            end = 1440  # prose hours stay within their day
        if _bare(match, "s") and _bare(match, "e"):
            start, end = _bare_range(start, end, part)
        return start, end
    prefix = {"mod": "m", "onward": "o", "ish": "i", "time": "t"}.get(name or "")
    if prefix is None:
        return None
    read = clock_minutes(match, prefix)
    if read is None:
        return None
    moment = _bare_hour(read[0], part) if _bare(match, prefix) else read[0]
    if moment >= 1440:
        return None
    if name == "mod":
        word = match.group("mod").lower()
        if word in ("after", "from", "since", "past"):
            return _after(moment, part)
        if word in ("before", "until", "till", "til", "by"):
            return _before(moment, part)
        if word in ("around", "about", "roughly", "approximately", "approx", "circa"):
            return max(moment - 30, 0), min(moment + 90, 1440)
        return moment, min(moment + 60, 1440)  # "at 7pm"
    if name == "onward":
        return _after(moment, part)
    if name == "ish":
        return max(moment - 30, 0), min(moment + 90, 1440)
    return moment, min(moment + 60, 1440)  # "Tuesdays 7pm"


def _bare(match: re.Match[str], prefix: str) -> bool:
    """An hour with no am/pm, no minutes and no word: "6" in "after 6"."""
    return bool(
        match.group(f"{prefix}h")
        and not match.group(f"{prefix}ap")
        and not match.group(f"{prefix}m")
        and 1 <= int(match.group(f"{prefix}h")) <= 12
    )


def _bare_hour(minute: int, part: _Part | None) -> int:
    """A bare hour's minute of the day: in a part of the day, that part's half; alone,
    1-6 are after noon and 7-12 before it (12 is noon)."""
    hour = minute // 60
    if part is not None:
        return minute + 720 if part.pm and hour < 12 else minute
    return minute + 720 if 1 <= hour <= 6 else minute


def _bare_range(start: int, end: int, part: _Part | None) -> tuple[int, int]:
    """ "7-9" in the evening is 19:00-21:00; alone, "6-8" is 18:00-20:00, "9-11" 09:00-11:00."""
    if part is not None:
        if part.pm:
            start, end = (start + 720 if start < 720 else start), (end + 720 if end <= 720 else end)
        return start, min(end, 1440)
    if 60 <= start <= 6 * 60 and end <= 720:
        return start + 720, end + 720
    return start, end


def _after(moment: int, part: _Part | None) -> tuple[int, int]:
    """ "after T": to the end of the part of the day, or to 22:00, at least two hours."""
    if part is not None and part.end - moment >= 60:
        return moment, part.end
    return moment, min(max(moment + 120, min(moment + 240, _h(22))), 1440)


def _before(moment: int, part: _Part | None) -> tuple[int, int]:
    """ "before T": from the start of the part of the day, or two to four hours before,
    from 08:00 if that leaves two."""
    if part is not None and moment - part.start >= 60:
        return part.start, moment
    return max(min(moment - 120, max(moment - 240, _h(8))), 0), moment
