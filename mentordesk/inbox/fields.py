"""Tolerant reading of the ``Key: value`` forms people type into email (SPEC §4).

Labels in any order and case, with aliases ("TZ", "Bio", "Sessions per month"), bullets
and Markdown bold tolerated, values continued on following lines. Timezones, weekly
availability, skills and capacity are read as leniently as we can while still being sure;
whatever cannot be read becomes one plain sentence in ``FormFields.problems`` that names
the field and quotes what was written, so the reply can ask for exactly that.

Pure functions over strings; no I/O.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "FIELD_NAMES",
    "FormFields",
    "Window",
    "form_labels",
    "format_windows",
    "normalise_skills",
    "parse_availability",
    "parse_form",
    "resolve_timezone",
]

FIELD_NAMES = ("name", "skills", "timezone", "availability", "capacity", "about", "details")
_MAX_CAPACITY = 50


@dataclass(frozen=True, order=True)
class Window:
    """One weekly availability window in the person's own timezone."""

    weekday: int  # 0 = Monday
    start_minute: int  # minutes after local midnight
    end_minute: int  # > start_minute, ≤ 1440


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

    timezone = None
    if zone_text := values.get("timezone"):
        timezone = resolve_timezone(zone_text)
        if timezone is None:
            problems.append(
                f"Timezone: I don't know the timezone “{_shown(zone_text)}”. Please use a name "
                "like Europe/Berlin or a city like Chicago."
            )

    windows: tuple[Window, ...] = ()
    if availability_text := values.get("availability"):
        windows, unread = _read_availability(availability_text)
        if not windows:
            problems.append(f"Availability: {_availability_error(availability_text)}")
        elif unread:
            skipped = "”, “".join(_shown(chunk, 40) for chunk in unread)
            problems.append(
                f"Availability: I couldn't read “{skipped}”; I understood "
                f"{format_windows(windows)}. Please write days and times like Tue 18:00-20:00."
            )

    capacity = None
    if capacity_text := values.get("capacity"):
        capacity = _capacity(capacity_text)
        if capacity is None:
            problems.append(
                f"Capacity: I couldn't read “{_shown(capacity_text)}” as a number of sessions "
                f"per month. Please write a number from 1 to {_MAX_CAPACITY}, like 2."
            )

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
    )


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


# --- timezones -------------------------------------------------------------------------

_ZONE_NAMES = {
    # Abbreviations and region names, read the way people in those places mean them.
    "est": "America/New_York", "edt": "America/New_York", "et": "America/New_York",
    "eastern": "America/New_York", "us eastern": "America/New_York",
    "cst": "America/Chicago", "cdt": "America/Chicago", "ct": "America/Chicago",
    "central": "America/Chicago", "us central": "America/Chicago",
    "mst": "America/Denver", "mdt": "America/Denver", "mt": "America/Denver",
    "mountain": "America/Denver", "arizona": "America/Phoenix",
    "pst": "America/Los_Angeles", "pdt": "America/Los_Angeles", "pt": "America/Los_Angeles",
    "pacific": "America/Los_Angeles", "us pacific": "America/Los_Angeles",
    "akst": "America/Anchorage", "akdt": "America/Anchorage", "alaska": "America/Anchorage",
    "hst": "Pacific/Honolulu", "hawaii": "Pacific/Honolulu",
    "gmt": "Europe/London", "bst": "Europe/London", "british": "Europe/London",
    "uk": "Europe/London", "united kingdom": "Europe/London", "england": "Europe/London",
    "scotland": "Europe/London", "wales": "Europe/London",
    "wet": "Europe/Lisbon", "west": "Europe/Lisbon",
    "cet": "Europe/Berlin", "cest": "Europe/Berlin", "mez": "Europe/Berlin",
    "mesz": "Europe/Berlin", "central european": "Europe/Berlin",
    "eet": "Europe/Athens", "eest": "Europe/Athens", "eastern european": "Europe/Athens",
    "msk": "Europe/Moscow", "ist": "Asia/Kolkata", "india": "Asia/Kolkata",
    "pkt": "Asia/Karachi", "sgt": "Asia/Singapore", "hkt": "Asia/Hong_Kong",
    "jst": "Asia/Tokyo", "japan": "Asia/Tokyo", "kst": "Asia/Seoul",
    "aest": "Australia/Sydney", "aedt": "Australia/Sydney",
    "australian eastern": "Australia/Sydney", "acst": "Australia/Adelaide",
    "acdt": "Australia/Adelaide", "awst": "Australia/Perth",
    "nzst": "Pacific/Auckland", "nzdt": "Pacific/Auckland", "new zealand": "Pacific/Auckland",
    "brt": "America/Sao_Paulo", "art": "America/Argentina/Buenos_Aires",
    "wat": "Africa/Lagos", "cat": "Africa/Maputo", "eat": "Africa/Nairobi",
    "sast": "Africa/Johannesburg",
    "utc": "UTC", "z": "UTC", "zulu": "UTC", "universal": "UTC",
    "coordinated universal": "UTC",
    # Big cities whose name is not the last part of an IANA zone.
    "san francisco": "America/Los_Angeles", "sf": "America/Los_Angeles",
    "bay area": "America/Los_Angeles", "silicon valley": "America/Los_Angeles",
    "seattle": "America/Los_Angeles", "san diego": "America/Los_Angeles",
    "san jose": "America/Los_Angeles", "la": "America/Los_Angeles",
    "las vegas": "America/Los_Angeles", "boston": "America/New_York",
    "nyc": "America/New_York", "brooklyn": "America/New_York",
    "washington dc": "America/New_York", "washington d c": "America/New_York",
    "dc": "America/New_York", "atlanta": "America/New_York", "miami": "America/New_York",
    "philadelphia": "America/New_York", "pittsburgh": "America/New_York",
    "baltimore": "America/New_York", "charlotte": "America/New_York",
    "raleigh": "America/New_York", "orlando": "America/New_York",
    "austin": "America/Chicago", "dallas": "America/Chicago", "houston": "America/Chicago",
    "san antonio": "America/Chicago", "minneapolis": "America/Chicago",
    "nashville": "America/Chicago", "kansas city": "America/Chicago",
    "st louis": "America/Chicago", "new orleans": "America/Chicago",
    "salt lake city": "America/Denver", "montreal": "America/Toronto",
    "ottawa": "America/Toronto", "calgary": "America/Edmonton",
    "munich": "Europe/Berlin", "munchen": "Europe/Berlin", "hamburg": "Europe/Berlin",
    "frankfurt": "Europe/Berlin", "cologne": "Europe/Berlin", "koln": "Europe/Berlin",
    "stuttgart": "Europe/Berlin", "dusseldorf": "Europe/Berlin", "leipzig": "Europe/Berlin",
    "barcelona": "Europe/Madrid", "milan": "Europe/Rome", "milano": "Europe/Rome",
    "manchester": "Europe/London", "edinburgh": "Europe/London", "glasgow": "Europe/London",
    "lyon": "Europe/Paris", "marseille": "Europe/Paris", "geneva": "Europe/Zurich",
    "rotterdam": "Europe/Amsterdam", "krakow": "Europe/Warsaw",
    "saint petersburg": "Europe/Moscow", "st petersburg": "Europe/Moscow",
    "bangalore": "Asia/Kolkata", "bengaluru": "Asia/Kolkata", "mumbai": "Asia/Kolkata",
    "delhi": "Asia/Kolkata", "new delhi": "Asia/Kolkata", "chennai": "Asia/Kolkata",
    "hyderabad": "Asia/Kolkata", "pune": "Asia/Kolkata", "beijing": "Asia/Shanghai",
    "shenzhen": "Asia/Shanghai", "guangzhou": "Asia/Shanghai", "osaka": "Asia/Tokyo",
    "kyoto": "Asia/Tokyo", "tel aviv": "Asia/Jerusalem", "abu dhabi": "Asia/Dubai",
    "hanoi": "Asia/Ho_Chi_Minh", "rio de janeiro": "America/Sao_Paulo",
    "istanbul": "Europe/Istanbul", "turkey": "Europe/Istanbul", "turkiye": "Europe/Istanbul",
    "cape town": "Africa/Johannesburg", "abuja": "Africa/Lagos",
    # Countries that keep one timezone.
    "germany": "Europe/Berlin", "france": "Europe/Paris", "spain": "Europe/Madrid",
    "italy": "Europe/Rome", "netherlands": "Europe/Amsterdam", "belgium": "Europe/Brussels",
    "switzerland": "Europe/Zurich", "austria": "Europe/Vienna", "ireland": "Europe/Dublin",
    "sweden": "Europe/Stockholm", "norway": "Europe/Oslo", "denmark": "Europe/Copenhagen",
    "finland": "Europe/Helsinki", "poland": "Europe/Warsaw", "czechia": "Europe/Prague",
    "czech republic": "Europe/Prague", "greece": "Europe/Athens", "ukraine": "Europe/Kyiv",
    "romania": "Europe/Bucharest", "hungary": "Europe/Budapest", "nigeria": "Africa/Lagos",
    "kenya": "Africa/Nairobi", "ghana": "Africa/Accra", "south africa": "Africa/Johannesburg",
    "egypt": "Africa/Cairo", "israel": "Asia/Jerusalem", "pakistan": "Asia/Karachi",
    "bangladesh": "Asia/Dhaka", "china": "Asia/Shanghai", "south korea": "Asia/Seoul",
    "korea": "Asia/Seoul", "taiwan": "Asia/Taipei", "philippines": "Asia/Manila",
    "vietnam": "Asia/Ho_Chi_Minh", "thailand": "Asia/Bangkok", "singapore": "Asia/Singapore",
    "colombia": "America/Bogota", "peru": "America/Lima", "argentina":
    "America/Argentina/Buenos_Aires",
}  # fmt: skip
# Zones at a fractional offset where one zone is the obvious reading (+9:30 is not:
# Darwin and Adelaide differ in summer).
_FRACTIONAL_OFFSETS = {
    (3, 30): "Asia/Tehran", (4, 30): "Asia/Kabul", (5, 30): "Asia/Kolkata",
    (5, 45): "Asia/Kathmandu", (6, 30): "Asia/Yangon", (8, 45): "Australia/Eucla",
    (10, 30): "Australia/Lord_Howe", (12, 45): "Pacific/Chatham",
    (-3, -30): "America/St_Johns", (-9, -30): "Pacific/Marquesas",
}  # fmt: skip
_OFFSET = re.compile(
    r"^(?:utc|gmt|z)?\s*(?P<sign>[+-])\s*(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?"
    r"\s*(?:h|hrs?|hours?)?$"
)
_ZONE_SUFFIX = re.compile(
    r"\s+(?:(?:standard|daylight|summer|winter)\s+)?time(?:\s+zone)?$|\s+zone$"
)
_LEGACY_AREAS = ("Etc/", "SystemV/", "US/", "Canada/", "Mexico/", "Brazil/", "Chile/")


def _fold(text: str) -> str:
    """Lower case, accents removed ("São Paulo" → "sao paulo"), punctuation to spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    plain = re.sub(r"[.'’]", "", plain)
    return re.sub(r"[\s_-]+", " ", plain).strip()


@functools.cache
def _zone_index() -> tuple[dict[str, str], dict[str, str]]:
    """(lower-case IANA name → name, folded city → zone), built once from tzdata."""
    names = zoneinfo.available_timezones() - {"localtime", "Factory"}
    exact = {name.lower(): name for name in names}
    cities: dict[str, str] = {}
    # Deeper names first: America/Argentina/Buenos_Aires is canonical,
    # America/Buenos_Aires only a backward-compatible link.
    for name in sorted(names, key=lambda n: (-n.count("/"), n)):
        if "/" in name and not name.startswith(_LEGACY_AREAS):
            cities.setdefault(_fold(name.rsplit("/", 1)[1]), name)
    return exact, cities


def resolve_timezone(text: str) -> str | None:
    """An IANA timezone name for what someone wrote, or None if we can't be sure.

    Accepts IANA names in any case, common abbreviations (EST → America/New_York), city
    and single-zone country names, and offsets: "UTC+2" → Etc/GMT-2 (POSIX sign, as in
    tzdata), "UTC+5:30" → Asia/Kolkata where one zone is the obvious reading.
    """
    text = _CONTROL.sub(" ", text).strip().strip("\"'“”").strip()
    if not text or len(text) > 200:
        return None
    zone = _zone_for(text)
    if zone:
        return zone
    # "Berlin, Germany", "EST (New York)", "Eastern Time (US & Canada)", "CET / UTC+1"
    for part in re.split(r"[,;()\[\]|]|\s/\s|\s+or\s+", text):
        if part.strip() and (zone := _zone_for(part.strip())):
            return zone
    return None


def _zone_for(text: str) -> str | None:
    exact, cities = _zone_index()
    iana = re.sub(r"\s*/\s*", "/", text).replace(" ", "_").lower()
    folded = _fold(text)
    unsuffixed = _ZONE_SUFFIX.sub("", folded)
    for key in (folded, unsuffixed):
        if key in _ZONE_NAMES:
            return _ZONE_NAMES[key]
    if iana in exact:
        return exact[iana]
    offset = _OFFSET.match(text.lower().replace("−", "-").replace(" ", ""))
    if offset:
        return _offset_zone(offset)
    for key in (folded, unsuffixed):
        if key in cities:
            return cities[key]
    return None


def _offset_zone(match: re.Match[str]) -> str | None:
    sign = -1 if match.group("sign") == "-" else 1
    hours, minutes = int(match.group("hours")), int(match.group("minutes") or 0)
    if minutes:
        return _FRACTIONAL_OFFSETS.get((sign * hours, sign * minutes))
    if hours == 0:
        return "UTC"
    # POSIX-style names invert the sign: Etc/GMT-2 is two hours *ahead* of UTC.
    name = f"Etc/GMT{'-' if sign > 0 else '+'}{hours}"
    return name if name.lower() in _zone_index()[0] else None


# --- availability ----------------------------------------------------------------------

_DAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_PATTERN = (
    r"(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:s|nesday)?|thu(?:rs?(?:day)?)?"
    r"|fri(?:day)?|sat(?:urday)?|sun(?:day)?)s?"
)
_DAY_GROUPS = {
    "weekday": range(5), "weekdays": range(5), "workday": range(5), "workdays": range(5),
    "work day": range(5), "work days": range(5), "weekend": range(5, 7),
    "weekends": range(5, 7), "daily": range(7), "every day": range(7),
    "everyday": range(7), "any day": range(7), "all week": range(7),
}  # fmt: skip


def _time_pattern(name: str) -> str:
    return (
        rf"(?:(?<![\w:.])(?P<{name}h>\d{{1,2}})(?:[:.h](?P<{name}m>\d{{2}}))?(?!\d)"
        rf"\s*(?P<{name}ap>[ap]m\b)?h?|(?P<{name}w>noon|midday|midnight))"
    )


_RANGE_SEPARATOR = r"\s*(?:-|to|till|until|til|thru|through)\s*"
_ITEM = re.compile(
    rf"(?P<range>{_time_pattern('s')}{_RANGE_SEPARATOR}{_time_pattern('e')})"
    rf"|\b(?P<d1>{_DAY_PATTERN})\s*(?:-|to|through|thru|till|until)\s*(?P<d2>{_DAY_PATTERN})\b"
    rf"|\b(?P<group>{'|'.join(sorted(_DAY_GROUPS, key=len, reverse=True))})\b"
    rf"|\b(?P<day>{_DAY_PATTERN})\b",
    re.IGNORECASE,
)
_CHUNK_SEPARATOR = re.compile(r"[,;\n|]|\.(?=\s|$)|\s/\s")
_AVAILABILITY_FILLER = frozenset(
    {"and", "or", "also", "my", "time", "local", "timezone", "please", "on", "at", "from", "every"}
)


def _weekday(word: str) -> int:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(word[:3].lower())


def _minutes(match: re.Match[str], name: str) -> tuple[int, str | None] | None:
    """(minutes after midnight, "am"/"pm"/None); None when it is no time of day."""
    word = (match.group(f"{name}w") or "").lower()
    if word:
        return (0 if word == "midnight" else 720), ("pm" if word != "midnight" else "am")
    hours, minutes = int(match.group(f"{name}h")), int(match.group(f"{name}m") or 0)
    meridiem = (match.group(f"{name}ap") or "").lower() or None
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    if meridiem:
        if not 1 <= hours <= 12:
            return None
        hours = hours % 12 + (12 if meridiem == "pm" else 0)
    return hours * 60 + minutes, meridiem


def _time_range(match: re.Match[str]) -> tuple[int, int] | None:
    """(start, end) minutes; end may be ≤ start for a window that runs past midnight."""
    start, end = _minutes(match, "s"), _minutes(match, "e")
    if start is None or end is None:
        return None
    (start_minute, start_meridiem), (end_minute, end_meridiem) = start, end
    if (match.group("ew") or "").lower() == "midnight":
        end_minute = 1440
    if end_meridiem and not start_meridiem and match.group("sh"):
        # "6-8pm": the start shares the end's half of the day if that keeps it first.
        hours = int(match.group("sh"))
        shifted = (hours % 12 + (12 if end_meridiem == "pm" else 0)) * 60 + start_minute % 60
        if 1 <= hours <= 12 and shifted < end_minute:
            start_minute = shifted
    elif not end_meridiem and match.group("eh") and end_minute <= start_minute < 1440:
        # "9-5" and "6pm-8" mean 9:00-17:00 and 18:00-20:00; "22-1" stays overnight.
        later = end_minute + 720
        if end_minute < 720 and later > start_minute and (start_meridiem or start_minute < 780):
            end_minute = later
    if end_minute == 0 and start_minute > 0:
        end_minute = 1440  # "22:00-0:00" ends at midnight
    if start_minute >= 1440 or start_minute == end_minute:
        return None
    return start_minute, end_minute


def _read_availability(text: str) -> tuple[tuple[Window, ...], list[str]]:
    """Windows read from ``text`` and the pieces of it that could not be read.

    Days carry forward to the next time ("Mon, Wed 18-20"), a time with no days of its
    own uses the days before it ("Sat 10-12, 14-16"), and a time may come first
    ("18:00-20:00 on Tuesdays").
    """
    # Runs of spaces collapsed: the item pattern has adjacent optional spaces.
    normal = re.sub(r"[ \t]+", " ", re.sub(r"[‐-―−]", "-", _CONTROL.sub(" ", text)))
    normal = re.sub(r"\b([ap])\.m\.?", r"\1m", normal, flags=re.IGNORECASE)
    normal = re.sub(r"\bbetween\s+(\S+)\s+and\b", r"\1 to", normal, flags=re.IGNORECASE)

    windows: list[Window] = []
    unread: list[str] = []
    pending: set[int] = set()  # days still waiting for a time
    pending_text: list[str] = []  # ... and where they were written
    last_days: set[int] = set()  # days that got the latest time

    def emit(days: Iterable[int], ranges: list[tuple[int, int]]) -> None:
        nonlocal last_days
        last_days = set(days)
        for day in last_days:
            for start, end in ranges:
                windows.extend(_windows(day, start, end))

    for chunk in _CHUNK_SEPARATOR.split(normal):
        items, leftover, bad = _scan(chunk)
        if bad or (not items and not _ignorable(leftover)):
            unread.append(chunk.strip())
        days, ranges, leading = set(pending), list[tuple[int, int]](), list[tuple[int, int]]()
        pending = set()
        if items and not any(isinstance(item, tuple) for item in items):
            pending_text.append(chunk.strip())
        elif items:
            pending_text = []
        for item in items:
            if isinstance(item, tuple):
                ranges.append(item)
            elif ranges and days:  # "Tue 18-20 Sat 10-12": a new group starts
                emit(days, ranges)
                days, ranges = set(item), []
            else:
                if ranges:  # "18-20 on Tue"
                    leading, ranges = ranges, []
                days |= item
        if days and (ranges or leading):
            emit(days, ranges or leading)
        elif days:
            pending = days
        elif ranges and last_days:
            emit(last_days, ranges)
        elif ranges and not bad:
            unread.append(chunk.strip())
    if pending:
        unread.append(", ".join(pending_text))  # days that never got a time
    return _merge(windows), [chunk for chunk in unread if chunk]


def _scan(chunk: str) -> tuple[list[set[int] | tuple[int, int]], str, bool]:
    """Day sets and (start, end) ranges in ``chunk`` in order; the text left; any bad time."""
    items: list[set[int] | tuple[int, int]] = []
    bad = False
    for match in _ITEM.finditer(chunk):
        if match.group("range"):
            span = _time_range(match)
            if span is None:
                bad = True
            else:
                items.append(span)
        elif match.group("d1"):
            first, last = _weekday(match.group("d1")), _weekday(match.group("d2"))
            items.append({(first + i) % 7 for i in range((last - first) % 7 + 1)})
        elif match.group("group"):
            group = re.sub(r"\s+", " ", match.group("group").lower())
            items.append(set(_DAY_GROUPS[group]))
        else:
            items.append({_weekday(match.group("day"))})
    return items, _ITEM.sub(" ", chunk), bad


def _ignorable(leftover: str) -> bool:
    words = re.findall(r"[^\W_]+", leftover.lower())
    return all(word in _AVAILABILITY_FILLER for word in words) or bool(resolve_timezone(leftover))


def _windows(day: int, start: int, end: int) -> list[Window]:
    if end > start:
        return [Window(day, start, end)]
    # Past midnight: the rest of the day, then the early hours of the next.
    tonight = Window(day, start, 1440)
    return [tonight, Window((day + 1) % 7, 0, end)] if end > 0 else [tonight]


def _merge(windows: Iterable[Window]) -> tuple[Window, ...]:
    merged: list[Window] = []
    for window in sorted(windows):
        last = merged[-1] if merged else None
        if last and last.weekday == window.weekday and window.start_minute <= last.end_minute:
            end = max(last.end_minute, window.end_minute)
            merged[-1] = Window(last.weekday, last.start_minute, end)
        else:
            merged.append(window)
    return tuple(merged)


def _availability_error(text: str) -> str:
    return (
        f"I couldn't read any days and times in “{_shown(text)}”. Please write them like "
        "Tue 18:00-20:00, Sat 10:00-12:00."
    )


def parse_availability(text: str) -> tuple[Window, ...]:
    """Weekly windows from text like "Tue 18:00-20:00, Sat 10am to noon", sorted and merged.

    Unreadable pieces are skipped; ValueError (a sentence to show the sender) when nothing
    at all can be read.
    """
    windows, _ = _read_availability(text)
    if not windows:
        raise ValueError(_availability_error(text))
    return windows


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_windows(windows: Sequence[Window]) -> str:
    """ "Mon–Fri 19:00–21:00, Sat 10:00–12:00" (en dash; a window to midnight ends at 24:00).

    Days sharing the same hours are grouped, and a run of three or more consecutive days
    is written as a range, so a confirmation echoes back what people wrote, not a list.
    """
    by_hours: dict[tuple[int, int], list[int]] = {}
    for w in sorted(windows):
        days = by_hours.setdefault((w.start_minute, w.end_minute), [])
        if w.weekday not in days:
            days.append(w.weekday)
    groups = sorted(by_hours.items(), key=lambda item: (min(item[1]), item[0]))
    return ", ".join(
        f"{_day_list(days)} {_clock(start)}–{_clock(end)}" for (start, end), days in groups
    )


def _day_list(days: Sequence[int]) -> str:
    """[0, 1, 2, 3, 4, 6] → "Mon–Fri, Sun"; [1, 3] → "Tue, Thu"."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        names = [_DAY_ABBREVIATIONS[d] for d in run]
        parts.append(f"{names[0]}–{names[-1]}" if len(run) >= 3 else ", ".join(names))
    return ", ".join(parts)
