"""Time zones as people name them: in a form field, or anywhere in a sentence.

``resolve_timezone`` reads a value written for a ``Timezone:`` label: an IANA name in any
case, a common abbreviation (EST, CET), a region (Pacific, Central European), a city
(Chicago, São Paulo), a country with one zone (Nigeria, UK) or an offset (UTC+2).

``zone_in_prose`` finds one in free text ("I'm in Chicago", "here in Lagos", "7 to 9am
Pacific", "CET", "UK time"). A sentence mentions places for many reasons, so a word
counts as the writer's zone only where it is said as one:

=====================================================  ======================  ==========
how it is said                                         example                 rank
=====================================================  ======================  ==========
right after a clock time                               "7 to 9am Pacific"      0 (firm)
an IANA name or a UTC/GMT offset                       "Europe/Berlin", "UTC+2" 1 (firm)
an abbreviation in capitals                            "CET", "EST"            1 (firm)
any zone word followed by "time"/"time zone"           "UK time", "Pacific     1 (firm)
                                                       Standard Time"
a region alone in its clause                           "Pacific."              1 (firm)
a place after the writer's own "in"                    "I'm in Chicago", "here 2 (firm)
                                                       in Lagos", "I live in
                                                       São Paulo", "based in"
a place after a bare "in", "from", "near"              "from Lagos"            3
=====================================================  ======================  ==========

A place needs its cue: a name alone ("Sofia", "Regina", "Phoenix") is more often a
person or a thing. Abbreviations that are also words (ART, CAT, EAT, WAT, WEST, MET and
the two-letter ET, CT, MT, PT) count only after a clock time or before "time". A place
said of the past or of someone else ("I grew up in Lagos", "my mentor is in London") is
no reading. The lowest rank wins, then the first said; a place with several zones ("the
US", "Canada") is a reading with no zone, so the reply can ask which.

Pure functions over strings; no I/O.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass

__all__ = ["ZoneReading", "has_several_zones", "resolve_timezone", "zone_in_prose"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class ZoneReading:
    """A time zone read from free text."""

    zone: str | None  # IANA name; None for a place with several zones ("the US")
    said: str  # the words it was read from, as written: "Chicago", "UK time"
    firm: bool  # said as the writer's own zone (ranks 0-2), not just "in X"


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

# More places people name, each with one obvious zone.
_MORE_PLACES = {
    "california": "America/Los_Angeles", "oregon": "America/Los_Angeles",
    "nevada": "America/Los_Angeles", "washington state": "America/Los_Angeles",
    "pacific northwest": "America/Los_Angeles", "west coast": "America/Los_Angeles",
    "mountain view": "America/Los_Angeles", "palo alto": "America/Los_Angeles",
    "oakland": "America/Los_Angeles", "sacramento": "America/Los_Angeles",
    "portland": "America/Los_Angeles", "texas": "America/Chicago",
    "illinois": "America/Chicago", "minnesota": "America/Chicago",
    "wisconsin": "America/Chicago", "missouri": "America/Chicago",
    "louisiana": "America/Chicago", "oklahoma": "America/Chicago",
    "iowa": "America/Chicago", "milwaukee": "America/Chicago", "st paul": "America/Chicago",
    "colorado": "America/Denver", "utah": "America/Denver", "new mexico": "America/Denver",
    "albuquerque": "America/Denver", "east coast": "America/New_York",
    "new jersey": "America/New_York", "massachusetts": "America/New_York",
    "pennsylvania": "America/New_York", "ohio": "America/New_York",
    "virginia": "America/New_York", "north carolina": "America/New_York",
    "south carolina": "America/New_York", "maryland": "America/New_York",
    "connecticut": "America/New_York", "columbus": "America/New_York",
    "cleveland": "America/New_York", "cincinnati": "America/New_York",
    "ontario": "America/Toronto", "quebec": "America/Toronto",
    "british columbia": "America/Vancouver", "alberta": "America/Edmonton",
    "nova scotia": "America/Halifax", "new south wales": "Australia/Sydney",
    "queensland": "Australia/Brisbane", "western australia": "Australia/Perth",
    "canberra": "Australia/Sydney", "bay area": "America/Los_Angeles",
    "central europe": "Europe/Berlin", "bavaria": "Europe/Berlin", "berlin": "Europe/Berlin",
    "kenya": "Africa/Nairobi", "lagos": "Africa/Lagos", "port harcourt": "Africa/Lagos",
    "ibadan": "Africa/Lagos", "kano": "Africa/Lagos", "uae": "Asia/Dubai",
    "dubai": "Asia/Dubai", "saudi arabia": "Asia/Riyadh", "sri lanka": "Asia/Colombo",
    "nepal": "Asia/Kathmandu", "malaysia": "Asia/Kuala_Lumpur",
    "hong kong": "Asia/Hong_Kong", "great britain": "Europe/London",
    "northern ireland": "Europe/London", "portugal": "Europe/Lisbon",
    "uganda": "Africa/Kampala", "tanzania": "Africa/Dar_es_Salaam",
    "ethiopia": "Africa/Addis_Ababa", "rwanda": "Africa/Kigali", "morocco": "Africa/Casablanca",
    "tunisia": "Africa/Tunis", "cameroon": "Africa/Douala", "senegal": "Africa/Dakar",
    "jamaica": "America/Jamaica", "puerto rico": "America/Puerto_Rico",
    "venezuela": "America/Caracas", "ecuador": "America/Guayaquil",
    "uruguay": "America/Montevideo", "costa rica": "America/Costa_Rica",
    "guatemala": "America/Guatemala", "iran": "Asia/Tehran", "iraq": "Asia/Baghdad",
    "lebanon": "Asia/Beirut", "armenia": "Asia/Yerevan",
    "bulgaria": "Europe/Sofia", "serbia": "Europe/Belgrade", "croatia": "Europe/Zagreb",
    "slovakia": "Europe/Bratislava", "slovenia": "Europe/Ljubljana",
    "lithuania": "Europe/Vilnius", "latvia": "Europe/Riga", "estonia": "Europe/Tallinn",
    "iceland": "Atlantic/Reykjavik", "luxembourg": "Europe/Luxembourg",
}  # fmt: skip
# Places with more than one zone: named, but not enough to know which.
_MANY_ZONES = frozenset(
    {
        "us", "usa", "the us", "the usa", "united states", "the united states", "america",
        "the states", "canada", "australia", "brazil", "russia", "mexico", "indonesia",
        "kazakhstan", "mongolia", "chile", "north america", "south america", "europe",
        "africa", "asia", "latin america", "eastern europe", "western europe",
    }
)  # fmt: skip

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


def has_several_zones(text: str) -> bool:
    """Whether ``text`` names a place with more than one zone ("US", "Canada", "Europe")."""
    return _fold(text).removeprefix("the ") in _MANY_ZONES


def _zone_for(text: str) -> str | None:
    exact, cities = _zone_index()
    iana = re.sub(r"\s*/\s*", "/", text).replace(" ", "_").lower()
    folded = _fold(text)
    unsuffixed = _ZONE_SUFFIX.sub("", folded)
    for key in (folded, unsuffixed):
        if key in _ZONE_NAMES:
            return _ZONE_NAMES[key]
        if key in _MORE_PLACES:
            return _MORE_PLACES[key]
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


# --- in sentences ----------------------------------------------------------------------

# Written in capitals they are zones; in lower case, or when they are also words,
# only beside a clock time or before "time".
_ABBREVIATIONS = frozenset(
    {
        "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt", "akst", "akdt", "hst", "gmt",
        "bst", "wet", "cet", "cest", "mez", "mesz", "eet", "eest", "msk", "ist", "pkt", "sgt",
        "hkt", "jst", "kst", "aest", "aedt", "acst", "acdt", "awst", "nzst", "nzdt", "brt",
        "sast", "utc",
    }
)  # fmt: skip
_WORDLIKE_ABBREVIATIONS = frozenset(
    {"et", "ct", "mt", "pt", "art", "cat", "eat", "wat", "west", "z"}
)
_REGIONS = frozenset(
    {
        "eastern", "central", "mountain", "pacific", "us eastern", "us central", "us pacific",
        "british", "central european", "eastern european", "australian eastern", "zulu",
        "universal", "coordinated universal",
    }
)  # fmt: skip
# Last parts of IANA names that are more often ordinary words or people's names.
_NOT_PLACES = frozenset(
    {
        "center", "wake", "easter", "christmas", "midway", "troll", "resolute", "oral", "casey",
        "davis", "palmer", "currie", "stanley", "johnston", "mawson", "macquarie", "knox",
        "petersburg", "vevay", "winamac", "marengo", "beulah", "monticello", "tell city",
        "vincennes", "salem", "dawson", "norfolk", "chatham", "cordoba", "merida",
        "chihuahua", "reunion", "yap", "truk", "wallis", "jordan",
    }
)  # fmt: skip
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_GAP = re.compile(r"[ \t.-]{1,3}")  # between the words of one name: "São Paulo", "St. Louis"
_CLOCK = re.compile(r"\d{1,2}(?:[ap]m)?|[ap]m|noon|midday|o'?clock|ish", re.IGNORECASE)
_NAMED_AS_ZONE = re.compile(
    r"[ \t-]*(?:(?:standard|daylight|summer|winter)[ \t]+)?(?:time\b|timezone\b|tz\b)",
    re.IGNORECASE,
)
_BASED = re.compile(r"[ \t]*-?[ \t]*based\b|[ \t]+(?:area|region)\b", re.IGNORECASE)
_IANA_IN_TEXT = re.compile(r"\b[A-Za-z]+/[A-Za-z_]+(?:/[A-Za-z_]+)?\b")
_OFFSET_IN_TEXT = re.compile(
    r"\b(?:UTC|GMT)[ \t]*[+−-][ \t]*\d{1,2}(?::?\d{2})?(?![\d:])", re.IGNORECASE
)
_CLAUSE_END = re.compile(r"[.,;:!?()\[\]\n]")
# "I'm in", "here in", "based in", "moved to": the writer says where they are.
_OWN_CUE = re.compile(
    r"(?:\b(?:i'?m|i\s+am|we'?re|we\s+are|here|based|located|living|live|currently"
    r"|now|reside|residing|staying|stay|work|working)(?:\s+(?:right\s+now|currently|now"
    r"|mostly|usually|also))?\s+(?:in|out\s+of|near|around)"
    r"|\b(?:moved|relocated)\s+to)\s+(?:the\s+)?$"
)
_PLAIN_CUE = re.compile(r"\b(?:in|from|near|outside(?:\s+of)?|around)\s+(?:the\s+)?$")
# Said of the past, a journey or someone else: not where the writer is.
_NOT_THE_WRITER = re.compile(
    r"\b(?:used|grew|born|originally|was|were|visit(?:ing|ed)?|trip|travel(?:l?ing)?"
    r"|vacation|holidays?|not|never|moving|mentor|he|she|they|his|her|their|company|team"
    r"|office|headquartered|hq|client|customer|family|parents?)\b"
)

# "... in London next week", "... in Lisbon for a conference": a trip, not a home.
_NOT_HOME_AFTER = re.compile(
    r"\s+(?:next|this|the\s+coming|in\s+a)\s+(?:week|month|weekend)|\s+for\s+(?:a|the|two|\d+)"
    r"\s+(?:conference|trip|holiday|vacation|visit|week|weeks|days|months?|workshop)"
    r"|\s+(?:until|till|on\s+(?:holiday|vacation|business))\b"
)


def zone_in_prose(text: str) -> ZoneReading | None:
    """The writer's own time zone named anywhere in ``text``, or None.

    See the module docstring for what counts. A reading with ``zone`` None means a place
    with several zones was named and nothing more precise.
    """
    text = _CONTROL.sub(" ", text[:_MAX_PROSE_CHARS])
    text = _WRAPPED.sub(" ", text)  # "I'm based in\nBerlin." as a mail client wrapped it
    found: list[tuple[int, int, ZoneReading]] = []  # (rank, position, reading)
    for match in _IANA_IN_TEXT.finditer(text):
        name = _zone_index()[0].get(match.group().lower())
        if name and "/" in name and not name.startswith(_LEGACY_AREAS):
            found.append((1, match.start(), ZoneReading(name, match.group(), True)))
    for match in _OFFSET_IN_TEXT.finditer(text):
        offset = _OFFSET.match(match.group().lower().replace("−", "-").replace(" ", ""))
        if offset and (zone := _offset_zone(offset)):
            found.append((1, match.start(), ZoneReading(zone, match.group(), True)))
    words = list(_WORD.finditer(text))
    for i in range(len(words)):
        for n in (4, 3, 2, 1):
            if i + n > len(words) or not _one_name(text, words, i, n):
                continue
            start, end = words[i].start(), words[i + n - 1].end()
            kind, zone = _lookup(_fold(text[start:end]))
            if kind is None:
                continue
            rank, said_end = _rank(text, words, i, n, kind)
            if rank is not None:
                said = re.sub(r"\s+", " ", text[start:said_end])
                found.append((rank, start, ZoneReading(zone, said, rank <= 2)))
            break  # the longest name at this word, read or not
    if not found:
        return None
    precise = [item for item in found if item[2].zone] or found
    return min(precise, key=lambda item: (item[0], item[1]))[2]


_MAX_PROSE_CHARS = 20_000
# A line break inside a paragraph: after a long line (mail clients wrap at 72-78).
_WRAPPED = re.compile(r"(?<=[^\n]{40})\n(?=\S)")


def _one_name(text: str, words: list[re.Match[str]], i: int, n: int) -> bool:
    """Words i..i+n-1 stand next to each other, as one name does."""
    return all(
        _GAP.fullmatch(text[words[k].end() : words[k + 1].start()]) for k in range(i, i + n - 1)
    )


def _lookup(key: str) -> tuple[str | None, str | None]:
    """(kind, zone) of a folded word or words: abbreviation, wordlike, region, place,
    many (a place with several zones), or (None, None)."""
    if key in _MANY_ZONES:
        return "many", None
    if key in _ZONE_NAMES:
        zone = _ZONE_NAMES[key]
        if key in _ABBREVIATIONS:
            return "abbreviation", zone
        if key in _WORDLIKE_ABBREVIATIONS:
            return "wordlike", zone
        return ("region" if key in _REGIONS else "place"), zone
    if key in _MORE_PLACES:
        return "place", _MORE_PLACES[key]
    cities = _zone_index()[1]
    if key in cities and key not in _NOT_PLACES:
        return "place", cities[key]
    return None, None


def _rank(
    text: str, words: list[re.Match[str]], i: int, n: int, kind: str
) -> tuple[int | None, int]:
    """How surely words i..i+n-1 name the writer's zone (see the module docstring), and
    where the words to echo end."""
    start, end = words[i].start(), words[i + n - 1].end()
    written = text[start:end]
    named = _NAMED_AS_ZONE.match(text, end)
    if kind == "many" and written in ("us", "Us"):
        return None, end  # the pronoun
    gap = text[words[i - 1].end() : start] if i > 0 else ""
    after_clock = i > 0 and _GAP.fullmatch(gap or " ") and _CLOCK.fullmatch(words[i - 1].group())
    if after_clock and kind != "many":
        return 0, end
    if named:
        return 1, named.end()
    if kind == "abbreviation":
        return (1 if written.isupper() else None), end
    if kind == "wordlike":
        return None, end
    clause_start = max((m.end() for m in _CLAUSE_END.finditer(text, 0, start)), default=0)
    before = text[clause_start:start].lower().replace("’", "'")
    if kind == "region":
        after = _CLAUSE_END.search(text, end)
        rest = text[end : after.start() if after else len(text)]
        return (1 if not before.strip() and not rest.strip() else None), end
    based = _BASED.match(text, end)
    after = _CLAUSE_END.search(text, end)
    rest = text[end : after.start() if after else len(text)].lower()
    if _NOT_THE_WRITER.search(" ".join(before.split()[-4:])) or _NOT_HOME_AFTER.match(rest):
        return None, end
    if _OWN_CUE.search(before):
        return 2, end
    if based:
        return 2, based.end() if "based" in based.group().lower() else end
    if _PLAIN_CUE.search(before):
        return 3, end
    return None, end
