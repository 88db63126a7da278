"""Office hours end to end: the CLI, the daemon, Dovecot in, aiosmtpd out, the feed over HTTP.

The coordinator's commands go through the running daemon's admin route, or straight to
the store when no daemon runs; people join and leave by email through the real mailbox;
every calendar object that reaches the SMTP server is read back by ical.js and vobject;
the feed link from an email is fetched from the daemon's own web endpoint.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from mentordesk.admin import admin_token, apply_locally
from mentordesk.cli import main as cli
from mentordesk.state.store import Store
from mentordesk.tokens import sign

from .desk import ENVIRON, PROGRAM, SECRET, Desk, html_of, mail, text_of
from .icalcheck import read_with_icaljs, read_with_vobject
from .servers import Dovecot, ReceivedMessage, SmtpSink
from .test_claims import mentor, seed

ADA = "ada@example.com"
LINUS = "linus@example.com"
DANA = "dana@example.net"
ERIN = "erin@example.org"
BERLIN = ZoneInfo("Europe/Berlin")


def series_of(store: Store, series_id: int) -> dict[str, Any]:
    """The stored series (it must exist by now)."""
    found = store.series(series_id)
    assert found is not None
    return found


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    seed(desk, [mentor(ADA, "Ada Lovelace", ["python"]), mentor(LINUS, "Linus Park", ["js"])])
    yield desk
    await desk.stop()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the secret and passwords from the environment, as in production."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)


ADD = ["--weekday", "thu", "--time", "18:00", "--zone", "Europe/Berlin", "--length", "60m"]


async def run_cli(desk: Desk, *args: str) -> int:
    """``mentordesk <args> --config ...`` in a thread, as a second process would run it."""
    config = str(desk.root / "config.toml")
    code: int = await asyncio.to_thread(cli, [*args, "--config", config])
    return code


def calendar_of(message: ReceivedMessage) -> tuple[str, bytes]:
    """(METHOD of the MIME type, the object); RFC 6047 wants the body's METHOD the same."""
    [part] = [p for p in message.message.walk() if p.get_content_type() == "text/calendar"]
    ics = part.get_payload(decode=True)
    assert isinstance(ics, bytes)
    method = str(part.get_param("method"))
    assert f"\r\nMETHOD:{method}\r\n".encode() in ics
    [attachment] = list(message.message.iter_attachments())
    assert attachment.get_payload(decode=True) == ics
    return method, ics


def read_both(ics: bytes, occurrences: int = 10) -> dict[str, Any]:
    icaljs = read_with_icaljs(ics, occurrences)
    assert icaljs == read_with_vobject(ics, occurrences), "ical.js and vobject disagree"
    return icaljs


def thursdays_from(first: str, weeks: int) -> list[str]:
    """The intended starts: 18:00 Berlin wall-clock time every week, in UTC."""
    day = date.fromisoformat(first)
    return [
        datetime(d.year, d.month, d.day, 18, tzinfo=BERLIN)
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        for d in (day + timedelta(weeks=k) for k in range(weeks))
    ]


def people(event: dict[str, Any]) -> list[str]:
    return [a["value"].removeprefix("mailto:") for a in event["attendees"]]


async def series_doc(desk: Desk) -> dict[str, Any]:
    found: dict[str, Any] = await desk.until(lambda store: store.series(1))
    return found


def add_directly(desk: Desk) -> None:
    apply_locally(
        desk.config,
        {
            "action": "add",
            "weekday": "thu",
            "time": "18:00",
            "zone": "Europe/Berlin",
            "length": "60m",
            "mentors": [ADA, LINUS],
            "location": "https://meet.example.org/oh",
        },
        datetime.now(UTC),
    )


# --- joining and leaving by email ---------------------------------------------------------------


async def test_join_and_leave_by_email(desk: Desk) -> None:
    add_directly(desk)
    await desk.start()
    await desk.replies_to(ADA, 1)
    series = await series_doc(desk)

    desk.send(mail("Dana Müller <dana@example.net>", "Office hours", "Hi! May I join?"))
    [invitation] = await desk.replies_to(DANA, 1)
    method, ics = calendar_of(invitation)
    assert method == "REQUEST"
    parsed = read_both(ics, 12)
    [event] = parsed["events"]
    assert (event["uid"], event["sequence"]) == (series["uid"], 0)
    assert people(event) == [ADA, LINUS, DANA]
    # Twelve weeks of 18:00 in Berlin, whatever DST does in between.
    assert [o["start"] for o in event["occurrences"]] == thursdays_from(series["first"], 12)
    assert "Office hours" in invitation.subject and "/feed/" in text_of(invitation)
    await desk.until(lambda store: series_of(store, 1)["attendees"] == [DANA])

    desk.send(mail("Dana Müller <dana@example.net>", "Office hours leave", ""))
    [_, cancel] = await desk.replies_to(DANA, 2)
    method, ics = calendar_of(cancel)
    assert method == "CANCEL"
    [event] = read_both(ics)["events"]
    assert (event["uid"], event["status"], people(event)) == (series["uid"], "CANCELLED", [DANA])
    await desk.until(lambda store: series_of(store, 1)["attendees"] == [])
    await desk.processed(2)
    # The mentors heard nothing of Dana's coming and going.
    assert len(desk.sink.messages_to(ADA)) == len(desk.sink.messages_to(LINUS)) == 1


def add_series(desk: Desk, weekday: str, mentors: list[str], title: str) -> None:
    apply_locally(
        desk.config,
        {
            "action": "add",
            "weekday": weekday,
            "time": "18:00",
            "zone": "Europe/Berlin",
            "length": "60m",
            "mentors": mentors,
            "title": title,
        },
        datetime.now(UTC),
    )


def uid_of(message: ReceivedMessage) -> str:
    [event, *_] = read_both(calendar_of(message)[1])["events"]
    return str(event["uid"])


async def test_leave_in_a_series_thread_leaves_that_series_only(desk: Desk) -> None:
    # SPEC §3a: office-hours membership is per series.
    add_series(desk, "tue", [ADA], "Python office hours")
    add_series(desk, "thu", [LINUS], "JavaScript office hours")
    await desk.start()
    python = await desk.until(lambda store: store.series(1))
    javascript = await desk.until(lambda store: store.series(2))

    desk.send(mail(f"Dana <{DANA}>", "Office hours", "Hi! May I join?"))
    invitations = await desk.replies_to(DANA, 2)
    by_uid = {uid_of(m): m for m in invitations}
    assert sorted(by_uid) == sorted([python["uid"], javascript["uid"]])
    await desk.until(
        lambda store: [series_of(store, n)["attendees"] for n in (1, 2)] == [[DANA]] * 2
    )

    # "leave" in answer to the JavaScript invitation: off that series, still on Python.
    js_invitation = by_uid[javascript["uid"]]
    desk.send(
        mail(
            f"Dana <{DANA}>",
            f"Re: {js_invitation.subject}",
            "leave\n\n> You are on the list",
            in_reply_to=str(js_invitation.message["Message-ID"]),
        )
    )
    cancel = (await desk.replies_to(DANA, 3))[-1]
    method, ics = calendar_of(cancel)
    [event] = read_both(ics)["events"]
    assert (method, event["uid"], people(event)) == ("CANCEL", javascript["uid"], [DANA])
    assert "JavaScript office hours" in text_of(cancel)
    await desk.until(lambda store: series_of(store, 2)["attendees"] == [])
    await desk.processed(2)
    async with desk.store() as store:
        assert series_of(store, 1)["attendees"] == [DANA]
    assert len(desk.sink.messages_to(DANA)) == 3

    # A fresh "office hours leave" (no thread) leaves every series, and says which.
    desk.send(mail(f"Erin <{ERIN}>", "Office hours", ""))
    await desk.replies_to(ERIN, 2)
    desk.send(mail(f"Erin <{ERIN}>", "Office hours leave", ""))
    cancels = (await desk.replies_to(ERIN, 4))[2:]
    assert all(calendar_of(m)[0] == "CANCEL" for m in cancels)
    assert sorted(uid_of(m) for m in cancels) == sorted([python["uid"], javascript["uid"]])
    texts = " ".join(text_of(m) for m in cancels)
    assert "Python office hours" in texts and "JavaScript office hours" in texts
    await desk.until(lambda store: series_of(store, 1)["attendees"] == [DANA])
    await desk.until(lambda store: series_of(store, 2)["attendees"] == [])


async def test_a_calendar_answer_comes_back_through_the_mailbox(desk: Desk) -> None:
    add_directly(desk)
    await desk.start()
    desk.send(mail(f"Dana <{DANA}>", "Office hours", ""))
    await desk.replies_to(DANA, 1)
    series = await series_doc(desk)
    desk.send(calendar_answer(DANA, "Dana", series["uid"], "ACCEPTED"))
    await desk.until(lambda store: series_of(store, 1)["answers"].get(DANA) == "ACCEPTED")
    await desk.processed(2)
    assert len(desk.sink.messages_to(DANA)) == 1  # an answer is never answered


def calendar_answer(sender: str, name: str, uid: str, partstat: str) -> bytes:
    """A Google Calendar RSVP: text plus an inline text/calendar REPLY."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    ics = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
            "VERSION:2.0",
            "METHOD:REPLY",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "SEQUENCE:0",
            f"DTSTAMP:{stamp}",
            f"ORGANIZER;CN=Test Mentors:mailto:{PROGRAM}",
            f"ATTENDEE;CN={name};PARTSTAT={partstat}:mailto:{sender}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = PROGRAM
    msg["Subject"] = f"Accepted: Office hours @ Weekly from 6pm to 7pm on Thursday ({sender})"
    msg["Message-ID"] = make_msgid(domain="calendar.test")
    msg.set_content(f"{name} has accepted this invitation.")
    part = MIMEPart()
    part.set_content(ics.encode(), "text", "calendar", params={"method": "REPLY"})
    msg.make_alternative()
    MIMEPart.attach(msg, part)
    return msg.as_bytes()


# --- the CLI ------------------------------------------------------------------------------------


async def test_cli_through_the_running_daemon(
    desk: Desk, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    await desk.start()
    where = "https://meet.example.org/office-hours"
    code = await run_cli(
        desk, "office-hours", "add", *ADD, "--mentor", ADA, "--mentor", LINUS, "--location", where
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Created office hours 1; the running daemon sends the emails now." in out
    assert "every Thursday, 18:00–19:00 (Europe/Berlin)" in out
    for person in (ADA, LINUS):
        [invitation] = await desk.replies_to(person, 1)
        assert calendar_of(invitation)[0] == "REQUEST"
    desk.send(mail(f"Dana <{DANA}>", "office hours", ""))
    await desk.replies_to(DANA, 1)
    series = await series_doc(desk)

    # Cancel the second Thursday for everyone, from the command line.
    second = (date.fromisoformat(series["first"]) + timedelta(weeks=1)).isoformat()
    assert await run_cli(desk, "office-hours", "cancel", "1", second) == 0
    assert "Cancelled one occurrence of office hours 1" in capsys.readouterr().out
    recurrence_id = thursdays_from(second, 1)[0]
    for person, count in ((ADA, 2), (LINUS, 2), (DANA, 2)):
        notice = (await desk.replies_to(person, count))[-1]
        method, ics = calendar_of(notice)
        assert method == "CANCEL"
        local = datetime.fromisoformat(f"{second}T18:00")
        assert f"RECURRENCE-ID;TZID=Europe/Berlin:{local:%Y%m%dT%H%M%S}".encode() in ics
        [event] = read_both(ics)["events"]
        assert (event["uid"], event["status"]) == (series["uid"], "CANCELLED")
        assert event["recurrence_id"] == recurrence_id
        assert person in people(event)

    assert await run_cli(desk, "office-hours", "list") == 0
    listing = capsys.readouterr().out
    assert f"cancelled: {second}" in listing and "joined: 1" in listing

    # A command that cannot be applied says why and changes nothing.
    assert await run_cli(desk, "office-hours", "cancel", "1", "2020-01-02") == 2
    assert "is not a date of office hours 1" in capsys.readouterr().err


async def test_cli_without_a_daemon_writes_to_the_store(
    desk: Desk, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on [web] port: the CLI opens the store itself.
    assert await run_cli(desk, "office-hours", "add", *ADD, "--mentor", ADA) == 0
    out = capsys.readouterr().out
    assert "the daemon is not running: the emails wait in the outbox until it starts" in out
    store = Store(desk.config.state.path, fsync=False, read_only=True)
    try:
        [series] = store.all_series()
        assert series["mentors"] == [ADA]
        [pending] = store.outbox("pending")
        assert pending["recipients"] == [ADA]
    finally:
        store.close()
    await desk.start()
    [invitation] = await desk.replies_to(ADA, 1)
    [event] = read_both(calendar_of(invitation)[1])["events"]
    assert event["uid"] == series["uid"]


async def test_the_admin_route_wants_a_fresh_token_for_that_very_command(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await desk.start()
    url = f"http://127.0.0.1:{desk.web_port}/admin/office-hours"
    body = json.dumps({"action": "list"}).encode()
    now = datetime.now(UTC)

    async def post(data: bytes, token: str) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with http.post(url, data=data, headers=headers) as response:
            return response.status, await response.json()

    secret = SECRET.encode()
    assert await post(body, admin_token(secret, body, now)) == (200, {"series": []})
    assert (await post(body, ""))[0] == 403
    other = json.dumps({"action": "add"}).encode()
    assert (await post(other, admin_token(secret, body, now)))[0] == 403  # made for another body
    assert (await post(body, admin_token(secret, body, now - timedelta(hours=1))))[0] == 403
    assert (await post(body, admin_token(b"another-secret-0123456789", body, now)))[0] == 403
    status, answer = await post(other, admin_token(secret, other, now))
    assert status == 400 and "mentors must be a list" in answer["error"]
    async with http.get(url) as response:
        assert response.status == 405


# --- the feed over HTTP -------------------------------------------------------------------------


async def test_the_feed_link_from_an_email_serves_the_calendar(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    add_directly(desk)
    await desk.start()
    desk.send(mail(f"Dana <{DANA}>", "Office hours", ""))
    [invitation] = await desk.replies_to(DANA, 1)
    series = await series_doc(desk)
    [url] = re.findall(r"http://127\.0\.0\.1:\d+/feed/[A-Za-z0-9_\-.]+\.ics", text_of(invitation))
    assert url in html_of(invitation)

    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-store"
        ics = await response.read()
    parsed = read_both(ics, 6)
    assert parsed["method"] is None
    [event] = parsed["events"]
    assert event["uid"] == series["uid"]
    assert [o["start"] for o in event["occurrences"]] == thursdays_from(series["first"], 6)

    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    payload, tag = token.split(".")
    base = url.rsplit("/", 1)[0]
    tampered = f"{payload}.{'A' if tag[0] != 'A' else 'B'}{tag[1:]}"
    expired = sign(
        SECRET.encode(),
        purpose="feed",
        person=DANA,
        obj="calendar",
        expires=datetime.now(UTC) - timedelta(days=1),
    )
    claim = sign(
        SECRET.encode(),
        purpose="claim",
        person=DANA,
        obj="calendar",
        expires=datetime.now(UTC) + timedelta(days=1),
    )
    for bad, status in ((tampered, 403), (expired, 410), (claim, 403), ("nonsense", 403)):
        async with http.get(f"{base}/{bad}.ics") as response:
            assert response.status == status, bad
            assert "text/html" in response.headers["Content-Type"]
            assert "BEGIN:VCALENDAR" not in await response.text()
