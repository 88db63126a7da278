"""Tolerant reading of the ``Key: value`` forms people type into email (SPEC §4).

Labels in any order and case, with aliases ("TZ", "Bio", "Sessions per month"), bullets
and Markdown bold tolerated, values continued on following lines. Skills and capacity
are read here; time zones in ``inbox/zones.py``, weekly hours in ``inbox/hours.py``. A
form without a Timezone or Availability line may still say them in sentences ("I'm in
Chicago and usually free weekday evenings after 6pm"): ``parse_form`` reads those too
(``inbox/zones.py``, ``inbox/prose_hours.py``) and says so in ``FormFields.prose_zone``
and ``prose_hours``. Whatever cannot be read becomes one plain sentence in
``FormFields.problems`` that names the field and quotes what was written, so the reply
can ask for exactly that.

Pure functions over strings; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..calendar.conference import https_url_problem
from .hours import (
    Window,
    availability_error,
    format_windows,
    parse_availability,
    read_availability,
)
from .prose_hours import HoursReading, hours_in_prose, read_hours_value
from .zones import ZoneReading, has_several_zones, resolve_timezone, zone_in_prose

__all__ = [
    "FIELD_NAMES",
    "FormFields",
    "HoursReading",
    "Window",
    "ZoneReading",
    "form_labels",
    "format_windows",
    "normalise_skills",
    "parse_availability",
    "parse_form",
    "resolve_timezone",
]

FIELD_NAMES = (
    "name", "skills", "timezone", "availability", "capacity", "about", "details", "call_link",
)  # fmt: skip
# "Call link: none" takes a mentor's own link away.
_NO_LINK = frozenset({"none", "no", "-", "remove", "delete"})
_MAX_CAPACITY = 50


@dataclass(frozen=True)
class FormFields:
    """What a form said. ``present`` holds every field whose label appeared, even with an
    empty value; a value that could not be read is None/() and explained in ``problems``."""

    name: str | None
    skills: tuple[str, ...]
    timezone: str | None  # IANA name
    timezone_text: str | None  # as written, for echoing "Timezone: EST (America/New_York)"
    availability: tuple[Window, ...]
    availability_text: str | None
    capacity: int | None
    about: str | None
    details: str | None
    present: frozenset[str]
    problems: tuple[str, ...]
    prose_zone: ZoneReading | None = None  # the timezone, when said in a sentence
    prose_hours: HoursReading | None = None  # the availability, when said in sentences
    call_link: str | None = None  # a mentor's own video-call link; "" : take it away


# --- labels ----------------------------------------------------------------------------

_ALIASES = {
    "name": ("name", "full name", "your name"),
    "skills": (
        "skills", "skill", "topics", "topic", "interests", "interest", "tech",
        "technologies", "tech stack", "expertise",
    ),
    "timezone": ("timezone", "time zone", "tz", "zone", "location", "your timezone"),
    "availability": ("availability", "available", "availabilities", "when", "available times"),
    "capacity": (
        "capacity", "sessions per month", "sessions", "sessions/month", "sessions a month",
        "max sessions", "mentees",
    ),
    "about": ("about", "bio", "about me", "about you"),
    "call_link": (
        "call link", "call url", "video link", "video call link",
        "meeting link", "meeting url", "video call url",
    ),
    "details": (
        "details", "detail", "question", "questions", "description", "message", "request",
    ),
}  # fmt: skip
_LABELS = {alias: field for field, aliases in _ALIASES.items() for alias in aliases}
_TEXT_FIELDS = frozenset({"about", "details"})  # run on until the next label
_LIST_FIELDS = frozenset({"skills", "availability"})  # may continue on following lines

# "Skills: …", "- **Skills:** …", "* Skills: …", "1. Skills: …", "Skills：…" (full-width).
# Possessive quantifiers (*+, ++) keep long runs of spaces from backtracking quadratically.
_KEY_LINE = re.compile(
    r"^\s*+(?:[-*•·+]\s++|\d{1,2}[.)]\s++)?[*_]{0,2}+\s*+"
    r"(?P<label>[^\W\d_][\w /-]{0,30}?)\s*+[*_]{0,2}+\s*+[:：]\s*+[*_]{0,2}+(?P<value>.*)$"
)
_BULLET = re.compile(r"^\s*(?:[-*•·+]\s+|\d{1,2}[.)]\s+)")
# A sign-off ends a free-text field: "Thanks,", "Best regards, Maria", "Grüße aus Köln".
_VALEDICTION = re.compile(
    r"^\s*(?:thanks|thank you|many thanks|thanks again|best|best regards|kind regards|regards"
    r"|cheers|sincerely|warm regards|all the best|thx|ty|merci|obrigad[oa]|gracias|danke"
    r"|grazie|cordialement|saludos|(?:viele |liebe |beste )?gr(?:ü|ue)(?:ß|ss)e(?: aus \S+)?"
    r"|mit freundlichen gr(?:ü|ue)(?:ß|ss)en)\b[\s,.!]*(?:[,—–-]\s*\S+(?:\s+\S+)?\s*)?$",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _label(raw_label: str) -> str:
    return re.sub(r"[\s_-]+", " ", raw_label.strip().lower())


def form_labels(text: str) -> tuple[tuple[str, str], ...]:
    """Every recognised ``Label:`` line as (label as written, lower case; field name)."""
    found: list[tuple[str, str]] = []
    for line in text.split("\n"):
        match = _KEY_LINE.match(line)
        if match and (field := _LABELS.get(_label(match.group("label")))):
            found.append((_label(match.group("label")), field))
    return tuple(found)


def _raw_values(text: str) -> tuple[dict[str, str], set[str]]:
    """Field name → raw value text (first non-empty occurrence wins) and the labels seen."""
    values: dict[str, str] = {}
    present: set[str] = set()
    current: str | None = None
    inline = False  # the value started on the label's own line
    buffer: list[str] = []

    def finish() -> None:
        value = "\n".join(buffer).strip()
        if current and value and not values.get(current):
            values[current] = value

    for line in _CONTROL.sub("", text).split("\n"):
        match = _KEY_LINE.match(line)
        field = _LABELS.get(_label(match.group("label"))) if match else None
        if match and field:
            finish()
            value = _unbold(match.group("value"))
            current, inline, buffer = field, bool(value), [value] if value else []
            present.add(field)
            continue
        if current is None:
            continue
        if current in _TEXT_FIELDS:
            if len(line) <= 60 and _VALEDICTION.match(line):
                finish()
                current = None
            else:
                buffer.append(line.rstrip())
        elif not line.strip():
            if buffer:  # a blank line ends a value; before any value it is just spacing
                finish()
                current = None
        elif not buffer or (current in _LIST_FIELDS and _continues(buffer[-1], line, inline)):
            buffer.append(line.strip())
        else:
            finish()
            current = None
    finish()
    return values, present


def _continues(previous: str, line: str, inline: bool) -> bool:
    """Whether ``line`` carries on a skills/availability list begun on ``previous``."""
    if not inline or _BULLET.match(line):
        return True  # "Skills:" alone, then one item per line
    return bool(re.search(r"(?:[,;/&+]|\band|\bor)\s*$", previous, re.IGNORECASE))


def _unbold(value: str) -> str:
    value = value.replace("**", "").replace("__", "").strip()
    return value.strip("*_ \t")


def _shown(text: str, limit: int = 80) -> str:
    """``text`` as quoted back in a problem sentence: one line, not too long."""
    line = re.sub(r"\s+", " ", text).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def parse_form(text: str, synonyms: Mapping[str, str]) -> FormFields:
    """Read the form fields in ``text`` (already stripped of quotes and signature)."""
    values, present = _raw_values(text)
    problems: list[str] = []

    timezone, zone_text, prose_zone = _timezone(values.get("timezone"), text, problems)
    windows, availability_text, prose_hours = _availability(
        values.get("availability"), text, problems
    )

    capacity = None
    if capacity_text := values.get("capacity"):
        capacity = _capacity(capacity_text)
        if capacity is None:
            problems.append(
                f"Capacity: I couldn't read “{_shown(capacity_text)}” as a number of sessions "
                f"per month. Please write a number from 1 to {_MAX_CAPACITY}, like 2."
            )

    call_link = _call_link(values.get("call_link"), problems)
    name = re.sub(r"\s+", " ", values.get("name", "")).strip()[:200]
    return FormFields(
        name=name or None,
        skills=normalise_skills(values.get("skills", ""), synonyms),
        timezone=timezone,
        timezone_text=_shown(zone_text, 200) if zone_text else None,
        availability=windows,
        availability_text=_one_line(availability_text, 500) if availability_text else None,
        capacity=capacity,
        about=_paragraphs(values.get("about")),
        details=_paragraphs(values.get("details")),
        present=frozenset(present),
        problems=tuple(problems),
        prose_zone=prose_zone,
        prose_hours=prose_hours,
        call_link=call_link,
    )


def _call_link(text: str | None, problems: list[str]) -> str | None:
    """A mentor's own video-call link, checked (``calendar/conference.py``)."""
    if text is None:
        return None
    value = text.strip().strip("<>").strip()
    if value.lower().rstrip(".") in _NO_LINK:
        return ""
    problem = https_url_problem(value)
    if problem is None:
        return value
    problems.append(
        f"Call link: I couldn't use “{_shown(value)}” as your video-call link ({problem}). "
        "Please write the full address, like https://meet.jit.si/your-room."
    )
    return None


def _timezone(
    value: str | None, text: str, problems: list[str]
) -> tuple[str | None, str | None, ZoneReading | None]:
    """(IANA zone, the words it was read from, the reading when said in a sentence)."""
    if value:
        zone = resolve_timezone(value)
        if zone is None and has_several_zones(value):
            problems.append(
                f"Timezone: “{_shown(value)}” has more than one time zone. Please name your "
                "city (e.g. Chicago) or a zone (e.g. America/Chicago)."
            )
        elif zone is None:
            problems.append(
                f"Timezone: I don't know the timezone “{_shown(value)}”. Please use a name "
                "like Europe/Berlin or a city like Chicago."
            )
        return zone, value, None
    reading = zone_in_prose(_sentences(text))
    if reading is None:
        return None, None, None
    if reading.zone is None:
        problems.append(
            f"Timezone: “{reading.said}” has more than one time zone. Which city are you "
            "in, or near?"
        )
        return None, None, None
    return reading.zone, reading.said, reading


def _availability(
    value: str | None, text: str, problems: list[str]
) -> tuple[tuple[Window, ...], str | None, HoursReading | None]:
    """(windows, the words they were read from, the reading when said in sentences)."""
    if not value:
        reading = hours_in_prose(_sentences(text))
        return (reading.windows, reading.said, reading) if reading else ((), None, None)
    windows, unread = read_availability(value)
    if not windows or unread:
        in_words = read_hours_value(value)  # "weekday evenings after 6pm"
        if in_words is not None:
            return in_words.windows, value, None
    if not windows:
        problems.append(f"Availability: {availability_error(value)}")
    elif unread:
        skipped = "”, “".join(_shown(chunk, 40) for chunk in unread)
        problems.append(
            f"Availability: I couldn't read “{skipped}”; I understood "
            f"{format_windows(windows)}. Please write days and times like Tue 18:00-20:00."
        )
    return windows, value, None


def _sentences(text: str) -> str:
    """``text`` without the form lines that hold no sentences (Name, Skills, Capacity)."""
    kept = []
    for line in text.split("\n"):
        match = _KEY_LINE.match(line)
        field = _LABELS.get(_label(match.group("label"))) if match else None
        if field not in ("name", "skills", "capacity"):
            kept.append(line)
    return "\n".join(kept)


def _one_line(text: str, limit: int) -> str:
    """Lines of one value joined: "Tue 18-20\nSat 10-12" → "Tue 18-20, Sat 10-12"."""
    lines = [_BULLET.sub("", line).strip().rstrip(",;") for line in text.split("\n")]
    return _shown(", ".join(line for line in lines if line), limit)


def _paragraphs(text: str | None) -> str | None:
    """A free-text value, tidied; a last paragraph of one short line (a name signing off,
    "Ben") is dropped when there is more before it."""
    if not text:
        return None
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    paragraphs = re.split(r"\n\s*\n", text)
    last = paragraphs[-1]
    if len(paragraphs) > 1 and "\n" not in last and len(last) <= 30 and len(last.split()) <= 3:
        paragraphs.pop()
    return "\n\n".join(paragraphs).strip() or None


# --- skills ----------------------------------------------------------------------------

_SKILL_NOISE = frozenset({"etc", "etc.", "more", "and more", "others", "other", "e.g.", "misc"})


def normalise_skills(text: str, synonyms: Mapping[str, str]) -> tuple[str, ...]:
    """Split a skills list, lower-case it and map aliases to canonical names, in order.

    Separators: comma, semicolon, newline, bullets, and — unless the whole item is a
    known skill such as "ci/cd" — slash, " and ", " & ", " + ".
    """
    known = set(synonyms) | set(synonyms.values())
    skills: list[str] = []
    text = re.sub(r"[ \t]+", " ", text)  # one space between words keeps the split linear
    for piece in re.split(r"[,;\n|•()\[\]{}]+|\s+(?:and|&|\+)\s+", text, flags=re.IGNORECASE):
        item = _clean_skill(piece)
        for part in [item] if item in known else re.split(r"\s*/\s*", item):
            skill = _clean_skill(part)
            if skill and skill not in _SKILL_NOISE:
                skills.append(synonyms.get(skill, skill))
    return tuple(dict.fromkeys(skills))


def _clean_skill(text: str) -> str:
    text = _BULLET.sub("", text).replace("**", "").replace("__", "")
    text = re.sub(r"\s+", " ", text).strip().strip("\"'“”‘’`*_").strip()
    text = re.sub(r"^(?:and|or)\s+", "", text, flags=re.IGNORECASE)
    return text.rstrip(".!?:").strip().lower()


# --- capacity --------------------------------------------------------------------------

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "once": 1, "twice": 2, "a couple": 2, "couple": 2, "a few": 3,
}  # fmt: skip
_PER_WEEK = re.compile(r"\b(?:per|a|each|every)\s+week\b|\bweekly\b|/\s*w(?:ee)?k\b", re.I)


def _capacity(text: str) -> int | None:
    """Sessions per month: "2", "2 per month", "two", "1-2" (the most), "1 per week" (×4)."""
    lowered = text.lower()
    numbers = [int(n) for n in re.findall(r"\d{1,4}", lowered)]
    if not numbers:
        numbers = [n for word, n in _NUMBER_WORDS.items() if re.search(rf"\b{word}\b", lowered)]
    if not numbers:
        return None
    count = max(numbers) * (4 if _PER_WEEK.search(lowered) else 1)
    return count if 1 <= count <= _MAX_CAPACITY else None
