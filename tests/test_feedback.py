"""Flows 7 and 9: after the session, follow-ups, no-shows and the yearly feedback round.

The decisions run against a real store with time passed in by hand; the pages run on
the real web endpoint (aiohttp on a free port) driven by an HTTP client, the way a
person's browser — or a mail scanner — opens the links in the emails.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from mentordesk.cli import main
from mentordesk.core import Coordinator
from mentordesk.daemon import Daemon
from mentordesk.flows.after_session import after_sessions_step
from mentordesk.flows.feedback import FeedbackDesk
from mentordesk.flows.feedback_results import survey_results
from mentordesk.flows.survey import survey_reminder_step, survey_round_job
from mentordesk.mailer.compose import Renderer
from mentordesk.reports import render_report
from mentordesk.state.store import Store, StoreWriter, iso
from mentordesk.timers import REGISTRY, load_steps
from mentordesk.tokens import sign, verify
from mentordesk.web import WebApp

from .desk import Desk, mail
from .desk import text_of as desk_text_of
from .followup_state import (
    SECRET,
    State,
    flat,
    html_of,
    mentor,
    open_state,
    request,
    session,
    text_of,
    write_config,
)
from .servers import Dovecot, SmtpSink, free_port
from .test_claims import REQUEST as DESK_REQUEST
from .test_claims import mentor as desk_mentor
from .test_claims import seed as seed_desk

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
ADA, LINUS, GRACE = "ada@example.com", "linus@example.com", "grace@example.org"
JORDAN, SAM = "jordan@example.net", "sam@example.net"
UID = "sess-1@program.test"
LINK = re.compile(
    r"http://127\.0\.0\.1:\d+/(rate|attended|followup)/[A-Za-z0-9_\-.]+(\?[a-z=0-9-]+)?"
)


def links(text: str, kind: str) -> list[str]:
    return [m.group(0) for m in LINK.finditer(text) if m.group(1) == kind]


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


def seed(store: Store, *, session_start: datetime = NOW - timedelta(hours=3)) -> None:
    """Three python mentors; Jordan's request claimed by Ada, met in one held session."""
    with store.transaction():
        for email, name in ((ADA, "Ada Lovelace"), (LINUS, "Linus Park"), (GRACE, "Grace Hopper")):
            store.save_mentor(mentor(email, name, ["python"], NOW))
        store.save_request(
            request(
                1,
                JORDAN,
                "Jordan Lee",
                NOW - timedelta(days=5),
                status="met",
                claimed_by=ADA,
                claimed_at=iso(NOW - timedelta(days=4)),
                invited=[{"email": ADA, "at": iso(NOW - timedelta(days=5))}],
            )
        )
        store.set_meta("next_request", 2)
        store.save_session(session(UID, 1, ADA, JORDAN, session_start))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    yield from open_state(tmp_path)


# --- after the session --------------------------------------------------------------------


def test_after_the_session_both_people_are_asked_once(state: State) -> None:
    store, coordinator = state.store, state.coordinator
    seed(store, session_start=NOW - timedelta(minutes=30))  # ended just now
    assert after_sessions_step(coordinator, NOW + timedelta(hours=1)) == 0  # followup_after 2h
    assert after_sessions_step(coordinator, NOW + timedelta(hours=2)) == 1
    for later in (timedelta(hours=2, minutes=1), timedelta(days=3)):
        assert after_sessions_step(coordinator, NOW + later) == 0
    [to_jordan] = state.sent_to(JORDAN)
    [to_ada] = state.sent_to(ADA)

    assert to_jordan["Subject"] == "[MD-0001] How did it go with Ada?"
    text = text_of(to_jordan)
    rate = links(text, "rate")
    assert [parse_qs(urlsplit(u).query)["score"] for u in rate] == [
        ["1"],
        ["2"],
        ["3"],
        ["4"],
        ["5"],
    ]
    for url in rate:
        claims = verify(SECRET.encode(), token_of(url), purpose="rate", now=NOW)
        assert (claims.person, claims.obj) == (JORDAN, f"session:{UID}")
    [followup] = links(text, "followup")
    assert verify(SECRET.encode(), token_of(followup), purpose="followup", now=NOW).person == JORDAN
    assert "Opening a link on its own records nothing" in flat(text)
    html = html_of(to_jordan)
    assert html.count("/rate/") == 5 and "Excellent" in html

    assert to_ada["Subject"] == "[MD-0001] Did your session with Jordan take place?"
    [yes] = [u for u in links(text_of(to_ada), "attended") if u.endswith("answer=yes")]
    [no_show] = [u for u in links(text_of(to_ada), "attended") if u.endswith("answer=no-show")]
    assert verify(SECRET.encode(), token_of(no_show), purpose="attended", now=NOW).person == ADA
    assert token_of(yes) == token_of(no_show)  # one person, one session; the answer is the form's
    assert JORDAN not in str(to_ada["To"])
    assert [e["event"] for e in store.audit_log(1)].count("after-session asked") == 1
    # Asked: the request's life is over (SPEC §3a: met → closed).
    closed = store.request(1)
    assert closed is not None and closed["status"] == "closed"


def test_cancelled_and_long_past_sessions_are_not_asked_about(state: State) -> None:
    store = state.store
    seed(store)
    with store.transaction():
        store.save_session(
            session(UID, 1, ADA, JORDAN, NOW - timedelta(hours=3), status="cancelled")
        )
        store.save_session(session("old@x", 1, ADA, JORDAN, NOW - timedelta(days=40)))
    assert after_sessions_step(state.coordinator, NOW) == 0
    assert state.sent() == []
    old = store.session("old@x")
    assert old is not None and old["followup_skipped"] and not old.get("followup_asked")
    # Forty days late is past after_session_grace (7 days): written down for the digest,
    # and the request's one step after the session is over all the same.
    [skipped] = [e for e in store.audit_log(1) if e["event"] == "skipped: late"]
    assert (skipped["step"], skipped["uid"], skipped["late"]) == (
        "after-session questions",
        "old@x",
        "39 days",
    )
    closed = store.request(1)
    assert closed is not None and closed["status"] == "closed"


def test_a_little_late_is_still_asked(state: State) -> None:
    seed(state.store, session_start=NOW - timedelta(days=6))
    assert after_sessions_step(state.coordinator, NOW) == 1  # 6 days late: within 7
    assert len(state.sent_to(JORDAN)) == 1 and len(state.sent_to(ADA)) == 1


@pytest.mark.parametrize("status", ["withdrawn", "closed", "open"])
def test_nobody_is_asked_about_a_request_that_ended_or_moved_on(state: State, status: str) -> None:
    """Only a request still met gets the questions (SPEC §3a: no mail about a session
    of a request withdrawn or closed); the session is settled, not asked about again."""
    seed(state.store)
    with state.store.transaction():
        doc = state.store.request(1)
        assert doc is not None
        state.store.save_request({**doc, "status": status})
    assert after_sessions_step(state.coordinator, NOW) == 0
    assert after_sessions_step(state.coordinator, NOW + timedelta(hours=1)) == 0
    assert state.sent() == []
    settled = state.store.session(UID)
    assert settled is not None and settled["followup_skipped"]
    assert (state.store.request(1) or {})["status"] == status


def test_nobody_is_asked_at_an_address_that_bounces(state: State) -> None:
    seed(state.store)
    with state.store.transaction():
        state.store.mark_bounced(JORDAN, reason="550 no such user", now=NOW)
    assert after_sessions_step(state.coordinator, NOW) == 1
    assert state.sent_to(JORDAN) == [] and len(state.sent_to(ADA)) == 1


def test_the_steps_are_registered_with_the_timers() -> None:
    assert load_steps() is REGISTRY
    assert REGISTRY.sweep_steps["after the session"] is after_sessions_step
    assert REGISTRY.sweep_steps["feedback round reminder"] is survey_reminder_step
    job = REGISTRY.calendar_jobs["feedback round"]
    assert job.fn is survey_round_job and job.yearly


def test_a_follow_up_goes_to_other_mentors_only(state: State) -> None:
    store = state.store
    seed(store)
    desk = FeedbackDesk(state.coordinator.claims)
    page = desk.request_followup(UID, JORDAN, "More on testing, please.", NOW)
    assert (page.outcome, page.request_tag) == ("created", "MD-0002")
    follow_up = store.request(2)
    assert follow_up is not None
    assert follow_up["mentee"] == JORDAN and follow_up["follow_up_of"] == 1
    assert follow_up["skills"] == ["python"]
    assert follow_up["details"].endswith("For the follow-up: More on testing, please.")
    assert follow_up["exclude_mentors"] == [ADA]
    invited = {i["email"] for i in follow_up["invited"]}
    assert invited == {LINUS, GRACE}  # through ClaimDesk's matching, Ada left out
    assert not [m for m in state.sent_to(ADA)]
    [ack] = state.sent_to(JORDAN)
    assert ack["Subject"] == "[MD-0002] Finding you another mentor"
    assert "(not Ada Lovelace)" in flat(text_of(ack))
    # Asking again gives the same request back.
    again = desk.request_followup(UID, JORDAN, "", NOW + timedelta(minutes=5))
    assert (again.outcome, again.request_tag) == ("already", "MD-0002")
    assert store.request(3) is None
    # A follow-up of the follow-up leaves out both mentors.
    with store.transaction():
        store.save_session(session("sess-2@x", 2, LINUS, JORDAN, NOW + timedelta(days=1)))
    desk.request_followup("sess-2@x", JORDAN, "", NOW + timedelta(days=2))
    third = store.request(3)
    assert third is not None and third["exclude_mentors"] == [ADA, LINUS]
    assert {i["email"] for i in third["invited"]} == {GRACE}


def test_a_follow_up_is_only_for_the_sessions_mentee(state: State) -> None:
    seed(state.store)
    desk = FeedbackDesk(state.coordinator.claims)
    assert desk.request_followup(UID, ADA, "", NOW).outcome == "not_yours"
    assert desk.request_followup("nope@x", JORDAN, "", NOW).outcome == "unknown"
    assert state.store.request(2) is None


# --- the feedback round ------------------------------------------------------------------------


def seed_program(store: Store) -> None:
    with store.transaction():
        store.save_mentor(mentor(ADA, "Ada Lovelace", ["python"], NOW))
        store.save_mentor(mentor(LINUS, "Linus Park", ["python"], NOW, status="paused"))
        store.save_mentor(
            mentor("gone@example.com", "Ron Resigned", ["go"], NOW, status="resigned")
        )
        store.save_mentor(
            mentor("old@example.com", "Olga Old", ["go"], NOW, term_end="2026-01-01T00:00:00+00:00")
        )
        store.save_mentor(mentor("bounce@example.com", "Bo Unce", ["go"], NOW))
        store.mark_bounced("bounce@example.com", reason="550 no such user", now=NOW)
        store.save_request(request(1, JORDAN, "Jordan Lee", NOW - timedelta(days=100)))
        store.save_request(request(2, SAM, "Sam Doe", NOW - timedelta(days=400)))  # too long ago
        store.save_request(
            request(3, "half@example.net", "Hal F", NOW - timedelta(days=3), status="incomplete")
        )
        store.save_request(
            request(4, ADA, "Ada Lovelace", NOW - timedelta(days=30))
        )  # a mentor too


def test_the_round_asks_every_active_mentor_and_recent_mentee_once_a_year(state: State) -> None:
    seed_program(state.store)
    assert survey_round_job(state.coordinator, NOW) == 3
    assert survey_round_job(state.coordinator, NOW + timedelta(hours=1)) == 0  # same year
    asked = sorted(str(m["To"]) for m in state.sent())
    assert asked == [
        "Ada Lovelace <ada@example.com>",
        "Jordan Lee <jordan@example.net>",
        "Linus Park <linus@example.com>",
    ]
    survey = state.store.survey(2026)
    assert survey is not None
    assert {e: w["role"] for e, w in survey["recipients"].items()} == {
        ADA: "mentor",
        LINUS: "mentor",
        JORDAN: "mentee",
    }
    [to_ada] = state.sent_to(ADA)
    assert to_ada["Subject"] == "[Test Mentors] One question about your year with us"
    text = text_of(to_ada)
    assert "How has mentoring with Test Mentors been for you this year?" in flat(text)
    [to_jordan] = state.sent_to(JORDAN)
    assert "How helpful has Test Mentors been for you this year?" in flat(text_of(to_jordan))
    for url in links(text, "rate"):
        claims = verify(SECRET.encode(), token_of(url), purpose="rate", now=NOW)
        assert (claims.person, claims.obj) == (ADA, "survey:2026")
    assert to_ada["Auto-Submitted"] == "auto-generated"


def test_one_reminder_to_those_who_have_not_answered(state: State) -> None:
    seed_program(state.store)
    survey_round_job(state.coordinator, NOW)
    desk = FeedbackDesk(state.coordinator.claims)
    assert desk.rate("survey:2026", ADA, 5, "Lovely year.", NOW + timedelta(days=1)).outcome == (
        "recorded"
    )
    before = len(state.sent())
    assert survey_reminder_step(state.coordinator, NOW + timedelta(days=6)) == 0  # 7d default
    assert survey_reminder_step(state.coordinator, NOW + timedelta(days=7)) == 2
    assert survey_reminder_step(state.coordinator, NOW + timedelta(days=8)) == 0
    reminders = state.sent(before)
    assert sorted(str(m["To"]).split("<")[1].rstrip(">") for m in reminders) == [JORDAN, LINUS]
    assert all("gentle reminder" in str(m["Subject"]) for m in reminders)

    results = survey_results(state.store, 2026)
    assert results is not None
    mentors, mentees = results.groups
    assert (mentors.asked, mentors.answered, mentors.average) == (2, 1, 5.0)
    assert mentors.comments == ((5, "Lovely year."),)
    assert (mentees.asked, mentees.answered, mentees.average) == (1, 0, None)


# --- the pages ---------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Site:
    """The real web endpoint over a store, and a clock the test moves."""

    def __init__(self, root: Path) -> None:
        port = free_port()
        self.config = write_config(
            root, program={"base_url": f"http://127.0.0.1:{port}"}, web={"port": port}
        )
        self.clock = Clock(NOW)
        self.writer = StoreWriter(lambda: Store(self.config.state.path, fsync=False))
        self.coordinator: Coordinator | None = None
        self.web: WebApp | None = None

    async def start(self) -> None:
        await self.writer.start()
        store = self.store
        self.coordinator = await self.writer.call(Coordinator, self.config, store, Renderer())
        coordinator = self.coordinator
        self.web = WebApp(self.config, self.writer, lambda: coordinator.claims, self.clock)
        await self.web.start()

    @property
    def store(self) -> Store:
        assert self.writer.store is not None
        return self.writer.store

    @property
    def desk(self) -> FeedbackDesk:
        assert self.coordinator is not None
        return FeedbackDesk(self.coordinator.claims)

    async def stop(self) -> None:
        if self.web is not None:
            await self.web.stop()
        await self.writer.close()

    def link(self, purpose: str, person: str, obj: str, query: str = "") -> str:
        return self.desk.link(purpose, person, obj, self.clock.now, query)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    site = Site(tmp_path)
    await site.start()
    await site.writer.call(seed, site.store)
    try:
        yield site
    finally:
        await site.stop()


async def test_opening_a_rating_link_records_nothing(
    site: Site, http: aiohttp.ClientSession
) -> None:
    url = site.link("rate", JORDAN, f"session:{UID}", "score=4")
    for _ in range(3):  # a mail scanner, a link preview, the person
        async with http.get(url) as response:
            assert response.status == 200
            assert response.headers["Referrer-Policy"] == "no-referrer"
            page = await response.text()
    assert "How was your session with Ada Lovelace?" in page
    assert '<form method="post">' in page
    assert re.search(r'value="4"\s+checked', page)
    assert len(re.findall(r"checked", page)) == 1
    assert ">Send</button>" in page
    assert "Nothing is recorded until you press Send." in page
    assert await site.writer.call(site.store.feedback, f"session:{UID}", JORDAN) is None
    assert not [e for e in await site.writer.call(site.store.audit_log) if "feedback" in e["event"]]


async def test_posting_records_once_and_a_second_post_updates(
    site: Site, http: aiohttp.ClientSession
) -> None:
    url = site.link("rate", JORDAN, f"session:{UID}", "score=4")
    async with http.post(url, data={"score": "4", "comment": "Really <b>useful</b>."}) as response:
        assert response.status == 200
        page = await response.text()
    assert "Thank you for telling us." in page
    assert "4 – Very good" in page
    assert "/followup/" in page  # a follow-up is one click away from the thank-you
    site.clock.now += timedelta(minutes=10)
    async with http.post(url, data={"score": "2", "comment": "On reflection, so-so."}) as response:
        assert response.status == 200
        assert "Answer updated" in await response.text()
    answers = await site.writer.call(site.store.feedback_all, "session:")
    assert len(answers) == 1
    [answer] = answers
    assert (answer["score"], answer["comment"], answer["revisions"]) == (
        2,
        "On reflection, so-so.",
        2,
    )
    assert (answer["mentor"], answer["request"], answer["role"]) == (ADA, 1, "mentee")
    assert answer["created"] == iso(NOW) and answer["updated"] == iso(NOW + timedelta(minutes=10))
    # The form shows the stored answer when opened again (without a score in the link).
    async with http.get(url.split("?")[0]) as response:
        page = await response.text()
    assert re.search(r'value="2"\s+checked', page) and "On reflection, so-so." in page


async def test_a_post_without_a_rating_records_nothing(
    site: Site, http: aiohttp.ClientSession
) -> None:
    url = site.link("rate", JORDAN, f"session:{UID}")
    for data in ({"comment": "no score"}, {"score": "7"}, {"score": "five"}):
        async with http.post(url, data=data) as response:
            assert response.status == 400
            assert "Please choose a rating" in await response.text()
    assert await site.writer.call(site.store.feedback_all) == []


async def test_bad_links_are_refused_with_a_clear_page(
    site: Site, http: aiohttp.ClientSession
) -> None:
    good = site.link("rate", JORDAN, f"session:{UID}", "score=5")
    token = token_of(good)
    base = good.split("/rate/")[0]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    expired = sign(
        SECRET.encode(),
        purpose="rate",
        person=JORDAN,
        obj=f"session:{UID}",
        expires=NOW - timedelta(seconds=1),
    )
    someone_elses = site.link("rate", ADA, f"session:{UID}", "score=5")  # Ada is the mentor
    not_asked = site.link("rate", SAM, "survey:2026", "score=5")
    claim_token = site.link("claim", JORDAN, "1").rsplit("/", 1)[1]
    cases = [
        (f"{base}/rate/{tampered}?score=5", 403, "This link does not work."),
        (f"{base}/rate/{expired}?score=5", 410, "This link has expired."),
        (f"{base}/rate/{claim_token}?score=5", 403, "This link does not work."),
        (someone_elses, 403, "This link was made for someone else."),
        (not_asked, 404, "We cannot find what this link is about."),
    ]

    async def check(cases: list[tuple[str, int, str]]) -> None:
        for url, status, words in cases:
            for method in ("GET", "POST"):
                async with http.request(method, url, data={"score": "5"}) as response:
                    assert response.status == status, (url, method)
                    page = await response.text()
                    assert words in page, (url, method)
                    assert "Traceback" not in page

    await check(cases)
    # Once the round has gone out, Sam (not asked: no request this year) is still refused.
    assert site.coordinator is not None
    await site.writer.call(survey_round_job, site.coordinator, NOW)
    await check([(not_asked, 403, "This link was made for someone else.")])
    assert await site.writer.call(site.store.feedback_all) == []


async def test_did_it_take_place_records_a_no_show_for_the_coordinator(
    site: Site, http: aiohttp.ClientSession
) -> None:
    url = site.link("attended", ADA, f"session:{UID}", "answer=no-show")
    async with http.get(url) as response:
        assert response.status == 200
        page = await response.text()
    assert "Did your session with Jordan Lee take place?" in page
    assert re.search(r'value="no-show"\s+checked', page)
    session_now = await site.writer.call(site.store.session, UID)
    assert session_now is not None and "attendance" not in session_now

    async with http.post(url, data={"answer": "no-show"}) as response:
        assert response.status == 200
        assert "Jordan Lee did not come" in await response.text()
    recorded = await site.writer.call(site.store.session, UID)
    assert recorded is not None and recorded["status"] == "no-show"
    assert recorded["attendance"]["answer"] == "no-show" and recorded["attendance"]["by"] == ADA
    # Nothing more happens about that session: the request is closed.
    closed = await site.writer.call(site.store.request, 1)
    assert closed is not None and closed["status"] == "closed"
    events = [e["event"] for e in await site.writer.call(site.store.audit_log, 1)]
    assert events.count("no-show") == 1
    # The mentee cannot answer for the mentor.
    async with http.post(
        site.link("attended", JORDAN, f"session:{UID}"), data={"answer": "yes"}
    ) as response:
        assert response.status == 403
    # The mentor can correct a wrong click.
    async with http.post(url, data={"answer": "yes"}) as response:
        assert response.status == 200
    corrected = await site.writer.call(site.store.session, UID)
    assert corrected is not None and corrected["status"] == "held"


async def test_the_follow_up_page_asks_before_it_re_pairs(
    site: Site, http: aiohttp.ClientSession
) -> None:
    url = site.link("followup", JORDAN, f"session:{UID}")
    async with http.get(url) as response:
        assert response.status == 200
        page = await response.text()
    assert "Would you like a follow-up session with another mentor?" in page
    assert "not to Ada Lovelace" in page
    assert await site.writer.call(site.store.request, 2) is None
    async with http.post(url, data={"comment": "Testing, please"}) as response:
        assert response.status == 200
        assert "MD-0002" in await response.text()
    async with http.post(url, data={}) as response:
        assert response.status == 200
        assert "You asked for a follow-up already." in await response.text()
    follow_up = await site.writer.call(site.store.request, 2)
    assert follow_up is not None and ADA not in {i["email"] for i in follow_up["invited"]}
    assert await site.writer.call(site.store.request, 3) is None


# --- the report --------------------------------------------------------------------------------


def test_report_feedback_shows_rounds_comments_and_no_shows(
    state: State, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(state.store)
    seed_program(state.store)
    survey_round_job(state.coordinator, NOW)
    desk = FeedbackDesk(state.coordinator.claims)
    desk.rate("survey:2026", ADA, 5, "Lovely\nyear.", NOW)
    desk.rate("survey:2026", JORDAN, 3, "", NOW)
    desk.rate(f"session:{UID}", JORDAN, 2, "Too rushed.", NOW)
    desk.record_attendance(UID, ADA, "no-show", NOW)
    report = render_report(state.store, state.config, NOW + timedelta(days=1), "feedback")
    lines = report.splitlines()
    assert lines[0] == "Test Mentors: feedback, 2026-03-11 11:00 (America/New_York)"
    assert "Feedback rounds (answered/asked, average of 5)" in lines
    [row] = [line for line in lines if line.startswith("2026 ")]
    assert row.split() == ["2026", "2026-03-10", "-", "1/3", "5.0", "1/1", "3.0"]
    assert "  Mentors: 1 of 3 answered (33%), average 5.0 / 5   1:0  2:0  3:0  4:0  5:1" in lines
    assert "    [5] Lovely year." in lines
    assert "  asked 0; 0 took place, 1 no-show, 0 follow-ups" in lines
    assert "    [2] Too rushed." in lines
    [no_show] = [line for line in lines if line.startswith("MD-0001")]
    assert no_show.split() == ["MD-0001", "2026-03-10", "08:00", JORDAN, ADA]

    # The same through the command line, which reads the state beside the running writer.
    monkeypatch.setenv("MD_TEST_SECRET", SECRET)
    assert main(["report", "feedback", "--config", str(state.config.source)]) == 0
    assert "    [5] Lovely year." in capsys.readouterr().out.splitlines()


# --- one survey answer, end to end -------------------------------------------------------------


async def test_a_survey_answer_end_to_end(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, http: aiohttp.ClientSession
) -> None:
    """A mentee's request comes in through IMAP; the yearly round goes out over SMTP; the
    mentee answers on the web page; the reminder a week later goes to the mentor only."""
    desk = Desk(tmp_path, dovecot, smtp_sink)
    clock = Clock(datetime.now(UTC))
    seed_desk(desk, [desk_mentor(ADA, "Ada Lovelace", ["python"])])
    daemon = await desk.start(Daemon(desk.config, clock=clock))
    try:
        desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", DESK_REQUEST))
        await desk.replies_to(JORDAN, 1)  # the acknowledgement
        assert daemon.timers is not None
        assert await daemon.timers.run_job("feedback round") == 2
        [survey] = [m for m in await desk.replies_to(JORDAN, 2) if "One question" in m.subject]
        text = desk_text_of(survey)
        assert "How helpful has Test Mentors been for you this year?" in flat(text)
        four = next(u for u in links(text, "rate") if u.endswith("score=4"))

        async with http.get(four) as response:  # what a mail scanner would do, too
            assert response.status == 200
            assert re.search(r'value="4"\s+checked', await response.text())
        async with desk.store() as store:
            assert store.feedback_all("survey:") == []
        async with http.post(four, data={"score": "4", "comment": "Thank you all!"}) as response:
            assert response.status == 200
            assert "Thank you for telling us." in await response.text()
        year = clock.now.astimezone(ZoneInfo("America/New_York")).year
        answer = await desk.until(lambda s: s.feedback(f"survey:{year}", JORDAN))
        assert (answer["score"], answer["comment"], answer["role"]) == (
            4,
            "Thank you all!",
            "mentee",
        )

        # A second run of the round the same year sends nothing; a week on, one reminder
        # goes to Ada, who has not answered, and none to Jordan.
        assert await daemon.timers.run_job("feedback round") == 0
        clock.now += timedelta(days=7, minutes=1)
        done = await daemon.timers.sweep()
        assert done["feedback round reminder"] == 1
        reminder = await desk.mail_to(ADA, "A gentle reminder")
        assert "How has mentoring with Test Mentors been for you this year?" in flat(
            desk_text_of(reminder)
        )
        assert not [m for m in desk.sink.messages_to(JORDAN) if "reminder" in m.subject]
    finally:
        await desk.stop()
