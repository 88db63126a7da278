"""inbox.fields: forms as people really type them, read against the shipped synonym table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from mentordesk.config import load_config
from mentordesk.inbox.fields import (
    FormFields,
    Window,
    form_labels,
    format_windows,
    normalise_skills,
    parse_availability,
    parse_form,
    resolve_timezone,
)
from mentordesk.inbox.parse import parse_message

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples"
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


@pytest.fixture(scope="module")
def synonyms() -> Mapping[str, str]:
    config = load_config(ROOT / "config.toml", {"MENTORDESK_SECRET": "s" * 32})
    return config.matching.synonyms


def h(hours: float) -> int:
    return round(hours * 60)


def window(day: int, start: float, end: float) -> Window:
    return Window(day, h(start), h(end))


def form_of(name: str, synonyms: Mapping[str, str]) -> FormFields:
    return parse_form(parse_message((SAMPLES / name).read_bytes()).new_text, synonyms)


# --- the samples' forms ----------------------------------------------------------------


def test_plain_enrollment(synonyms: Mapping[str, str]) -> None:
    assert form_of("01-enrollment-plain.eml", synonyms) == FormFields(
        name="Maria Garcia",
        skills=("python", "javascript", "career advice"),
        timezone="Europe/Berlin",
        timezone_text="Europe/Berlin",
        availability=(window(TUE, 18, 20), window(SAT, 10, 12)),
        availability_text="Tue 18:00-20:00, Sat 10:00-12:00",
        capacity=3,
        about="Backend developer for ten years, I have mentored juniors at work and at a "
        "local coding school.",
        details=None,
        present=frozenset({"name", "skills", "timezone", "availability", "capacity", "about"}),
        problems=(),
    )


def test_outlook_html_enrollment(synonyms: Mapping[str, str]) -> None:
    form = form_of("02-enrollment-outlook-html.eml", synonyms)
    assert form.name == "Daniel O’Brien"
    assert form.skills == ("csharp", "sql server", "azure")
    assert (form.timezone, form.timezone_text) == ("America/New_York", "Eastern Time (US & Canada)")
    assert form.availability == tuple(window(day, 19, 21) for day in (MON, TUE, WED, THU, FRI))
    assert form.capacity == 2
    assert form.about == (
        "Senior engineer at a logistics company; I enjoy code reviews and interview prep."
    )
    assert form.problems == ()


def test_gmail_request(synonyms: Mapping[str, str]) -> None:
    form = form_of("03-request-gmail-alternative.eml", synonyms)
    assert form.skills == ("javascript", "react", "career advice")
    assert form.timezone == "America/Chicago"
    weekdays = tuple(window(day, 18, 20) for day in (MON, TUE, WED, THU, FRI))
    assert form.availability == (*weekdays, window(SAT, 9, 11))
    assert form.details is not None
    assert form.details.startswith("I finished a bootcamp")
    assert form.details.endswith("Could someone look at my portfolio?")
    assert form.present == {"skills", "timezone", "availability", "details"}


@pytest.mark.parametrize(
    ("name", "skills", "timezone", "details_end"),
    [
        ("04-request-latin1.eml", ("python", "data science"), "Europe/Berlin", "sehr freuen."),
        ("05-request-windows1252.eml", ("java", "algorithms"), "America/New_York", "recursion?"),
        ("06-request-iso2022jp.eml", ("python",), "Asia/Tokyo", "わかりません。"),
        ("07-request-quoted-printable.eml", ("devops",), "America/Sao_Paulo", "shell scripts."),
        ("08-request-base64.eml", ("swift", "ios"), "Europe/Paris", "time for a call?"),
        ("21-no-message-id.eml", ("sql",), "America/Los_Angeles", "a small shop?"),
        ("22-unknown-charset.eml", ("kotlin", "android"), "Europe/Istanbul", "misiniz?"),
        ("26-reply-missing-details.eml", ("sql", "database design"), "America/Los_Angeles",
         "into a real database."),
    ],
)  # fmt: skip
def test_request_samples(
    synonyms: Mapping[str, str], name: str, skills: tuple[str, ...], timezone: str, details_end: str
) -> None:
    form = form_of(name, synonyms)
    assert form.skills == skills
    assert form.timezone == timezone
    assert form.details is not None and form.details.endswith(details_end)
    assert form.problems == ()


@pytest.mark.parametrize(
    ("name", "person", "timezone", "availability", "capacity"),
    [
        ("09-enrollment-forwarded.eml", "Sam Okafor", "Africa/Lagos",
         (window(SAT, 10, 12), window(SUN, 10, 12)), 2),
        ("10-enrollment-forwarded-attachment.eml", "Lena Novák", "Europe/Prague",
         (window(THU, 17, 19),), 1),
        ("23-truncated-mime.eml", "Omar Haddad", "Asia/Dubai", (window(SUN, 19, 21),), 2),
    ],
)  # fmt: skip
def test_enrollment_samples(
    synonyms: Mapping[str, str],
    name: str,
    person: str,
    timezone: str,
    availability: tuple[Window, ...],
    capacity: int,
) -> None:
    form = form_of(name, synonyms)
    assert (form.name, form.timezone, form.availability, form.capacity) == (
        person,
        timezone,
        availability,
        capacity,
    )
    assert form.problems == ()


def test_forwarded_enrollment_skills(synonyms: Mapping[str, str]) -> None:
    form = form_of("09-enrollment-forwarded.eml", synonyms)
    assert form.skills == ("go", "devops", "system design")  # Kubernetes → devops


# --- labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("Name", "name"), ("Full name", "name"),
        ("Skills", "skills"), ("Skill", "skills"), ("Topics", "skills"), ("Topic", "skills"),
        ("Interests", "skills"), ("Tech", "skills"),
        ("Timezone", "timezone"), ("Time zone", "timezone"), ("TZ", "timezone"),
        ("Zone", "timezone"), ("Location", "timezone"), ("time-zone", "timezone"),
        ("Availability", "availability"), ("Available", "availability"),
        ("Availabilities", "availability"), ("When", "availability"),
        ("Capacity", "capacity"), ("Sessions per month", "capacity"), ("Sessions", "capacity"),
        ("About", "about"), ("Bio", "about"), ("About me", "about"),
        ("Details", "details"), ("Question", "details"), ("Description", "details"),
        ("Message", "details"), ("Request", "details"),
    ],
)  # fmt: skip
def test_label_aliases(label: str, field: str) -> None:
    for written in (label, label.upper(), label.lower()):
        assert form_labels(f"{written}: x") == ((written.lower().replace("-", " "), field),)


@pytest.mark.parametrize(
    "line",
    [
        "Skills: Go",
        "skills:Go",
        "  SKILLS :  Go  ",
        "- Skills: Go",
        "* Skills: Go",
        "• Skills: Go",
        "1. Skills: Go",
        "**Skills:** Go",
        "**Skills**: Go",
        "*Skills*: Go",
        "__Skills__: Go",
        "Skills: **Go**",
        "Skills： Go",
    ],
)
def test_label_decorations(line: str) -> None:
    form = parse_form(line, {})
    assert form.skills == ("go",)
    assert form.present == {"skills"}


def test_unknown_labels_and_prose_are_ignored() -> None:
    text = "Hi! Note: I'm new here.\nhttps://example.org\nTue 18:00: fine\nSkills: Go"
    assert parse_form(text, {}).present == {"skills"}
    assert form_labels(text) == (("skills", "skills"),)


def test_values_on_following_lines() -> None:
    text = "Skills:\n- Python\n- Go\n\nAvailability:\nTue 18-20\nSat 10-12\n\nTimezone:\nCET\n"
    form = parse_form(text, {})
    assert form.skills == ("python", "go")
    assert form.availability == (window(TUE, 18, 20), window(SAT, 10, 12))
    assert form.availability_text == "Tue 18-20, Sat 10-12"
    assert form.timezone == "Europe/Berlin"


def test_wrapped_list_continues_after_a_separator() -> None:
    text = "Skills: python, go,\n  rust and\n  elixir\nThis line is prose."
    assert parse_form(text, {}).skills == ("python", "go", "rust", "elixir")


def test_free_text_continues_until_next_label_or_sign_off() -> None:
    text = (
        "About: I build things.\n\nMostly backends.\nNote: I like tea.\nCapacity: 2\n"
        "Details: First line\nsecond line\n\nBest regards,\nAna"
    )
    form = parse_form(text, {})
    assert form.about == "I build things.\n\nMostly backends.\nNote: I like tea."
    assert form.details == "First line\nsecond line"
    assert form.capacity == 2


@pytest.mark.parametrize(
    "ending",
    ["\n\nThanks!", "\n\nCheers, Ana", "\n\nThanks — Kwame", "\n\nGrüße aus Köln\nJosé", "\n\nBen"],
)
def test_sign_offs_are_not_details(ending: str) -> None:
    assert parse_form("Details: My app crashes." + ending, {}).details == "My app crashes."


def test_first_non_empty_value_wins() -> None:
    form = parse_form("Skills:\n\nTimezone: UTC\nSkills: Go\nSkills: Rust", {})
    assert form.skills == ("go",)


def test_empty_fields_are_present_without_problems() -> None:
    form = parse_form("Name:\nSkills:\nTimezone:\nAvailability:\nCapacity:\nAbout:\nDetails:", {})
    assert form.present == {
        "name", "skills", "timezone", "availability", "capacity", "about", "details"
    }  # fmt: skip
    assert (form.name, form.skills, form.timezone, form.availability) == (None, (), None, ())
    assert (form.capacity, form.about, form.details, form.problems) == (None, None, None, ())


def test_nothing_at_all() -> None:
    assert parse_form("", {}) == FormFields(
        None, (), None, None, (), None, None, None, None, frozenset(), ()
    )


def test_html_converted_form(synonyms: Mapping[str, str]) -> None:
    raw = (
        b"From: a@example.org\nContent-Type: text/html; charset=utf-8\n\n"
        b"<table><tr><td><b>Skills:</b></td><td>JS,&nbsp;Node.js</td></tr>"
        b"<tr><td>TZ:</td><td>S&atilde;o Paulo</td></tr></table>"
        b"<p>Availability: <i>Tue</i> 18&ndash;20</p>"
    )
    form = parse_form(parse_message(raw).new_text, synonyms)
    assert form.skills == ("javascript",)
    assert form.timezone == "America/Sao_Paulo"
    assert form.availability == (window(TUE, 18, 20),)


# --- problems --------------------------------------------------------------------------


def test_problems_name_the_field_and_quote_it() -> None:
    form = parse_form("Timezone: Mars/Olympus\nAvailability: ask me\nCapacity: lots", {})
    assert form.problems == (
        "Timezone: I don't know the timezone “Mars/Olympus”. Please use a name like "
        "Europe/Berlin or a city like Chicago.",
        "Availability: I couldn't read any days and times in “ask me”. Please write them "
        "like Tue 18:00-20:00, Sat 10:00-12:00.",
        "Capacity: I couldn't read “lots” as a number of sessions per month. Please write a "
        "number from 1 to 50, like 2.",
    )
    assert (form.timezone_text, form.availability_text) == ("Mars/Olympus", "ask me")
    assert (form.timezone, form.availability, form.capacity) == (None, (), None)


def test_partly_readable_availability() -> None:
    form = parse_form("Availability: Tue 18-20, and sometimes Fridays", {})
    assert form.availability == (window(TUE, 18, 20),)
    assert form.problems == (
        "Availability: I couldn't read “and sometimes Fridays”; I understood Tue 18:00–20:00. "
        "Please write days and times like Tue 18:00-20:00.",
    )


def test_long_values_are_shortened_in_problems() -> None:
    (problem,) = parse_form("Timezone: " + "x" * 300, {}).problems
    assert "x" * 79 + "…”" in problem
    assert len(problem) < 200


# --- capacity --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "capacity"),
    [
        ("2", 2), ("2 per month", 2), ("two", 2), ("Ten", 10), ("once a month", 1),
        ("twice", 2), ("1-2", 2), ("up to 3 sessions/month", 3), ("1 per week", 4),
        ("one a week", 4), ("0", None), ("100", None), ("lots", None), ("a few", 3),
    ],
)  # fmt: skip
def test_capacity(text: str, capacity: int | None) -> None:
    assert parse_form(f"Capacity: {text}", {}).capacity == capacity


# --- skills ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "skills"),
    [
        ("Python, JS; Node.js", ("python", "javascript")),
        ("python/django", ("python",)),
        ("CI/CD and Docker", ("devops",)),
        ("React & Redux + TypeScript", ("react", "redux", "typescript")),
        ("  Go  ,, , rust.", ("go", "rust")),
        ("- Python\n- Go\n* ML", ("python", "go", "data science")),
        ("Python (Django, Flask), etc.", ("python",)),
        ("Python, Django, and Flask", ("python",)),
        ("C#, .NET, C++", ("csharp", "c++")),
        ("Web Dev | Front-End", ("web development",)),
        ("Job search, interviewing, RESUME", ("career advice",)),
        ("“Rust”", ("rust",)),
        ("", ()),
    ],
)
def test_normalise_skills(synonyms: Mapping[str, str], text: str, skills: tuple[str, ...]) -> None:
    assert normalise_skills(text, synonyms) == skills


def test_normalise_skills_without_synonyms() -> None:
    assert normalise_skills("Python, PYTHON, Go / Rust", {}) == ("python", "go", "rust")


# --- timezones -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("Europe/Berlin", "Europe/Berlin"), ("europe/berlin", "Europe/Berlin"),
        ("AMERICA/NEW_YORK", "America/New_York"), ("America/New York", "America/New_York"),
        ("Europe / Berlin", "Europe/Berlin"), ("US/Eastern", "US/Eastern"),
        ("EST", "America/New_York"), ("edt", "America/New_York"), ("ET", "America/New_York"),
        ("Eastern", "America/New_York"), ("CST", "America/Chicago"), ("Central", "America/Chicago"),
        ("MST", "America/Denver"), ("Mountain", "America/Denver"), ("PST", "America/Los_Angeles"),
        ("PDT", "America/Los_Angeles"), ("Pacific", "America/Los_Angeles"),
        ("GMT", "Europe/London"), ("BST", "Europe/London"), ("CET", "Europe/Berlin"),
        ("CEST", "Europe/Berlin"), ("IST", "Asia/Kolkata"), ("JST", "Asia/Tokyo"),
        ("AEST", "Australia/Sydney"), ("AEDT", "Australia/Sydney"), ("UTC", "UTC"), ("Z", "UTC"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Central European Summer Time", "Europe/Berlin"), ("India Standard Time", "Asia/Kolkata"),
        ("Eastern Time (US & Canada)", "America/New_York"),
        ("Berlin", "Europe/Berlin"), ("new york", "America/New_York"),
        ("Sao Paulo", "America/Sao_Paulo"), ("São Paulo", "America/Sao_Paulo"),
        ("Toronto", "America/Toronto"), ("Sydney", "Australia/Sydney"),
        ("Buenos Aires", "America/Argentina/Buenos_Aires"), ("Kolkata", "Asia/Kolkata"),
        ("San Francisco", "America/Los_Angeles"), ("Seattle", "America/Los_Angeles"),
        ("Boston", "America/New_York"), ("Washington DC", "America/New_York"),
        ("Washington, D.C.", "America/New_York"), ("Atlanta", "America/New_York"),
        ("Austin", "America/Chicago"), ("Dallas", "America/Chicago"),
        ("Houston", "America/Chicago"), ("Munich", "Europe/Berlin"), ("München", "Europe/Berlin"),
        ("Hamburg", "Europe/Berlin"), ("Frankfurt", "Europe/Berlin"),
        ("Bangalore", "Asia/Kolkata"), ("Bengaluru", "Asia/Kolkata"),
        ("Mumbai", "Asia/Kolkata"), ("Delhi", "Asia/Kolkata"), ("Beijing", "Asia/Shanghai"),
        ("Barcelona", "Europe/Madrid"), ("Milan", "Europe/Rome"), ("Manchester", "Europe/London"),
        ("Berlin, Germany", "Europe/Berlin"), ("Chicago, IL", "America/Chicago"),
        ("EST (New York)", "America/New_York"), ("Germany", "Europe/Berlin"),
        ("UTC+2", "Etc/GMT-2"), ("GMT-5", "Etc/GMT+5"), ("UTC +1", "Etc/GMT-1"),
        ("UTC−3", "Etc/GMT+3"), ("+09:00", "Etc/GMT-9"), ("UTC+0", "UTC"),
        ("UTC+5:30", "Asia/Kolkata"), ("GMT+0530", "Asia/Kolkata"), ("UTC+5:45", "Asia/Kathmandu"),
        ("UTC-3:30", "America/St_Johns"), ("“Europe/Paris”", "Europe/Paris"),
        ("Istanbul", "Europe/Istanbul"), ("Nicosia", "Asia/Nicosia"),
    ],
)  # fmt: skip
def test_resolve_timezone(text: str, zone: str) -> None:
    assert resolve_timezone(text) == zone


@pytest.mark.parametrize(
    "text",
    ["Mars/Olympus", "Remote", "", "   ", "UTC+9:30", "UTC+15", "somewhere nice", "x" * 500],
)
def test_unknown_timezones(text: str) -> None:
    assert resolve_timezone(text) is None


# --- availability ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "windows"),
    [
        ("Tue 18:00-20:00, Sat 10:00-12:00", [(TUE, 18, 20), (SAT, 10, 12)]),
        ("Tuesdays 6pm-8pm", [(TUE, 18, 20)]),
        ("Mon-Fri 9-17", [(d, 9, 17) for d in (MON, TUE, WED, THU, FRI)]),
        ("weekdays 19:00–21:00", [(d, 19, 21) for d in (MON, TUE, WED, THU, FRI)]),
        ("weekends 10am to noon", [(SAT, 10, 12), (SUN, 10, 12)]),
        ("Wed 7:30pm-9pm; Thu 12-1pm", [(WED, 19.5, 21), (THU, 12, 13)]),
        ("Fri 22:00-24:00", [(FRI, 22, 24)]),
        ("Fri 20:00-midnight", [(FRI, 20, 24)]),
        ("Sat 22:00–01:00", [(SAT, 22, 24), (SUN, 0, 1)]),
        ("Sun 23:00-02:30", [(MON, 0, 2.5), (SUN, 23, 24)]),
        ("Mon, Wed, Fri 18-20", [(MON, 18, 20), (WED, 18, 20), (FRI, 18, 20)]),
        ("Mon/Wed 18-20", [(MON, 18, 20), (WED, 18, 20)]),
        ("Tue and Thu 7-9pm", [(TUE, 19, 21), (THU, 19, 21)]),
        ("18:00-20:00 on Tuesdays and Thursdays", [(TUE, 18, 20), (THU, 18, 20)]),
        ("Sat 10-12, 14-16", [(SAT, 10, 12), (SAT, 14, 16)]),
        ("Tue 18-20 Sat 10-12", [(TUE, 18, 20), (SAT, 10, 12)]),
        ("Mon 9-5", [(MON, 9, 17)]),
        ("Mon 11-1", [(MON, 11, 13)]),
        ("Mon 6-8pm", [(MON, 18, 20)]),
        ("Mon 11-1pm", [(MON, 11, 13)]),
        ("Mon 10-12pm", [(MON, 10, 12)]),
        ("Sun 10 a.m. - 2 p.m.", [(SUN, 10, 14)]),
        ("Thursday evenings between 6 and 8pm", [(THU, 18, 20)]),
        ("Fri-Mon 8-9", [(MON, 8, 9), (FRI, 8, 9), (SAT, 8, 9), (SUN, 8, 9)]),
        ("daily 7-8am", [(d, 7, 8) for d in range(7)]),
        ("Tue 18h-20h", [(TUE, 18, 20)]),
        ("Tue 18.30-20.00", [(TUE, 18.5, 20)]),
        ("TUESDAYS 6PM-8PM (CET)", [(TUE, 18, 20)]),
        ("Mon 9-12, Mon 11-14", [(MON, 9, 14)]),
        ("Tue 18:00-20:00.\nSat 10:00-12:00.", [(TUE, 18, 20), (SAT, 10, 12)]),
    ],
)
def test_parse_availability(text: str, windows: list[tuple[int, float, float]]) -> None:
    assert parse_availability(text) == tuple(sorted(window(*w) for w in windows))


@pytest.mark.parametrize(
    "text",
    ["whenever", "", "evenings", "Tuesday", "18:00-20:00", "Tue 25:00-26:00", "Mon 18:00-18:00"],
)
def test_unreadable_availability(text: str) -> None:
    with pytest.raises(ValueError, match="I couldn't read any days and times in"):
        parse_availability(text)


def test_format_windows() -> None:
    windows = [window(TUE, 18, 20), window(SAT, 10, 12.5), window(SUN, 0, 24)]
    assert format_windows(windows) == "Tue 18:00–20:00, Sat 10:00–12:30, Sun 00:00–24:00"
    assert format_windows([]) == ""
    weekdays = [Window(d, 19 * 60, 21 * 60) for d in range(5)]
    assert format_windows(weekdays) == "Mon–Fri 19:00–21:00"
    mixed = [*weekdays[:2], Window(3, 1140, 1260), Window(5, 600, 720), Window(6, 600, 720)]
    assert format_windows(mixed) == "Mon, Tue, Thu 19:00–21:00, Sat, Sun 10:00–12:00"


def test_windows_order() -> None:
    assert sorted([window(SAT, 1, 2), window(MON, 5, 6), window(MON, 1, 2)]) == [
        window(MON, 1, 2),
        window(MON, 5, 6),
        window(SAT, 1, 2),
    ]


@pytest.mark.parametrize(
    "value",
    [" " * 100_000 + "1", "a" + " " * 100_000 + "x", "Tue 1" + " " * 100_000 + "x", "1" * 100_000],
)
def test_pathological_values_take_linear_time(value: str) -> None:
    # Each would take minutes if a pattern backtracked quadratically.
    text = f"Skills: {value}\nAvailability: {value}\nTimezone: {value}\nDetails: x\n{value}"
    parse_form(text, {})
    normalise_skills(value, {})
    with pytest.raises(ValueError):
        parse_availability(value)
