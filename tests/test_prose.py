"""People's own words: zones, hours and what they ask for, read from sentences.

The samples under tests/samples/prose/ are real-shaped mail (Gmail, Outlook, Thunderbird,
phones), each with its expected reading in expected.toml; the phrase table of
``inbox/prose_hours.py`` is held to what its docstring (and the README) promise.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mentordesk.flows.matching import mentee_hours_for
from mentordesk.flows.requests import RequestDesk, understood, update_week
from mentordesk.flows.session_times import proposed_start, when_text
from mentordesk.inbox.classify import classify
from mentordesk.inbox.fields import parse_form
from mentordesk.inbox.hours import Window, format_windows, hours_for_reader, windows_in_zone
from mentordesk.inbox.intents import GERMAN, Intent, ProposedTime, read_intent
from mentordesk.inbox.parse import parse_message
from mentordesk.inbox.prose_hours import MEANINGS, hours_in_prose, read_hours_value
from mentordesk.inbox.zones import zone_in_prose

PROSE = Path(__file__).resolve().parent / "samples" / "prose"
EXPECTED = tomllib.loads((PROSE / "expected.toml").read_text("utf-8"))
PROGRAM = "mentors@program.example.org"
SYNONYMS = {"js": "javascript", "resume": "career advice", "py": "python"}
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
README = Path(__file__).resolve().parent.parent / "README.md"


def h(hours: float) -> int:
    return round(hours * 60)


# --- the samples -----------------------------------------------------------------------


def test_every_prose_sample_has_its_reading() -> None:
    assert {path.name for path in PROSE.glob("*.eml")} == set(EXPECTED)
    assert len(EXPECTED) >= 15


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_prose_sample(name: str) -> None:
    want = EXPECTED[name]
    msg = parse_message((PROSE / name).read_bytes())
    found = classify(msg, PROGRAM)
    assert (found.kind.value, found.command or "") == (want["kind"], want.get("command", ""))
    proposed = found.proposed
    if "proposed" in want:
        assert proposed is not None
        day = "-" if proposed.weekday is None else DAYS[proposed.weekday]
        minute = proposed.minute or 0
        assert f"{day} {minute // 60:02d}:{minute % 60:02d}" == want["proposed"]
    else:
        assert proposed is None

    form = parse_form(msg.new_text, SYNONYMS)
    assert (form.timezone or "") == want.get("zone", "")
    if "zone_said" in want:
        assert form.timezone_text == want["zone_said"]
    assert format_windows(form.availability) == want.get("hours", "")
    if "hours_said" in want:
        assert form.availability_text == want["hours_said"]
    if "problem" in want:
        assert any(want["problem"] in problem for problem in form.problems)
    else:
        assert form.problems == ()


# --- the phrase table ------------------------------------------------------------------


@pytest.mark.parametrize(("phrase", "windows"), MEANINGS, ids=[m[0] for m in MEANINGS])
@pytest.mark.parametrize("sentence", ["I'm usually free {}.", "{} work best for me", "{}"])
def test_phrase_table(phrase: str, windows: tuple[Window, ...], sentence: str) -> None:
    reading = hours_in_prose(sentence.format(phrase))
    assert reading is not None and reading.windows == windows
    # ... and the same words typed after an "Availability:" label.
    value = read_hours_value(phrase)
    assert value is not None and value.windows == windows


def test_the_table_is_documented_where_people_read_it() -> None:
    readme = README.read_text("utf-8")
    for phrase, windows in (("evenings", "18:00–22:00"), ("mornings", "08:00–12:00")):
        assert phrase in readme and windows in readme
    for promised in ("around noon", "11:30–13:30", "weekends", "09:00–21:00", "after 6pm"):
        assert promised in readme


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("I'm in Chicago and usually free weekday evenings after 6pm", "Mon–Fri 18:00–22:00"),
        ("Free Tue 6-8pm and Sat mornings", "Tue 18:00–20:00, Sat 08:00–12:00"),
        ("7pm on Tuesdays, 8pm on Thursdays work for me", "Tue 19:00–20:00, Thu 20:00–21:00"),
        ("Usually free\nweekday evenings after\n6pm.", "Mon–Fri 18:00–22:00"),
        ("I can't do mornings, but evenings after 7 are good", "Mon–Sun 19:00–22:00"),
        ("I'm busy on Mondays. Evenings after 6 work.", "Tue–Sun 18:00–22:00"),
        ("I'm free weekdays except Fridays, after 5pm.", "Mon–Thu 17:00–21:00"),
        ("Sunday afternoons 2-4 and Wednesday 19:00-20:30",
         "Wed 19:00–20:30, Sun 14:00–16:00"),
        ("Good morning, I am free on Tuesdays", "Tue 09:00–21:00"),
        ("I work 9-5 so evenings are best", "Mon–Sun 18:00–22:00"),
        ("Mornings between 7 and 9 a.m. suit me", "Mon–Sun 07:00–09:00"),
    ],
)  # fmt: skip
def test_hours_in_sentences(text: str, hours: str) -> None:
    reading = hours_in_prose(text)
    assert reading is not None and format_windows(reading.windows) == hours


@pytest.mark.parametrize(
    "text",
    [
        "My cron job runs at 6pm every Monday and fails.",
        "I've been learning Python 3.11 for 2-3 years.",
        "I have 10-15 minutes of questions about my resume.",
        "Good morning!",
        "I can't do mornings.",
        "The meeting sat on my calendar; the sun was out.",
    ],
)
def test_sentences_that_say_no_hours(text: str) -> None:
    assert hours_in_prose(text) is None


# --- zones in sentences ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "said"),
    [
        ("I'm in Chicago and usually free weekday evenings after 6pm", "America/Chicago",
         "Chicago"),
        ("Weekday mornings, 7 to 9am Pacific", "America/Los_Angeles", "Pacific"),
        ("Pacific", "America/Los_Angeles", "Pacific"),
        ("Greetings from here in Lagos!", "Africa/Lagos", "Lagos"),
        ("We could meet at 9 CET", "Europe/Berlin", "CET"),
        ("I live in São Paulo", "America/Sao_Paulo", "São Paulo"),
        ("UK time works for me", "Europe/London", "UK time"),
        ("I grew up in Lagos but now I live in London", "Europe/London", "London"),
        ("I'm in the US, Chicago area", "America/Chicago", "Chicago"),
        ("Berlin-based developer here", "Europe/Berlin", "Berlin-based"),
        ("call me at 7pm ET", "America/New_York", "ET"),
        ("UTC+2 here", "Etc/GMT-2", "UTC+2"),
        ("my zone is Europe/Madrid", "Europe/Madrid", "Europe/Madrid"),
        ("I'm on Eastern Standard Time", "America/New_York", "Eastern Standard Time"),
    ],
)  # fmt: skip
def test_zone_in_sentences(text: str, zone: str, said: str) -> None:
    reading = zone_in_prose(text)
    assert reading is not None and (reading.zone, reading.said) == (zone, said)


@pytest.mark.parametrize(
    "text",
    [
        "Hi, I'm Sofia",  # a name, not Europe/Sofia
        "my mentor is in London",  # someone else
        "Central Park is lovely",  # not a zone
        "I'd like a mentor in Go",
        "I'm in London next week for a conference",  # a trip, not a home
        "Let us talk about art and cats",  # ART, CAT only as capitals beside a time
    ],
)
def test_places_that_are_not_the_writers_zone(text: str) -> None:
    assert zone_in_prose(text) is None


def test_a_place_with_several_zones_is_asked_about() -> None:
    reading = zone_in_prose("I'm in the US")
    assert reading is not None and reading.zone is None and reading.said == "the US"
    form = parse_form("Hello, I'm in the US and free on weekends.", {})
    assert form.timezone is None
    assert form.problems == (
        "Timezone: “the US” has more than one time zone. Which city are you in, or near?",
    )


# --- intents in sentences --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Yes, please renew me.", Intent.RENEW),
        ("Yes please renew me for another year! Thanks for the reminder.", Intent.RENEW),
        ("Could you pause me for a month? I am travelling.", Intent.PAUSE),
        ("I need a break from mentoring for a few weeks.", Intent.PAUSE),
        ("I'm back, you can start sending me requests again", Intent.RESUME),
        ("I would like to step down as a mentor", Intent.RESIGN),
        ("I can't make it, sorry.", Intent.CANCEL),
        ("Please cancel the session.", Intent.CANCEL),
        ("I'll take this one!", Intent.CLAIM),
        ("Happy to help", Intent.CLAIM),
        ("Sorry, I can't take it after all, please give it to someone else", Intent.RELEASE),
        ("Can we reschedule?", Intent.RESCHEDULE),
        ("I can't make it tomorrow. Could we move it to Friday at 5pm?", Intent.RESCHEDULE),
        ("Ich übernehme das", Intent.CLAIM),
        ("Bitte verlängern", Intent.RENEW),
        ("Ich ziehe meine Anfrage zurück", Intent.WITHDRAW),
    ],
)
def test_intents_in_sentences(text: str, intent: Intent) -> None:
    reading = read_intent(text)
    assert reading is not None and reading.intent is intent


@pytest.mark.parametrize(
    "text",
    [
        "Renew? Not sure yet.",  # doubt
        "Should I renew?",  # a question, not a request
        "I don't want to pause",  # negated
        "I'm in Chicago",  # not "I'm in" (a claim)
        "thanks so much, see you then!",
        "I am free at 6pm on Tuesdays",  # hours, not a move
        "Please pause me. Actually, please renew me.",  # two things: a person decides
        "Sorry, I can't take this one, please find someone else",  # declines a claim email
    ],
)
def test_sentences_that_ask_nothing(text: str) -> None:
    assert read_intent(text) is None


def test_other_languages_use_the_same_reader() -> None:
    reading = read_intent(
        "Können wir den Termin verschieben? Wie wäre es mit Donnerstag um 18 Uhr?"
    )
    assert reading is not None and reading.intent is Intent.RESCHEDULE
    assert reading.proposed == ProposedTime(3, None, h(18), "donnerstag 18")
    # Only the German words: the English lexicon is not needed to read it.
    assert read_intent("Bitte verlängern", lexicons=(GERMAN,)) is not None


@pytest.mark.parametrize(
    ("text", "weekday", "days_ahead", "minute"),
    [
        ("can we do 7:30am instead?", None, None, h(7.5)),
        ("How about Thursday at 6pm?", 3, None, h(18)),
        ("Could we do tomorrow at 8?", None, 1, h(8)),
        ("Would Wednesday work better?", 2, None, None),
    ],
)
def test_a_proposed_time_is_read(
    text: str, weekday: int | None, days_ahead: int | None, minute: int | None
) -> None:
    reading = read_intent(text)
    assert reading is not None and reading.intent is Intent.RESCHEDULE
    assert reading.proposed is not None
    assert (reading.proposed.weekday, reading.proposed.days_ahead, reading.proposed.minute) == (
        weekday,
        days_ahead,
        minute,
    )


def test_a_proposed_time_becomes_a_moment_on_the_writers_clock() -> None:
    la = "America/Los_Angeles"
    now = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)  # Wednesday 10:00 in Los Angeles
    current = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)  # Monday 06:30 in Los Angeles
    notice = timedelta(hours=24)

    def at(text: str) -> str:
        reading = read_intent(text)
        assert reading is not None and reading.proposed is not None
        moment = proposed_start(reading.proposed, la, current, now, notice)
        return "" if moment is None else when_text(moment, moment + timedelta(minutes=30), la)

    # "7:30am instead" keeps the session's day, Monday.
    assert at("can we do 7:30am instead?") == "Monday 7 December, 07:30–08:00 (America/Los_Angeles)"
    assert at("How about Thursday at 6pm?") == (
        "Thursday 3 December, 18:00–18:30 (America/Los_Angeles)"
    )
    assert at("Could we do tomorrow at 8?") == ""  # less than a day's notice
    assert at("What about Friday?") == "Friday 4 December, 06:30–07:00 (America/Los_Angeles)"


# --- times shown to the other person -----------------------------------------------------


def test_a_mentors_view_of_the_mentees_hours_is_in_the_mentors_zone() -> None:
    weekday_mornings = [Window(day, h(7), h(9)) for day in range(5)]
    winter = datetime(2026, 12, 1, tzinfo=UTC)
    # 07:00 in Los Angeles (UTC-8) is 20:30 in Kolkata (UTC+5:30), the same day.
    assert hours_for_reader(weekday_mornings, "America/Los_Angeles", "Asia/Kolkata", winter) == (
        "Mon–Fri 20:30–22:30 your time (07:00–09:00 in America/Los_Angeles)"
    )
    # Chicago's weekday evenings are the next morning in Sydney: days say so.
    evenings = [Window(day, h(18), h(22)) for day in range(5)]
    assert hours_for_reader(evenings, "America/Chicago", "Australia/Sydney", winter) == (
        "Tue–Sat 11:00–15:00 your time (Mon–Fri 18:00–22:00 in America/Chicago)"
    )
    # DST: in July Los Angeles is UTC-7, an hour closer to Kolkata.
    july = datetime(2026, 7, 1, tzinfo=UTC)
    assert windows_in_zone(weekday_mornings, "America/Los_Angeles", "Asia/Kolkata", july) == tuple(
        Window(day, h(19.5), h(21.5)) for day in range(5)
    )


def test_a_window_across_the_readers_midnight_is_split() -> None:
    late = [Window(0, h(10), h(12))]  # Monday 10-12 in New York
    shifted = windows_in_zone(
        late, "America/New_York", "Asia/Tokyo", datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert shifted == (Window(1, 0, h(2)),)  # Tuesday 00:00-02:00 in Tokyo
    evening = [Window(0, h(18), h(22))]  # 18:00-22:00 Berlin = 02:00-06:00 Tokyo
    assert windows_in_zone(
        evening, "Europe/Berlin", "Asia/Tokyo", datetime(2026, 12, 1, tzinfo=UTC)
    ) == (Window(1, h(2), h(6)),)
    night = [Window(4, h(22), h(24))]  # Friday 22-24 in London = Friday 23 - Saturday 01 Paris
    assert windows_in_zone(
        night, "Europe/London", "Europe/Paris", datetime(2026, 12, 1, tzinfo=UTC)
    ) == (
        Window(4, h(23), h(24)),
        Window(5, 0, h(1)),
    )


def test_a_claim_email_names_what_is_not_known() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    hours = [[day, h(18), h(22)] for day in range(5)]
    assert mentee_hours_for({"availability": []}, "Europe/Berlin", now) == ""
    assert mentee_hours_for({"availability": hours}, "Europe/Berlin", now) == (
        "Mon–Fri 18:00–22:00 in their own time (their time zone is not known yet)"
    )
    both = {"availability": hours, "timezone": "Europe/Berlin"}
    assert mentee_hours_for(both, "Europe/Berlin", now) == (
        "Mon–Fri 18:00–22:00 (your time zone too)"
    )


# --- what the mentee is asked, and what a later message changes ------------------------


def test_nothing_said_is_asked_and_nothing_is_asked_twice() -> None:
    doc = {"skills": ["python"], "details": "I want to learn Python for data analysis at work"}
    assert RequestDesk.questions(doc) == ["timezone", "availability"]
    assert RequestDesk.questions({**doc, "timezone": "America/Chicago"}) == ["availability"]
    problem = "Availability: I couldn't read any days and times in “ask me”."
    assert RequestDesk.questions({**doc, "timezone": "America/Chicago"}, [problem]) == []
    assert RequestDesk.questions({"skills": [], "details": "help"}) == [
        "skills",
        "details",
        "timezone",
        "availability",
    ]


def test_the_echo_quotes_the_words_it_was_read_from() -> None:
    doc = {
        "timezone": "America/Chicago",
        "timezone_text": "Chicago",
        "availability": [[day, h(18), h(22)] for day in range(5)],
        "availability_text": "weekday evenings after 6pm",
    }
    assert understood(doc) == [
        ("Timezone", "America/Chicago (you wrote “Chicago”)"),
        ("Availability", "Mon–Fri 18:00–22:00 (you wrote “weekday evenings after 6pm”)"),
    ]
    form = {**doc, "timezone_text": "america/chicago", "availability_text": "Mon-Fri 18:00-22:00"}
    assert understood(form) == [
        ("Timezone", "America/Chicago"),
        ("Availability", "Mon–Fri 18:00–22:00"),
    ]


def test_a_later_message_fills_in_and_a_firm_one_corrects() -> None:
    request: dict[str, object] = {"timezone": None, "availability": []}
    said = {"timezone": "America/Chicago", "timezone_text": "Chicago", "firm": {}}
    assert update_week(request, said) == ["Timezone"]
    weak = {"timezone": "Europe/London", "timezone_text": "London", "firm": {}}
    assert update_week(request, weak) == [] and request["timezone"] == "America/Chicago"
    firm = {**weak, "firm": {"timezone": True}}
    assert update_week(request, firm) == ["Timezone"]
    assert str(request["timezone"]) == "Europe/London"
