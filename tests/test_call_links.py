"""Call links end to end: the room from ``[sessions] call_link``, a mentor's own link from
the enrollment form, and none. Every invitation is read back by ical.js and vobject:
LOCATION, URL and the RFC 7986 CONFERENCE must carry the link, the same for both people
and through a move."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mentordesk.config import load_config
from mentordesk.errors import ConfigError

from .desk import ENVIRON, Desk, config_text, html_of, mail, text_of
from .forms import press
from .icalcheck import read_with_icaljs, read_with_vobject
from .servers import ReceivedMessage
from .test_claims import JORDAN, REQUEST, links
from .test_sessions import ADA, calendar_of, claimed, session_doc, urls

pytestmark = pytest.mark.dovecot

ROOM = re.compile(r"https://meet\.jit\.si/test-mentors-[a-z2-9]{16}")
OWN_LINK = "https://zoom.example.com/j/8812345?pwd=abc"


def read_events(message: ReceivedMessage) -> list[dict[str, Any]]:
    """The session event as each parser reads it."""
    method, ics = calendar_of(message)
    assert method == "REQUEST"
    events = []
    for read in (read_with_icaljs(ics), read_with_vobject(ics)):
        [event] = read["events"]
        events.append(event)
    return events


def call_link_in(message: ReceivedMessage) -> str:
    """The one link both parsers read in LOCATION, URL and CONFERENCE; checked equal."""
    found = set()
    for event in read_events(message):
        [conference] = event["conferences"]
        assert conference["feature"] == "VIDEO" and conference["label"] == "Video call"
        assert conference["value_type"] == "uri"
        assert event["location"] == event["url"] == conference["value"]
        found.add(event["url"])
    [link] = found
    return str(link)


async def test_the_template_gives_each_session_its_own_room_kept_through_a_move(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    desk.configure(sessions={"call_link": "https://meet.jit.si/{program}-{random}"})
    await claimed(desk, http)
    to_ada = await desk.mail_to(ADA, "Mentoring session with")
    to_jordan = await desk.mail_to(JORDAN, "Mentoring session with")
    room = call_link_in(to_ada)
    assert ROOM.fullmatch(room), room
    assert call_link_in(to_jordan) == room
    session = await session_doc(desk)
    assert session["room"] == room
    for message in (to_ada, to_jordan):
        assert f"Join the video call here: {room}" in text_of(message)
        assert f'href="{room}"' in html_of(message)
        assert f"Where:         {room}" in text_of(message)
        assert "please send" not in text_of(message)  # no link to send by hand

    # Jordan moves it: the update (SEQUENCE 1) keeps the same room.
    [move_url] = urls(to_jordan, "session-move")
    async with press(http, move_url) as response:
        assert response.status == 200
    moved = await desk.mail_to(ADA, "New time")
    assert [e["sequence"] for e in read_events(moved)] == [1, 1]
    assert call_link_in(moved) == room

    # The person's calendar feed shows the same room.
    [feed_url] = re.findall(r"http://127\.0\.0\.1:\d+/feed/[\w.-]+\.ics", text_of(moved))
    async with http.get(feed_url) as response:
        assert response.status == 200
        feed = await response.read()
    for read in (read_with_icaljs(feed), read_with_vobject(feed)):
        [event] = [e for e in read["events"] if e["uid"] == session["uid"]]
        assert event["location"] == room


async def test_a_mentors_own_link_wins_over_the_template(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    desk.configure(sessions={"call_link": "https://meet.jit.si/{program}-{random}"})
    await desk.start()
    desk.send(
        mail(
            "Ada Lovelace <ada@example.com>",
            "Mentor enrollment",
            "Name: Ada Lovelace\nSkills: python\nTimezone: Europe/Berlin\n"
            f"Availability: Tue 18:00-20:00\nCall link: <{OWN_LINK}>\n",
        )
    )
    confirmation = await desk.mail_to(ADA, "Mentor enrollment")
    assert f"Call link:     {OWN_LINK}" in text_of(confirmation)  # echoed back
    assert OWN_LINK.replace("&", "&amp;") in html_of(confirmation)
    stored = await desk.until(lambda store: store.mentor(ADA))
    assert stored["call_link"] == OWN_LINK

    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    invite = await desk.mail_to(ADA, "would like help")
    async with press(http, links(invite, "claim")[0]) as response:
        assert response.status == 200
    to_ada = await desk.mail_to(ADA, "Mentoring session with")
    to_jordan = await desk.mail_to(JORDAN, "Mentoring session with")
    assert call_link_in(to_ada) == OWN_LINK
    assert call_link_in(to_jordan) == OWN_LINK
    assert f"Join the video call here: {OWN_LINK}" in text_of(to_jordan)


async def test_a_bad_own_link_is_named_and_not_used(desk: Desk) -> None:
    await desk.start()
    desk.send(
        mail(
            "Ada Lovelace <ada@example.com>",
            "Mentor enrollment",
            "Name: Ada Lovelace\nSkills: python\nTimezone: Europe/Berlin\n"
            "Availability: Tue 18:00-20:00\nCall link: http://insecure.example.com/room\n",
        )
    )
    reply = await desk.mail_to(ADA, "Mentor enrollment")
    text = " ".join(text_of(reply).split())
    assert "Call link: I couldn't use “http://insecure.example.com/room”" in text
    assert "does not start with https://" in text
    await desk.processed(1)
    async with desk.store() as store:
        assert not (store.mentor(ADA) or {}).get("call_link")


async def test_without_a_link_the_mentor_is_asked_to_send_one(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    to_ada = await desk.mail_to(ADA, "Mentoring session with")
    for event in read_events(to_ada):
        assert event["conferences"] == [] and event["url"] is None
        assert event["location"] == "Video call: your mentor sends the link"
    assert "please send Jordan the call link" in " ".join(text_of(to_ada).split())


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("http://meet.jit.si/{random}", "does not start with https://"),
        ("https://meet.jit.si/{room}", "unknown placeholder {room}"),
        ("https://meet.jit.si/a b", "spaces"),
    ],
)
def test_a_bad_template_is_a_clear_config_error(
    tmp_path: Any, dovecot: Any, smtp_sink: Any, template: str, complaint: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        config_text(tmp_path, dovecot, smtp_sink, 8025, sessions={"call_link": template}), "utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ=ENVIRON)
    assert "[sessions] call_link:" in str(raised.value)
    assert complaint in str(raised.value)
    assert 'Example: call_link = "https://meet.jit.si/{program}-{random}"' in str(raised.value)


@pytest.mark.parametrize(
    ("unsafe_link", "complaint"),
    [
        ("https://zoom.example.com/j/" + "9" * 300, "longer than 300 characters"),
        ('https://x.example.com/a"onmouseover=alert(1)', "characters a link cannot have"),
        ("https://x.example.com/a\rATTENDEE:mailto:evil@example.com", "characters"),
        ("javascript:alert(1)", "does not start with https://"),
        ("https://localhost/room", "names no web server"),
    ],
)
def test_hostile_call_links_are_refused(unsafe_link: str, complaint: str) -> None:
    from icalendar import Event

    from mentordesk.calendar.conference import add_call, https_url_problem
    from mentordesk.inbox.fields import parse_form

    problem = https_url_problem(unsafe_link)
    assert problem is not None and complaint in problem
    with pytest.raises(ValueError, match="bad call link"):
        add_call(Event(), unsafe_link)
    fields = parse_form(f"Name: Ada\nCall link: {unsafe_link}\n", {})
    assert fields.call_link is None or fields.call_link != unsafe_link
    if "\r" not in unsafe_link:  # a line break ends the value: what is left is checked
        assert fields.call_link is None and fields.problems[0].startswith("Call link:")


def test_each_session_gets_its_own_unguessable_room() -> None:
    from mentordesk.calendar.conference import fill_call_link, random_room

    template = "https://meet.jit.si/{program}-{request}-{random}"
    first = fill_call_link(template, program="Code Mentors!", request=42, random=random_room())
    second = fill_call_link(template, program="Code Mentors!", request=42, random=random_room())
    assert re.fullmatch(r"https://meet\.jit\.si/code-mentors-md-0042-[a-z2-9]{16}", first)
    assert first != second


async def test_a_call_link_given_in_an_incomplete_enrollment_is_kept(desk: Desk) -> None:
    """The form comes back with the link in it, and the answer completes the enrollment."""
    await desk.start()
    desk.send(
        mail(
            "Ada Lovelace <ada@example.com>",
            "Mentor enrollment",
            f"Name: Ada Lovelace\nSkills: python\nTimezone: Europe/Berlin\nCall link: {OWN_LINK}\n",
        )
    )
    asking = await desk.mail_to(ADA, "Mentor enrollment")
    assert f"Call link: {OWN_LINK}" in text_of(asking)
    desk.send(
        mail(
            "Ada Lovelace <ada@example.com>",
            "Re: Mentor enrollment",
            "Availability: Tue 18:00-20:00\n",
            in_reply_to=asking.message["Message-ID"],
        )
    )
    stored = await desk.until(lambda store: store.mentor(ADA))
    assert stored["call_link"] == OWN_LINK
    [_, confirmation] = await desk.replies_to(ADA, 2)
    assert f"Call link:     {OWN_LINK}" in text_of(confirmation)


async def test_the_reminder_says_where_to_join(tmp_path: Path) -> None:
    """The reminder a day before carries the session's room (sweep with a fake clock)."""
    from datetime import timedelta

    from mentordesk.flows.session_steps import session_reminders_step
    from mentordesk.state.store import from_iso
    from mentordesk.timers import Registry

    from .test_session_timers import booked
    from .timetravel import Harness
    from .timetravel import text_of as text_of_email

    registry = Registry()
    registry.register_sweep_step("session reminders", session_reminders_step)
    harness = await Harness(
        tmp_path, registry, sessions={"call_link": "https://meet.jit.si/{program}-{random}"}
    ).open()
    try:
        session = await booked(harness)
        assert ROOM.fullmatch(session["room"])
        harness.clock.now = from_iso(session["start"]) - timedelta(hours=23)
        assert (await harness.sweep())["session reminders"] == 1
        reminders = await harness.sent("session_reminder")
        assert len(reminders) == 2
        for reminder in reminders:
            assert f"{session['room']}." in text_of_email(reminder)
    finally:
        await harness.close()


async def test_a_mentor_adds_and_removes_their_link_by_a_one_line_reply(desk: Desk) -> None:
    from .test_claims import mentor, seed

    seed(desk, [mentor(ADA, "Ada Lovelace", ["python"])])
    await desk.start()
    desk.send(
        mail("Ada Lovelace <ada@example.com>", "Re: Mentor enrollment", f"Call link: {OWN_LINK}\n")
    )
    added = await desk.until(lambda store: (store.mentor(ADA) or {}).get("call_link"))
    assert added == OWN_LINK
    [confirmation] = await desk.replies_to(ADA, 1)
    assert f"Call link:     {OWN_LINK}" in text_of(confirmation)
    assert "Your mentor details are updated." in text_of(confirmation)
    async with desk.store() as store:
        kept = store.mentor(ADA)
        assert kept is not None and kept["availability"] == [[1, 1080, 1200]]  # kept

    desk.send(mail("Ada Lovelace <ada@example.com>", "Re: Mentor enrollment", "Call link: none\n"))
    await desk.replies_to(ADA, 2)
    async with desk.store() as store:
        assert (store.mentor(ADA) or {}).get("call_link") == ""
