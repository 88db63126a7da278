"""Announcements end to end (flows/announcements, announce.py, web_announce.py).

Real Dovecot, real aiosmtpd, the daemon in a child process killed with SIGKILL halfway
through an announcement, and Debian's Chromium pressing the opt-out button.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright

import mentordesk
from mentordesk.flows.announcements import opted_out
from mentordesk.state.store import Store, iso

from .desk import COORDINATOR, ENVIRON, Desk, mail, text_of
from .servers import PROGRAM_USER, Dovecot, ReceivedMessage, SmtpSink, until
from .timetravel import mentor_doc

CODE = Path(mentordesk.__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
MENTORS = [f"mentor{n:03d}@example.org" for n in range(120)]
PAUSED = "paused@example.org"
RESIGNED = "gone@example.org"
OPTED_OUT = "quiet@example.org"
BODY = "Dear all,\n\nThe spring meetup is on 4 April in Berlin.\nBring a friend!\n"


class SlowSink(SmtpSink):
    """An SMTP server that takes a little while over each message, so that a kill can
    land in the middle of an announcement."""

    def _record(self, message: ReceivedMessage) -> None:
        time.sleep(0.03)
        super()._record(message)


@pytest.fixture
def slow_sink() -> Iterator[SmtpSink]:
    sink = SlowSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def seed(desk: Desk, emails: list[str]) -> None:
    store = Store(desk.config.state.path, fsync=False)
    term = {"term_end": iso(datetime.now(UTC) + timedelta(days=365))}
    try:
        with store.transaction():
            for n, email in enumerate(emails):
                store.save_mentor(mentor_doc(email, f"Mentor {n}", ["python"], **term))
            store.save_mentor(mentor_doc(PAUSED, "Pat", ["python"], status="paused", **term))
            store.save_mentor(mentor_doc(RESIGNED, "Ron", ["python"], status="resigned", **term))
            store.save_mentor(mentor_doc(OPTED_OUT, "Quinn Quiet", ["python"], **term))
            store.set_meta(f"announcements-off:{OPTED_OUT}", iso(datetime.now(UTC)))
    finally:
        store.close()


def cli(desk: Desk, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mentordesk.cli", *args, "--config", str(desk.root / "config.toml")],
        cwd=desk.root,
        env={**os.environ, **ENVIRON, "PYTHONPATH": str(CODE)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Child:
    """``mentordesk run`` in a child process."""

    def __init__(self, desk: Desk, name: str) -> None:
        self.log = (desk.root / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mentordesk.cli",
                "run",
                "--config",
                str(desk.root / "config.toml"),
            ],
            cwd=desk.root,
            env={**os.environ, **ENVIRON, "PYTHONPATH": str(CODE)},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, desk: Desk) -> None:
        url = f"http://127.0.0.1:{desk.web_port}/healthz"
        deadline = asyncio.get_running_loop().time() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc.poll() is None, "the daemon exited"
                try:
                    async with http.get(url) as response:
                        if response.status in (200, 503):
                            return
                except aiohttp.ClientError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, "daemon not up in 30 s"
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def announcements(sink: SmtpSink, subject: str) -> list[ReceivedMessage]:
    return [m for m in sink.messages if m.subject == f"[Test Mentors] {subject}"]


async def test_an_announcement_survives_a_kill_halfway(
    tmp_path: Path, dovecot: Dovecot, slow_sink: SmtpSink
) -> None:
    desk = Desk(tmp_path, dovecot, slow_sink)
    desk.configure(smtp={"connections": 1}, announcements={"per_minute": 6000})
    seed(desk, MENTORS)
    (desk.root / "body.txt").write_text(BODY, "utf-8")
    subject = "Spring meetup"
    args = ("announce", "--to", "mentors", "--subject", subject, "--body-file", "body.txt")
    first = Child(desk, "first")
    try:
        await first.ready(desk)
        # The preview goes to the coordinator alone and says how many would get it.
        preview = cli(desk, *args)
        assert preview.returncode == 0, preview.stderr
        assert f"{len(MENTORS)} people (mentors) would get it" in preview.stdout
        previews = f"Preview ({len(MENTORS)} people): [Test Mentors] {subject}"
        await until(lambda: [m for m in slow_sink.messages if m.subject == previews], timeout_s=60)
        assert {m.rcpt_tos for m in slow_sink.messages} == {(COORDINATOR,)}

        sent = cli(desk, *args, "--send")
        assert sent.returncode == 0, sent.stderr
        assert f"to {len(MENTORS)} people (mentors) stored" in sent.stdout
        # The same announcement again is refused: nobody gets it twice that way.
        again = cli(desk, *args, "--send")
        assert again.returncode == 2 and "already" in again.stderr
        await until(
            lambda: len(announcements(slow_sink, subject)) >= len(MENTORS) // 3, timeout_s=60
        )
    finally:
        first.kill()
    halfway = len(announcements(slow_sink, subject))
    assert 0 < halfway < len(MENTORS), halfway

    second = Child(desk, "second")
    try:
        await second.ready(desk)
        await until(
            lambda: {m.rcpt_tos[0] for m in announcements(slow_sink, subject)} >= set(MENTORS),
            timeout_s=60,
        )
        await asyncio.sleep(1)  # anything more would come now
    finally:
        second.stop()
    got = announcements(slow_sink, subject)
    ids: dict[str, set[str]] = {}
    for message in got:
        [to] = message.rcpt_tos
        ids.setdefault(to, set()).add(str(message.message["Message-ID"]))
    # Every active mentor, nobody else; one email each (an email in flight at the kill
    # may be delivered again, with its own Message-ID, which clients show once).
    assert set(ids) == set(MENTORS)
    assert all(len(found) == 1 for found in ids.values())
    print(f"announcement: {halfway} delivered at the kill, {len(got) - len(MENTORS)} again")
    assert len(got) - len(MENTORS) <= 32  # mailer.sender.MAX_UNMARKED
    sample = next(m for m in got if m.rcpt_tos == (MENTORS[7],))
    assert sample.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(
        r"<http://127\.0\.0\.1:\d+/announcements-off/[\w.-]+>",
        str(sample.message["List-Unsubscribe"]),
    )
    text = " ".join(text_of(sample).split())
    assert text.startswith("Dear all, The spring meetup is on 4 April in Berlin. Bring a friend!")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-tests.sh")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def send_announcement(desk: Desk, subject: str, to: str = "mentors") -> None:
    from mentordesk.announce import announce_command

    command = {"audience": to, "subject": subject, "body": BODY, "send": True}
    answer, through_daemon = await asyncio.to_thread(announce_command, desk.config, command)
    assert through_daemon and answer["sent"]


@pytest.mark.browser
async def test_the_opt_out_link_works_in_chromium_and_is_honoured(
    desk: Desk, browser: Browser, http: aiohttp.ClientSession
) -> None:
    team = MENTORS[:3]
    seed(desk, team)
    await desk.start()
    await send_announcement(desk, "First news")
    [first] = await desk.replies_to(team[0], 1)
    [url] = re.findall(r"http://\S+/announcements-off/\S+", text_of(first))
    assert str(first.message["List-Unsubscribe"]) == f"<{url}>"

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    response = await page.goto(url)
    assert response is not None and response.status == 200
    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == "Stop announcements?"
    async with desk.store() as store:
        assert not opted_out(store, team[0])  # opening the link changed nothing
    await page.get_by_role("button", name="Stop announcements").click()
    await page.wait_for_load_state()
    assert await heading.inner_text() == "No more announcements."
    await page.goto(url)
    assert await heading.inner_text() == "You get no announcements already."
    await page.close()

    # A mail provider's one-click POST (RFC 8058) works without the page.
    [second] = await desk.replies_to(team[1], 1)
    one_click = str(second.message["List-Unsubscribe"]).strip("<>")
    async with http.post(one_click, data={"List-Unsubscribe": "One-Click"}) as answer:
        assert answer.status == 200
    # Without it and without the page's form token, a POST changes nothing.
    [third] = await desk.replies_to(team[2], 1)
    bare = str(third.message["List-Unsubscribe"]).strip("<>")
    async with http.post(bare, data={"other": "x"}) as refused:
        assert refused.status == 403
    async with http.get(bare[:-3] + "abc") as tampered:
        assert tampered.status == 403

    await send_announcement(desk, "Second news", to="all")
    await desk.replies_to(team[2], 2)
    await asyncio.sleep(1)
    for email in (team[0], team[1], OPTED_OUT):
        assert [m.subject for m in desk.sink.messages_to(email)] in (
            ["[Test Mentors] First news"],
            [],
        )
    assert [m.subject for m in desk.sink.messages_to(team[2])] == [
        "[Test Mentors] First news",
        "[Test Mentors] Second news",
    ]


async def test_a_reply_to_an_announcement_reaches_the_coordinator(desk: Desk) -> None:
    seed(desk, MENTORS[:1])
    await desk.start()
    await send_announcement(desk, "Meetup")
    [sent] = await desk.replies_to(MENTORS[0], 1)
    desk.send(
        mail(
            f"Mentor 0 <{MENTORS[0]}>",
            "Re: Meetup",
            "Count me in! Can I bring my mentee?\n\n> Dear all,",
            in_reply_to=str(sent.message["Message-ID"]),
        )
    )
    notice = await desk.mail_to(COORDINATOR, "Needs a person")
    assert "Count me in!" in text_of(notice)
    assert desk.dovecot.count(PROGRAM_USER, "Processed") >= 1
