"""flows/announcements.py over the real store: who gets an announcement, and bad input.

The end-to-end side (the daemon, a kill halfway, Chromium) is ``test_announce_e2e``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.announce import run_announce
from mentordesk.config import load_config
from mentordesk.errors import AnnouncementError, ConfigError
from mentordesk.flows.announcements import announce, opt_out, recipients
from mentordesk.mailer.compose import Email, build_message, message_bytes
from mentordesk.mailer.drafts import stored_email
from mentordesk.state.pairings import live_pairings
from mentordesk.state.store import from_iso, iso
from mentordesk.timers import Registry

from .desk import mail
from .test_pairings import REQUEST
from .timetravel import COORDINATOR, SECRET, T0, Harness, mentor_doc, parse, text_of

ADA = "ada@example.com"
BEA = "bea@example.com"
JORDAN = "jordan@example.net"
SAM = "sam@example.net"
DAY = timedelta(days=1)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(tmp_path, Registry(), pairings={"enabled": True}).open()
    await harness.seed(
        mentor_doc(ADA, "Ada Lovelace", ["python"]),
        mentor_doc(BEA, "Bea Brown", ["python"]),
        mentor_doc("pat@example.com", "Pat", ["python"], status="paused"),
        mentor_doc("old@example.com", "Old", ["python"], term_end=iso(T0 - DAY)),
    )
    yield harness
    await harness.close()


async def send(desk: Harness, **command: Any) -> dict[str, Any]:
    full = {"audience": "mentors", "subject": "News", "body": "Hello!", "send": True, **command}
    answer: dict[str, Any] = await desk.call(
        announce, desk.config, desk.store, desk.coordinator.postman, full, desk.clock()
    )
    return answer


async def test_each_audience_reaches_each_person_once(desk: Harness) -> None:
    # Sam asked more than a year ago; Jordan asks now and gets a pairing with Ada.
    await desk.receive(mail(f"Sam Sun <{SAM}>", "Mentor request", REQUEST.replace("Jordan", "Sam")))
    desk.clock.advance(days=400)
    await desk.seed(
        mentor_doc(ADA, "Ada Lovelace", ["python"], term_end=iso(desk.clock() + 365 * DAY)),
        mentor_doc(BEA, "Bea Brown", ["python"], term_end=iso(desk.clock() + 365 * DAY)),
    )
    await desk.receive(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", REQUEST))
    claims = desk.coordinator.claims
    number = max(r["number"] for r in await desk.call(desk.store.requests))
    assert (
        await desk.call(claims.claim, number, ADA, desk.clock(), via="web")
    ).outcome == "claimed"
    assert len(await desk.call(live_pairings, desk.store)) == 1

    def who(audience: str) -> list[str]:
        return [email for email, _ in recipients(desk.store, audience, desk.clock())]

    assert await desk.call(who, "mentors") == [ADA, BEA]  # not paused, not past the term
    assert await desk.call(who, "mentees") == [JORDAN]  # Sam's request is over a year old
    assert await desk.call(who, "pairings") == [ADA, JORDAN]
    assert await desk.call(who, "all") == [ADA, BEA, JORDAN]
    await desk.call(lambda: opt_out(desk.store, "BEA@example.com", desk.clock()))
    assert await desk.call(who, "all") == [ADA, JORDAN]

    # An address that bounced is left out, and not counted.
    await desk.receive(mail("Gone <gone@example.net>", "Mentor request", REQUEST))
    await desk.call(
        lambda: desk.store.mark_bounced("gone@example.net", reason="5.1.1", now=desk.clock())
    )
    assert await desk.call(who, "mentees") == [JORDAN, "gone@example.net"]
    answer = await send(desk, audience="all")
    assert (answer["sent"], answer["count"]) == (True, 2)
    sent = await desk.sent("announcement")
    assert sorted(m["To"].addresses[0].addr_spec for m in sent) == [ADA, JORDAN]
    assert "Hello!" in text_of(sent[0]) and "/announcements-off/" in text_of(sent[0])
    assert sent[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_an_announcement_is_paced(desk: Harness) -> None:
    await send(desk)
    items = [i for i in await desk.call(desk.store.outbox) if i["kind"] == "announcement"]
    dues = [from_iso(i["due"]) for i in items]
    # [announcements] per_minute = 60: one a second, the first at once.
    assert dues == [desk.clock(), desk.clock() + timedelta(seconds=1)]
    assert [i["status"] for i in items] == ["pending", "pending"]
    assert await desk.call(desk.store.due_outbox_count, desk.clock()) == 1


async def test_a_preview_goes_to_the_coordinator_only(desk: Harness) -> None:
    answer = await send(desk, send=False, subject="Meetup", body="Line one\nline two\n\nMore.")
    assert answer == {"sent": False, "count": 2, "audience": "mentors"}
    [preview] = await desk.sent("announcement")
    assert preview["To"].addresses[0].addr_spec == COORDINATOR
    assert preview["Subject"] == "Preview (2 people): [Test Mentors] Meetup"
    assert "Line one<br>line two" in (preview.get_body(("html",)) or preview).get_content()
    # The real send still goes out: a preview is not a send.
    assert (await send(desk, subject="Meetup", body="Line one\nline two\n\nMore."))["count"] == 2


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ({"audience": "everyone"}, "choose who gets it: one of mentors, mentees, pairings, all"),
        ({"subject": "  "}, "the subject is empty"),
        ({"subject": "x" * 201}, "longer than 200"),
        ({"body": "\n\n"}, "the text is empty"),
        ({"body": "x" * 50_001}, "longer than 50000"),
        ({"send": "yes"}, "send must be true or false"),
    ],
)
async def test_bad_commands_change_nothing(
    desk: Harness, command: dict[str, Any], problem: str
) -> None:
    with pytest.raises(AnnouncementError, match=problem):
        await send(desk, **command)
    assert await desk.sent() == []


async def test_the_same_announcement_goes_once(desk: Harness) -> None:
    await send(desk)
    with pytest.raises(AnnouncementError, match=r"went to 2 people .* already"):
        await send(desk)
    await send(desk, subject="News, again")
    assert len(await desk.sent("announcement")) == 4


async def test_a_subject_cannot_inject_headers(desk: Harness) -> None:
    await send(desk, subject="News\r\nBcc: everyone@example.org")
    items = await desk.call(desk.store.outbox)
    for item in items:
        raw = stored_email(item, desk.config.program)
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nBcc:" not in head
        assert parse(raw)["Bcc"] is None


def test_body_files_that_cannot_be_read_say_so(tmp_path: Path) -> None:
    from .timetravel import write_config

    config = write_config(tmp_path)
    for name, data, problem in (
        ("latin1.txt", "Grüße".encode("latin-1"), "is not UTF-8 text"),
        ("missing.txt", None, "cannot be read"),
    ):
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        args = argparse.Namespace(to="mentors", subject="x", body_file=str(path), send=False)
        with pytest.raises(AnnouncementError, match=problem):
            run_announce(config, args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[pairings]\nenabled = 'yes'\n", r"\[pairings\] enabled: expected true or false"),
        ("[pairings]\nevery_weeks = 0\n", r"\[pairings\] every_weeks: "),
        ("[pairings]\nterm = 'a year'\n", r"\[pairings\] term: 'a year' is not a duration"),
        ("[pairings]\nquiet = 6\n", r"\[pairings\] quiet: unknown key"),
        ("[announcements]\nper_minute = 0\n", r"\[announcements\] per_minute: "),
    ],
)
def test_bad_pairing_settings_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    from .timetravel import write_config

    path = write_config(tmp_path).source
    path.write_text(path.read_text("utf-8") + text, "utf-8")
    with pytest.raises(ConfigError, match=expected):
        load_config(path, environ={"MD_TEST_SECRET": SECRET})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/off\r\nBcc: everyone@example.org",
        "http://127.0.0.1/off>, <mailto:x@example.org",
        "javascript:alert(1)",
        "http://127.0.0.1/" + "x" * 1000,
    ],
)
def test_only_a_plain_opt_out_url_reaches_the_header(url: str) -> None:
    email = Email(
        from_addr="mentors@program.test",
        from_name="Test Mentors",
        to="ada@example.com",
        to_name="",
        subject="News",
        text="Hello",
        html="<p>Hello</p>",
        message_id="<1@program.test>",
        date=datetime(2025, 3, 17, tzinfo=UTC),
        auto_submitted="auto-generated",
        list_unsubscribe=url,
    )
    with pytest.raises(ValueError, match="list_unsubscribe"):
        message_bytes(email)
    with pytest.raises(ValueError, match="list_unsubscribe"):
        build_message(email)
