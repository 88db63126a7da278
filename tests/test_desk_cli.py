"""The coordinator's commands end to end: the CLI, the running daemon's admin route,
Dovecot in, aiosmtpd out.

Each command runs as a second process would (``mentordesk.cli.main`` in a thread, with
the secret from the environment); its output and exit code are checked, and its effect
in the emails the SMTP server received: calendar objects are read by ical.js and
vobject.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from mentordesk.admin import admin_token
from mentordesk.cli import main as cli
from mentordesk.daemon import Daemon
from mentordesk.state.store import Store, from_iso

from .desk import COORDINATOR, ENVIRON, SECRET, Desk, mail, text_of
from .icalcheck import read_with_icaljs, read_with_vobject
from .servers import Dovecot, ReceivedMessage, SmtpSink
from .test_claims import JORDAN, REQUEST, mentor, seed
from .timetravel import T0, FakeClock

ADA, GRACE, LINUS = "ada@example.com", "grace@example.org", "linus@example.com"
BY = "cli:tester"


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    desk.configure(matching={"invite_count": 1})
    seed(
        desk,
        [
            mentor(ADA, "Ada Lovelace", ["python"]),
            mentor(GRACE, "Grace Hopper", ["python"]),
            mentor(LINUS, "Linus Park", ["python"], status="paused"),
        ],
    )
    yield desk
    await desk.stop()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the secret from the environment, as in production."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("USER", "alice")


async def run(desk: Desk, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``mentordesk <args> --config ...`` in a thread: (exit code, stdout, stderr)."""
    config = str(desk.root / "config.toml")
    code: int = await asyncio.to_thread(cli, [*args, "--config", config])
    out, err = capsys.readouterr()
    return code, out, err


def calendar(message: ReceivedMessage) -> dict[str, Any]:
    """The text/calendar part, read by ical.js (and vobject, which must agree)."""
    [part] = [p for p in message.message.walk() if p.get_content_type() == "text/calendar"]
    ics = part.get_payload(decode=True)
    assert isinstance(ics, bytes)
    read = read_with_icaljs(ics, 1)
    assert read == read_with_vobject(ics, 1), "ical.js and vobject disagree"
    assert read["method"] == part.get_param("method")
    return read


async def open_request(desk: Desk) -> None:
    await desk.start()
    desk.send(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", REQUEST))
    await desk.mail_to(JORDAN, "MD-0001")
    await desk.until(lambda store: (store.request(1) or {}).get("status") == "open")


async def subjects(desk: Desk, to: str, part: str, count: int) -> list[ReceivedMessage]:
    """Wait until ``count`` messages to ``to`` have ``part`` in their subject; those."""
    for _ in range(750):
        found = [m for m in desk.sink.messages_to(to) if part in m.subject]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"{to}: fewer than {count} {part!r} messages")


async def audit(desk: Desk, event: str) -> list[dict[str, Any]]:
    async with desk.store() as store:
        return [e for e in store.audit_log() if e["event"] == event]


# --- requests ------------------------------------------------------------------------------


async def test_assign_then_reassign_through_the_daemon(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await open_request(desk)

    code, out, _ = await run(desk, capsys, "request", "assign", "MD-0001", GRACE, "--by", BY)
    assert code == 0, out
    assert out.startswith("MD-0001 is now with Grace Hopper; Grace Hopper and the mentee were")
    assert "both were invited to a session on" in out
    assert "not running" not in out
    await desk.mail_to(GRACE, "[MD-0001] It's yours: meet Jordan Lee")
    await desk.mail_to(JORDAN, "[MD-0001] Grace Hopper will be your mentor")
    old = calendar(await desk.mail_to(GRACE, "Mentoring session with Jordan"))["events"][0]
    mentee_old = calendar(await desk.mail_to(JORDAN, "Mentoring session with Grace"))
    assert mentee_old["events"][0]["uid"] == old["uid"]

    code, out, _ = await run(desk, capsys, "request", "reassign", "MD-0001", ADA, "--by", BY)
    assert code == 0, out
    assert out.startswith(
        "MD-0001 is now with Ada Lovelace; Grace Hopper was told (their session was "
        "cancelled in both calendars), and Ada Lovelace and the mentee were introduced"
    )
    told = await desk.mail_to(GRACE, "[MD-0001] Now with another mentor")
    assert "A coordinator has given MD-0001 to another mentor" in " ".join(text_of(told).split())
    for person in (GRACE, JORDAN):
        cancel = calendar(await desk.mail_to(person, "Cancelled: mentoring session"))
        assert cancel["method"] == "CANCEL"
        [event] = cancel["events"]
        assert (event["uid"], event["sequence"]) == (old["uid"], old["sequence"] + 1)
        assert event["status"] == "CANCELLED"
    await desk.mail_to(ADA, "[MD-0001] It's yours: meet Jordan Lee")
    await desk.mail_to(JORDAN, "[MD-0001] Ada Lovelace will be your mentor")
    new = calendar(await desk.mail_to(ADA, "Mentoring session with Jordan"))["events"][0]
    assert new["uid"] != old["uid"]
    new_mentee = calendar(await desk.mail_to(JORDAN, "Mentoring session with Ada"))
    assert new_mentee["method"] == "REQUEST" and new_mentee["events"][0]["uid"] == new["uid"]

    [event] = await audit(desk, "reassigned")
    assert (event["by"], event["was"], event["mentor"]) == (BY, GRACE, ADA)
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["claimed_by"] == ADA

    code, out, _ = await run(desk, capsys, "request", "show", "md-1")
    assert code == 0
    assert out.startswith("MD-0001  booked  Jordan Lee <jordan@example.net>")
    assert "  with: Ada Lovelace" in out
    assert f"Reassigned from Grace Hopper <{GRACE}> to Ada Lovelace <{ADA}> by {BY}" in out
    # Sent emails by their subjects (their bytes are gone), to whom, and when.
    assert "email out  [MD-0001] Now with another mentor — to grace@example.org — sent — " in out
    assert "reassigned_mentor" not in out
    # ... the subjects the people read: the acknowledgement and the claim invitation.
    [ack] = [m for m in desk.sink.messages_to(JORDAN) if "Mentor request" in m.subject]
    assert f"email out  {ack.subject} — to {JORDAN} — sent — " in out
    invites = [m for who in (ADA, GRACE) for m in desk.sink.messages_to(who)]
    [invite] = [m for m in invites if "would like help with" in m.subject]
    assert invite.subject.startswith("[MD-0001] Jordan")
    assert f"email out  {invite.subject} — to {invite.rcpt_tos[0]} — sent — " in out


async def test_refusals_and_bad_usage_say_why_and_change_nothing(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await open_request(desk)
    sent = len(await desk.replies(2))  # the acknowledgement and the one claim invitation

    code, _, err = await run(desk, capsys, "request", "assign", "MD-0001", LINUS)
    assert code == 1
    assert err == "mentordesk: Linus Park is paused; resume them first if they agree.\n"
    code, _, err = await run(desk, capsys, "request", "close", "MD-0001")
    assert code == 1
    assert "MD-0001 is open: only a request whose session was held can be closed." in err
    code, _, err = await run(desk, capsys, "request", "reassign", "MD-0001", ADA)
    assert code == 1
    assert "MD-0001 is open, with nobody to take it from; assign it instead." in err
    code, _, err = await run(desk, capsys, "request", "resend", "MD-0001")
    assert (code, err) == (1, "mentordesk: MD-0001 has no session in calendars.\n")

    code, _, err = await run(desk, capsys, "request", "assign", "MD-0042", ADA)
    assert code == 2 and "No request MD-0042" in err
    code, _, err = await run(desk, capsys, "request", "assign", "MD-0001", "nobody@x.test")
    assert code == 2 and "No mentor has the address nobody@x.test." in err
    code, _, err = await run(desk, capsys, "request", "withdraw", "forty-two")
    assert code == 2 and "'forty-two' is not a request reference" in err
    code, _, err = await run(desk, capsys, "request", "assign", "MD-0001", "not-an-address")
    assert code == 2 and "is not an email address" in err

    await asyncio.sleep(0.5)  # anything wrongly sent would have reached the sink by now
    assert len(desk.sink.messages) == sent
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "open"
        refused = [e for e in store.audit_log() if e["event"] == "coordinator refused"]
    # Who acted is recorded, from $USER when --by is not given.
    assert {e["by"] for e in refused} == {"cli:alice"}


async def test_withdraw_for_the_mentee_tells_the_holder_and_cancels(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await open_request(desk)
    assert (await run(desk, capsys, "request", "assign", "MD-0001", ADA))[0] == 0
    invitation = calendar(await desk.mail_to(ADA, "Mentoring session with Jordan"))
    code, out, _ = await run(desk, capsys, "request", "withdraw", "MD-0001")
    assert code == 0
    assert out == (
        "MD-0001 is withdrawn; the mentee and Ada Lovelace were told; the session was "
        "cancelled in both calendars.\n"
    )
    await desk.mail_to(ADA, "[MD-0001] Withdrawn by the mentee")
    await desk.mail_to(JORDAN, "[MD-0001] Your request is withdrawn")
    for person in (ADA, JORDAN):
        cancel = calendar(await desk.mail_to(person, "Cancelled: mentoring session"))
        assert cancel["events"][0]["uid"] == invitation["events"][0]["uid"]
    code, _, err = await run(desk, capsys, "request", "withdraw", "MD-0001")
    assert (code, err) == (1, "mentordesk: MD-0001 is withdrawn: it has ended.\n")


async def test_without_a_daemon_the_command_waits_in_the_outbox(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await open_request(desk)
    await desk.stop()
    code, out, _ = await run(desk, capsys, "request", "assign", "MD-0001", ADA)
    assert code == 0
    assert "The daemon is not running: any emails wait in the outbox until it starts." in out
    await desk.start()
    await desk.mail_to(ADA, "[MD-0001] It's yours")
    await desk.mail_to(JORDAN, "[MD-0001] Ada Lovelace will be your mentor")


# --- mentors ---------------------------------------------------------------------------------


async def test_mentor_commands_through_the_daemon(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await desk.start()
    code, out, _ = await run(desk, capsys, "mentor", "pause", ADA)
    assert (code, out) == (
        0,
        "Ada Lovelace is paused: no new requests until resumed. Ada Lovelace was told.\n",
    )
    paused = await desk.mail_to(ADA, "You are paused")
    assert "A coordinator made this change for you" in text_of(paused)
    code, _, err = await run(desk, capsys, "mentor", "pause", ADA)
    assert (code, err) == (1, "mentordesk: Ada Lovelace is paused already; nothing changed.\n")
    assert (await run(desk, capsys, "mentor", "resume", ADA))[0] == 0
    await desk.mail_to(ADA, "Welcome back")

    code, out, _ = await run(desk, capsys, "mentor", "renew", ADA, "--until", "2031-06-30")
    assert (code, out) == (
        0,
        "Ada Lovelace's term now runs until 2031-06-30. Ada Lovelace was told.\n",
    )
    renewed = await desk.mail_to(ADA, "Your mentor term is renewed")
    assert "renewed until 2031-06-30" in " ".join(text_of(renewed).split())
    code, _, err = await run(desk, capsys, "mentor", "renew", ADA, "--until", "30/06/2031")
    assert code == 2 and "until must be a date like 2027-06-30" in err

    code, out, _ = await run(desk, capsys, "mentor", "show", ADA)
    assert code == 0
    assert out.splitlines()[0] == f"Ada Lovelace <{ADA}>  active"
    assert "  hours: Tue 18:00–20:00 (Europe/Berlin)" in out
    assert "term ends 2031-06-30" in out

    code, out, _ = await run(desk, capsys, "mentor", "resign", GRACE)
    assert (code, out) == (0, "Grace Hopper has stepped down. Grace Hopper was told.\n")
    await desk.mail_to(GRACE, "You have stepped down")
    code, _, err = await run(desk, capsys, "mentor", "approve", ADA)
    assert code == 1 and "only a pending enrollment can be approved" in err
    code, _, err = await run(desk, capsys, "mentor", "show", "nobody@x.test")
    assert code == 2 and "No mentor has the address nobody@x.test." in err

    events = [(e["event"], e.get("by")) for e in await audit(desk, "mentor pause")]
    assert events == [("mentor pause", "cli:alice")]
    [resigned] = await audit(desk, "mentor resigned")
    assert resigned["by"] == "cli:alice"


# --- on demand -------------------------------------------------------------------------------


async def test_digest_and_feedback_round_now(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await open_request(desk)
    code, out, _ = await run(desk, capsys, "digest", "--now", "--to", "boss@program.test")
    assert code == 0
    assert out == ("The digest went to boss@program.test; the daily one still goes out as usual.\n")
    digest = await desk.mail_to("boss@program.test", "[Test Mentors] Daily digest")
    assert "MD-0001" in text_of(digest) or "1 request" in text_of(digest)
    assert (await run(desk, capsys, "digest", "--now"))[0] == 0
    await desk.mail_to(COORDINATOR, "[Test Mentors] Daily digest")

    year = datetime.now(ZoneInfo("America/New_York")).year
    code, out, _ = await run(desk, capsys, "feedback-round", "--now")
    # Paused mentors are still in the program: they are asked too.
    assert code == 0 and out.startswith(f"The {year} feedback round went out to 4 people")
    for person in (ADA, GRACE, LINUS, JORDAN):
        await desk.mail_to(person, "One question about your year with us")
    code, _, err = await run(desk, capsys, "feedback-round", "--now")
    assert code == 1 and f"The {year} feedback round went out on" in err
    assert [e["by"] for e in await audit(desk, "feedback round on demand")] == ["cli:alice"]


# --- status, report, export ---------------------------------------------------------------------


async def test_status_shows_sessions_and_whom_requests_wait_on(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await open_request(desk)
    desk.send(mail("Sam Doe <sam@example.net>", "Mentor request", REQUEST))
    await desk.until(lambda store: (store.request(2) or {}).get("status") == "open")
    assert (await run(desk, capsys, "request", "assign", "MD-0001", ADA))[0] == 0
    await desk.mail_to(ADA, "Mentoring session with Jordan")

    code, out, _ = await run(desk, capsys, "status")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("MD-")}
    assert rows["MD-0002"].rstrip().endswith("mentors: 1 invited")
    assert "answers: ada@example.com, jordan@example.net" in out
    assert "Sessions in calendars (1; times in America/New_York)" in out
    [session_row] = [line for line in out.splitlines() if "proposed" in line]
    assert session_row.split()[0] == "MD-0001" and ADA in session_row and JORDAN in session_row


async def test_report_help_lists_topics_and_export_reads_as_people_do(
    desk: Desk, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as done:
        cli(["report", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "topics:" in out
    assert "  overview  Requests per month" in out and "(the default)" in out
    assert "  feedback  Every feedback round" in out

    folder = tmp_path / "export"
    assert (await run(desk, capsys, "export", "--csv", str(folder)))[0] == 0
    with (folder / "mentors.csv").open(encoding="utf-8", newline="") as f:
        mentors = {row["email"]: row for row in csv.DictReader(f)}
    assert mentors[ADA]["availability"] == "Tue 18:00–20:00"
    assert datetime.fromisoformat(mentors[ADA]["term_end"]).tzinfo is not None


# --- the admin route ---------------------------------------------------------------------------


async def test_the_command_route_wants_a_fresh_token_for_that_very_command(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await desk.start()
    url = f"http://127.0.0.1:{desk.web_port}/admin/command"
    command = {"desk": "coordinator", "action": "mentor.pause", "email": ADA, "by": BY}
    body = json.dumps(command).encode()
    secret = SECRET.encode()

    async def post(data: bytes, token: str) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with http.post(url, data=data, headers=headers) as response:
            return response.status, await response.json()

    other = json.dumps({**command, "email": GRACE}).encode()
    now = datetime.now(UTC)
    assert (await post(other, admin_token(secret, body, now)))[0] == 403
    assert (await post(body, ""))[0] == 403
    token = admin_token(secret, body, now)
    status, answer = await post(body, token)
    assert status == 200 and answer["done"] is True
    assert (await post(body, token))[0] == 403  # a replay is refused
    bad = json.dumps({"desk": "coordinator", "action": "mentor.fly", "by": BY}).encode()
    status, answer = await post(bad, admin_token(secret, bad, now))
    assert status == 400 and "unknown action 'mentor.fly'" in answer["error"]
    nobody = json.dumps({"desk": "coordinator", "action": "mentor.pause", "email": ADA}).encode()
    status, answer = await post(nobody, admin_token(secret, nobody, now))
    assert status == 400 and "by must name who acts" in answer["error"]
    # Whoever acts reaches the audit as one printable line, or not at all.
    forged = json.dumps({**command, "by": "cli:eve\nevent: mentor resign"}).encode()
    status, answer = await post(forged, admin_token(secret, forged, now))
    assert status == 400 and "by must name who acts" in answer["error"]
    odd = json.dumps({**command, "email": ["x@y.z"]}).encode()
    status, answer = await post(odd, admin_token(secret, odd, now))
    assert status == 400 and answer["error"] == "email must be text, got list"
    store = Store(desk.config.state.path, fsync=False, read_only=True)
    try:
        assert [e["by"] for e in store.audit_log() if e["event"] == "mentor pause"] == [BY]
        assert (store.mentor(GRACE) or {})["status"] == "active"
    finally:
        store.close()


# --- resend and close, with the daemon's clock in our hands ------------------------------------


async def test_resend_then_close_after_the_session_was_held(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    desk.configure(matching={"invite_count": 1}, timers={"sweep_interval": "1h"})
    clock = FakeClock(T0)
    daemon = await desk.start(Daemon(desk.config, clock=clock))
    desk.send(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", REQUEST))
    await desk.until(lambda store: (store.request(1) or {}).get("status") == "open")
    assert (await run(desk, capsys, "request", "assign", "MD-0001", ADA))[0] == 0
    first = {p: await desk.mail_to(p, "Mentoring session with") for p in (ADA, JORDAN)}

    code, out, _ = await run(desk, capsys, "request", "resend", "MD-0001")
    assert code == 0
    assert "went again to Ada Lovelace and the mentee." in out
    for person in (ADA, JORDAN):
        again = await subjects(desk, person, "Mentoring session with", 2)
        a, b = calendar(first[person])["events"][0], calendar(again[1])["events"][0]
        assert (a["uid"], a["sequence"], a["occurrences"]) == (
            b["uid"],
            b["sequence"],
            b["occurrences"],
        )

    # Not yet held: it cannot be closed.
    code, _, err = await run(desk, capsys, "request", "close", "MD-0001")
    assert code == 1 and "MD-0001 is booked" in err
    async with desk.store() as store:
        session = store.live_session_of(1)
        assert session is not None
    clock.now = from_iso(session["end"]) + timedelta(minutes=5)
    assert daemon.timers is not None
    await daemon.timers.sweep()
    await desk.until(lambda store: (store.request(1) or {}).get("status") == "met")

    code, out, _ = await run(desk, capsys, "request", "close", "MD-0001")
    assert (code, out) == (0, "MD-0001 is closed; no after-session questions will be sent.\n")
    clock.advance(hours=3)
    assert daemon.timers is not None
    await daemon.timers.sweep()
    async with desk.store() as store:
        assert (store.request(1) or {}).get("status") == "closed"
        kinds = [item["kind"] for item in store.outbox()]
        [closed] = [e for e in store.audit_log() if e["event"] == "request closed"]
    assert closed["by"] == "cli:alice"
    assert not [k for k in kinds if k.startswith("after_session")]
