"""The ladder for unclaimed requests (flow 7), by time travel: an injected clock, the real
store, coordinator and scheduler, and sweeps called by hand.

Defaults: bump after 3 days, the mentee hears after 3 days, widen after 5, escalate
after 10; two mentors invited first and two more when widening.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.config import load_config
from mentordesk.flows.escalation import assign, parse_assign_obj
from mentordesk.flows.ladder import RUNGS, Ladder, has_pending_rung, ladder_step, plan_climb
from mentordesk.flows.terms import terms_step
from mentordesk.state.store import iso
from mentordesk.timers import Registry
from mentordesk.tokens import verify

from .desk import mail
from .timetravel import BOSS, COORDINATOR, SECRET, T0, Harness, html_of, mentor_doc, text_of

JORDAN = "jordan@example.net"
REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: America/New_York\n"
    "Availability: Tue 12:00-14:00\n"
    "Details: I'm leaving the Army in March and learning Python; I'd love a review of my\n"
    "first project and advice on what to build next.\n"
)
TEAM = [
    mentor_doc("ada@example.com", "Ada Lovelace", ["python", "career advice"]),
    mentor_doc("bea@example.com", "Bea Brown", ["python"]),
    mentor_doc("cyd@example.com", "Cyd Charisse", ["python"]),
    mentor_doc("dan@example.com", "Dan Dare", ["python"]),
    mentor_doc("eli@example.com", "Eli Evans", ["python"]),
    mentor_doc("js@example.com", "Jo Script", ["javascript"]),
]
FIRST = ["ada@example.com", "bea@example.com"]
WIDER = ["cyd@example.com", "dan@example.com"]


def ladder_registry() -> Registry:
    """Only this issue's steps: the tests count every email."""
    registry = Registry()
    registry.register_sweep_step("ladder", ladder_step)
    registry.register_sweep_step("terms", terms_step)
    return registry


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(tmp_path, ladder_registry()).open()
    await harness.seed(*TEAM)
    yield harness
    await harness.close()


async def open_request(desk: Harness) -> None:
    await desk.receive(
        mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST, message_id="<r1@x.test>")
    )
    request = await desk.request(1)
    assert request["status"] == "open"
    assert [i["email"] for i in request["invited"]] == FIRST


async def ladder_kinds(desk: Harness) -> list[tuple[str, str]]:
    kinds = ("request_bump", "request_update", "claim_invite", "request_escalated")
    return [(kind, to) for kind, to in await desk.kinds() if kind in kinds]


# --- the decision --------------------------------------------------------------------------


def test_plan_climb_is_a_pure_decision(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path), environ={"MD_TEST_SECRET": SECRET})
    ladder = Ladder.from_config(config.timers)
    assert [rung for rung, _ in ladder.rungs] == list(RUNGS)
    assert ladder.grace == timedelta(days=2)
    opened = {"status": "open", "opened": iso(T0)}
    day = timedelta(days=1)
    assert not plan_climb(opened, ladder, T0 + 3 * day - timedelta(seconds=1))
    # Rungs with the same delay are one step: the bump and the word to the mentee.
    assert plan_climb(opened, ladder, T0 + 3 * day).do == ("bump", "mentee_update")
    done = {**opened, "ladder": {"bump": iso(T0), "mentee_update": iso(T0)}}
    assert plan_climb(done, ladder, T0 + 5 * day).do == ("widen",)
    assert plan_climb(done, ladder, T0 + 10 * day).do == ("escalate",)
    for status in ("incomplete", "claimed", "booked", "withdrawn", "expired", "met", "closed"):
        assert not plan_climb({**opened, "status": status}, ladder, T0 + 30 * day)
    assert not plan_climb({"status": "open"}, ladder, T0 + 30 * day)  # never opened
    assert not plan_climb({"status": "open", "opened": "garbage"}, ladder, T0 + 30 * day)
    # A release starts the wait again.
    reopened = {**opened, "reopened": iso(T0 + 8 * day)}
    assert not plan_climb(reopened, ladder, T0 + 10 * day)
    assert plan_climb(reopened, ladder, T0 + 11 * day).do == ("bump", "mentee_update")


def test_after_an_outage_only_the_most_recent_step_and_only_within_the_grace(
    tmp_path: Path,
) -> None:
    """SPEC §3a: never several ladder steps at once. Down over days 2–12, a request
    gets the escalation alone (due day 10, two days late: within ladder_grace); the
    bump, the word to the mentee and the widening are skipped, each with its moment."""
    config = load_config(_config(tmp_path), environ={"MD_TEST_SECRET": SECRET})
    ladder = Ladder.from_config(config.timers)
    opened = {"status": "open", "opened": iso(T0)}
    day = timedelta(days=1)
    plan = plan_climb(opened, ladder, T0 + 12 * day)
    assert plan.do == ("escalate",) and plan.due == T0 + 10 * day
    assert plan.skip == (
        ("bump", T0 + 3 * day),
        ("mentee_update", T0 + 3 * day),
        ("widen", T0 + 5 * day),
    )
    # Back a minute after the grace: nothing is sent; all four are skipped.
    late = plan_climb(opened, ladder, T0 + 12 * day + timedelta(minutes=1))
    assert late.do == () and [rung for rung, _ in late.skip] == list(RUNGS)
    # Down over days 2–6: the widening (day 5) goes out, the day-3 step is passed over.
    plan = plan_climb(opened, ladder, T0 + 6 * day)
    assert plan.do == ("widen",) and [rung for rung, _ in plan.skip] == ["bump", "mentee_update"]
    # A skipped rung is settled like a done one: it never comes back.
    skipped = {**opened, "ladder_skipped": {"bump": iso(T0), "mentee_update": iso(T0)}}
    assert plan_climb(skipped, ladder, T0 + 4 * day).do == ()
    assert not plan_climb(skipped, ladder, T0 + 4 * day)


def test_the_sweeps_fast_test_agrees_with_the_decision(tmp_path: Path) -> None:
    """The sweep picks requests with a string comparison; it must pick exactly those
    ``plan_climb`` has something for."""
    config = load_config(_config(tmp_path), environ={"MD_TEST_SECRET": SECRET})
    ladder = Ladder.from_config(config.timers)
    day = timedelta(days=1)
    docs: list[dict[str, Any]] = [
        {"status": status, "opened": iso(T0), **extra}
        for status in ("open", "claimed", "incomplete")
        for extra in (
            {},
            {"reopened": iso(T0 + 4 * day)},
            {"ladder": {"bump": iso(T0), "mentee_update": iso(T0)}},
            {"ladder": {"bump": iso(T0)}, "ladder_skipped": {"mentee_update": iso(T0)}},
            {"ladder_skipped": dict.fromkeys(RUNGS, iso(T0))},
        )
    ] + [{"status": "open"}, {"status": "open", "opened": None}]
    for hours in range(0, 24 * 16, 7):
        now = T0 + timedelta(hours=hours)
        test = has_pending_rung(ladder, now)
        for doc in docs:
            assert test(doc) == bool(plan_climb(doc, ladder, now)), (doc, hours)


def test_rungs_follow_the_configured_delays(tmp_path: Path) -> None:
    path = _config(tmp_path, timers='escalate_after = "2d"\nmentee_update_after = "1d"')
    config = load_config(path, environ={"MD_TEST_SECRET": SECRET})
    ladder = Ladder.from_config(config.timers)
    assert [rung for rung, _ in ladder.rungs] == ["mentee_update", "escalate", "bump", "widen"]
    opened = {"status": "open", "opened": iso(T0)}
    assert plan_climb(opened, ladder, T0 + timedelta(days=1)).do == ("mentee_update",)
    plan = plan_climb(opened, ladder, T0 + timedelta(days=2))
    assert plan.do == ("escalate",) and [rung for rung, _ in plan.skip] == ["mentee_update"]


def _config(root: Path, timers: str = "") -> Path:
    path = root / "config.toml"
    path.write_text(
        '[program]\nname = "T"\naddress = "m@p.test"\ncoordinator = "c@p.test"\n'
        'secret_env = "MD_TEST_SECRET"\n'
        f"[timers]\n{timers}\n",
        "utf-8",
    )
    return path


# --- the climb -----------------------------------------------------------------------------


async def test_each_rung_happens_once_in_order(desk: Harness) -> None:
    await open_request(desk)
    assert await desk.sweep(days=1) == {"ladder": 0, "terms": 0}
    assert await ladder_kinds(desk) == [("claim_invite", m) for m in FIRST]

    # Day 3: both invited mentors are reminded and the mentee hears from us.
    assert (await desk.sweep(days=2))["ladder"] == 3
    kinds = await ladder_kinds(desk)
    assert kinds[2:] == [
        ("request_bump", "ada@example.com"),
        ("request_bump", "bea@example.com"),
        ("request_update", JORDAN),
    ]
    for hours in (1, 24):  # nothing twice
        assert (await desk.sweep(hours=hours))["ladder"] == 0
    # Day 5: two more mentors, never the first two again.
    desk.clock.now = T0 + timedelta(days=5)
    assert (await desk.sweep())["ladder"] == 2
    assert (await ladder_kinds(desk))[5:] == [("claim_invite", m) for m in WIDER]
    assert (await desk.sweep(hours=6))["ladder"] == 0
    # Day 10: the escalation contact gets it.
    desk.clock.now = T0 + timedelta(days=10)
    assert (await desk.sweep())["ladder"] == 1
    assert (await ladder_kinds(desk))[7:] == [("request_escalated", BOSS)]
    for days in (1, 30):
        assert (await desk.sweep(days=days))["ladder"] == 0
    assert len(await ladder_kinds(desk)) == 8

    request = await desk.request(1)
    assert request["ladder"] == {
        "bump": iso(T0 + timedelta(days=3)),
        "mentee_update": iso(T0 + timedelta(days=3)),
        "widen": iso(T0 + timedelta(days=5)),
        "escalate": iso(T0 + timedelta(days=10)),
    }
    assert [i["email"] for i in request["invited"]] == FIRST + WIDER
    events = [e["event"] for e in await desk.call(desk.store.audit_log, 1)]
    for rung in RUNGS:
        assert events.count(f"ladder {rung}") == 1


async def test_the_bump_is_the_same_link_in_the_same_thread(desk: Harness) -> None:
    await open_request(desk)
    [invite] = await desk.sent("claim_invite", "ada@example.com")
    await desk.sweep(days=3)
    [bump] = await desk.sent("request_bump", "ada@example.com")
    assert bump["Subject"] == f"Re: {invite['Subject']}"
    assert bump["In-Reply-To"] == invite["Message-ID"]
    assert invite["Message-ID"] in bump["References"]
    assert bump["Auto-Submitted"] == "auto-generated"  # we follow up, we do not answer
    text = text_of(bump)
    assert "still waiting for a mentor" in text and "3 days" in text
    assert JORDAN not in text and JORDAN not in html_of(bump)
    [url] = [w for w in text.split() if "/claim/" in w]
    claims = verify(SECRET.encode(), url.rsplit("/", 1)[1], purpose="claim", now=desk.clock())
    assert (claims.person, claims.obj) == ("ada@example.com", "1")
    # Replying "claim" to the reminder takes the request, like the invitation.
    await desk.receive(
        mail(
            "Ada Lovelace <ada@example.com>",
            f"Re: {bump['Subject']}",
            "claim",
            in_reply_to=bump["Message-ID"],
        )
    )
    request = await desk.request(1)
    assert request["status"] == "booked" and request["claimed_by"] == "ada@example.com"


async def test_the_mentee_update_answers_in_their_thread(desk: Harness) -> None:
    await open_request(desk)
    await desk.sweep(days=3)
    [ack] = await desk.sent("request_ack", JORDAN)
    [update] = await desk.sent("request_update", JORDAN)
    assert update["Subject"] == "Re: [MD-0001] Mentor request" == ack["Subject"]
    assert update["In-Reply-To"] == "<r1@x.test>"
    text = " ".join(text_of(update).split())
    assert "no mentor has taken it yet" in text
    assert "2 mentors who know python have it, and we have reminded them." in text
    assert "If they cannot make it, we will ask more mentors." in text
    assert "If nobody has taken it by Thursday 27 March" in text
    # The mentee's answer lands on the request, as any reply in that thread does.
    await desk.receive(
        mail(
            "Jordan Lee <jordan@example.net>",
            f"Re: {update['Subject']}",
            "Also interested in Django.",
            in_reply_to=update["Message-ID"],
        )
    )
    assert (await desk.request(1))["notes"][0]["text"] == "Also interested in Django."


async def test_the_escalation_has_history_and_assign_links(desk: Harness) -> None:
    await open_request(desk)
    await desk.call(desk.coordinator.claims.claim, 1, "bea@example.com", desk.clock(), via="web")
    desk.clock.advance(hours=2)
    await desk.call(desk.coordinator.claims.release, 1, "bea@example.com", desk.clock())
    # Released: invited again are Ada and Cyd; the wait starts again.
    desk.clock.now = T0 + timedelta(days=3)
    assert (await desk.sweep())["ladder"] == 0
    for days in (3, 5, 10):  # the daemon runs through the ladder, counted from the release
        desk.clock.now = T0 + timedelta(days=days, hours=2)
        assert (await desk.sweep())["ladder"]
    [escalation] = await desk.sent("request_escalated", BOSS)
    assert escalation["Subject"] == (
        "[MD-0001] Nobody has taken it in 10 days – can you find Jordan a mentor?"
    )
    text = text_of(escalation)
    assert f"Jordan Lee <{JORDAN}>" in text  # the chain of command may write to them
    history = text.split("What happened so far", 1)[1]
    for line in (
        "Mon 17 Mar 10:00  Received from jordan@example.net",
        "Mon 17 Mar 10:00  Invited Ada Lovelace <ada@example.com>, Bea Brown <bea@example.com>",
        "Mon 17 Mar 10:00  Taken by Bea Brown <bea@example.com> (via web)",
        "Mon 17 Mar 12:00  Given back by Bea Brown <bea@example.com>",
        "Mon 17 Mar 12:00  Invited Ada Lovelace <ada@example.com>, Cyd Charisse <cyd@example.com>",
        "Reminded Ada Lovelace <ada@example.com>, Cyd Charisse <cyd@example.com>",
        "Told the mentee we are still on it",
        "Invited Dan Dare <dan@example.com>, Eli Evans <eli@example.com>",
        "Widened the search",
    ):
        assert line in history, line
    # Candidates: everyone who fits but Bea, who gave it back; each with a link for Boss.
    urls = [w for w in text.split() if "/assign/" in w]
    targets = []
    for url in urls:
        claims = verify(SECRET.encode(), url.rsplit("/", 1)[1], purpose="assign", now=desk.clock())
        assert claims.person == BOSS
        targets.append(parse_assign_obj(claims.obj))
    assert targets == [
        (1, "ada@example.com"),
        (1, "cyd@example.com"),
        (1, "dan@example.com"),
        (1, "eli@example.com"),
    ]
    assert "Assign to Ada:" in text and "asked Mon 17 Mar 12:00" in text
    assert html_of(escalation).count("/assign/") == 4


async def test_escalation_goes_to_the_coordinator_without_contacts(tmp_path: Path) -> None:
    desk = await Harness(tmp_path, ladder_registry(), program={"escalation": []}).open()
    try:
        await desk.seed(*TEAM)
        await open_request(desk)
        await desk.sweep(days=10)
        assert [to for kind, to in await desk.kinds() if kind == "request_escalated"] == [
            COORDINATOR
        ]
    finally:
        await desk.close()


async def test_a_claim_stops_the_ladder(desk: Harness) -> None:
    await open_request(desk)
    await desk.sweep(days=3)
    result = await desk.call(
        desk.coordinator.claims.claim, 1, "bea@example.com", desk.clock(), via="web"
    )
    assert result.outcome == "claimed"
    before = await ladder_kinds(desk)
    for days in (2, 5, 30):
        assert (await desk.sweep(days=days))["ladder"] == 0
    assert await ladder_kinds(desk) == before
    assert set((await desk.request(1))["ladder"]) == {"bump", "mentee_update"}


async def test_a_withdrawal_stops_the_ladder(desk: Harness) -> None:
    await open_request(desk)
    desk.clock.advance(days=1)
    [ack] = await desk.sent("request_ack", JORDAN)
    await desk.receive(
        mail(
            "Jordan Lee <jordan@example.net>",
            f"Re: {ack['Subject']}",
            "withdraw",
            in_reply_to=ack["Message-ID"],
        )
    )
    for days in (2, 5, 30):
        assert (await desk.sweep(days=days))["ladder"] == 0
    assert await ladder_kinds(desk) == [("claim_invite", m) for m in FIRST]
    assert "ladder" not in await desk.request(1)


async def test_a_restart_mid_ladder_loses_and_repeats_nothing(desk: Harness) -> None:
    await open_request(desk)
    await desk.sweep(days=3)
    assert len(await ladder_kinds(desk)) == 5
    await desk.restart()  # a new store from disk, a new coordinator and scheduler
    assert (await desk.sweep(minutes=1))["ladder"] == 0
    desk.clock.now = T0 + timedelta(days=5)
    await desk.restart()
    assert (await desk.sweep())["ladder"] == 2  # widening was due over the restart
    await desk.restart()
    assert (await desk.sweep(hours=1))["ladder"] == 0
    desk.clock.now = T0 + timedelta(days=12)  # down through the escalation day
    await desk.restart()
    assert (await desk.sweep())["ladder"] == 1
    await desk.restart()
    assert (await desk.sweep(days=1))["ladder"] == 0
    kinds = [kind for kind, _ in await ladder_kinds(desk)]
    assert kinds.count("request_bump") == 2
    assert kinds.count("request_update") == 1
    assert kinds.count("claim_invite") == 4
    assert kinds.count("request_escalated") == 1


async def test_a_failing_request_holds_up_nothing_and_is_retried_whole(
    desk: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_request(desk)
    await desk.receive(
        mail(
            "Sam Sun <sam@example.net>",
            "Mentor request",
            REQUEST.replace("Jordan Lee", "Sam Sun"),
            message_id="<r2@x.test>",
        )
    )
    postman = desk.coordinator.postman
    real_send = postman.send

    def flaky(template: str, **kwargs: Any) -> str | None:
        # The second reminder for request 1 fails: the first must not go out alone.
        if template == "request_bump" and kwargs["request"] == 1 and kwargs["to"] == FIRST[1]:
            raise RuntimeError("template exploded")
        return real_send(template, **kwargs)

    monkeypatch.setattr(postman, "send", flaky)
    assert (await desk.sweep(days=3))["ladder"] == 3  # request 2's three emails
    assert "ladder" not in await desk.request(1)
    assert [to for kind, to in await desk.kinds() if kind == "request_bump"] == FIRST
    monkeypatch.undo()
    assert (await desk.sweep(minutes=1))["ladder"] == 3  # request 1, whole, once
    assert (await desk.sweep(minutes=1))["ladder"] == 0
    bumps = await desk.sent("request_bump")
    assert sorted((m["To"].addresses[0].addr_spec, m["Subject"][5:12]) for m in bumps) == [
        ("ada@example.com", "MD-0001"),
        ("ada@example.com", "MD-0002"),
        ("bea@example.com", "MD-0001"),
        ("bea@example.com", "MD-0002"),
    ]


async def test_nobody_new_to_widen_to_is_no_second_no_match_notice(desk: Harness) -> None:
    await desk.call(
        lambda: [
            desk.store.save_mentor({**m, "status": "paused"})
            for m in TEAM
            if m["email"] not in FIRST
        ]
    )
    await open_request(desk)
    await desk.sweep(days=5)
    request = await desk.request(1)
    assert "widen" in request["ladder"] and len(request["invited"]) == 2
    assert not [k for k, _ in await desk.kinds() if k == "coordinator_no_match"]


async def test_only_mentors_who_could_still_take_it_are_reminded(desk: Harness) -> None:
    await open_request(desk)
    ada = await desk.call(desk.store.mentor, "ada@example.com")
    await desk.call(desk.store.save_mentor, {**ada, "status": "paused"})
    await desk.sweep(days=3)
    assert [to for kind, to in await desk.kinds() if kind == "request_bump"] == ["bea@example.com"]
    entry = [e for e in await desk.call(desk.store.audit_log, 1) if e["event"] == "ladder bump"]
    assert entry[0]["mentors"] == ["bea@example.com"]


# --- assigning ---------------------------------------------------------------------------------


async def test_assign_is_a_claim_that_introduces_both(desk: Harness) -> None:
    await open_request(desk)
    for days in (3, 5, 10):
        desk.clock.now = T0 + timedelta(days=days)
        await desk.sweep()
    result = await desk.call(
        assign, desk.coordinator.claims, 1, "eli@example.com", BOSS, desk.clock()
    )
    assert result.outcome == "claimed"
    request = await desk.request(1)
    assert request["status"] == "booked" and request["claimed_by"] == "eli@example.com"
    assert {"email": "eli@example.com", "at": iso(desk.clock()), "via": "assign"} in request[
        "invited"
    ]
    [intro] = await desk.sent("intro_mentor", "eli@example.com")
    assert JORDAN in text_of(intro)
    assert await desk.sent("intro_mentee", JORDAN)
    events = [
        (e["event"], e.get("via"), e.get("by")) for e in await desk.call(desk.store.audit_log, 1)
    ]
    assert ("claimed", "assign", None) in events and ("assigned", None, BOSS) in events
    # A second assignment finds it taken and changes nothing but the log.
    again = await desk.call(
        assign, desk.coordinator.claims, 1, "dan@example.com", BOSS, desk.clock()
    )
    assert again.outcome == "taken" and again.holder_name == "Eli Evans"
    request = await desk.request(1)
    assert request["claimed_by"] == "eli@example.com"
    assert "dan@example.com" in [i["email"] for i in request["invited"]]  # widened, not assigned
    refused = [
        e for e in await desk.call(desk.store.audit_log, 1) if e["event"] == "assign refused"
    ]
    assert [(e["mentor"], e["outcome"]) for e in refused] == [("dan@example.com", "taken")]


async def test_assigning_a_full_mentor_changes_nothing(desk: Harness) -> None:
    await open_request(desk)
    eli = await desk.call(desk.store.mentor, "eli@example.com")
    await desk.call(desk.store.save_mentor, {**eli, "capacity": 1})
    await desk.receive(
        mail(
            "Sam Sun <sam@example.net>",
            "Mentor request",
            REQUEST.replace("Jordan Lee", "Sam Sun"),
        )
    )
    assert (
        await desk.call(assign, desk.coordinator.claims, 2, "eli@example.com", BOSS, desk.clock())
    ).outcome == "claimed"
    before = await desk.request(1)
    result = await desk.call(
        assign, desk.coordinator.claims, 1, "eli@example.com", BOSS, desk.clock()
    )
    assert result.outcome == "full"
    assert await desk.request(1) == before


async def test_the_mail_gate_decides_who_is_not_bumped(desk: Harness) -> None:
    """No bounce check of the ladder's own: the gate refuses the bounced address, and
    the ladder counts and records only the reminders that went out."""
    await open_request(desk)
    await desk.call(
        lambda: desk.store.mark_bounced("bea@example.com", reason="550 no such user", now=T0)
    )
    assert (await desk.sweep(days=3))["ladder"] == 2  # Ada's reminder and Jordan's update
    assert [to for kind, to in await desk.kinds() if kind == "request_bump"] == ["ada@example.com"]
    [entry] = [e for e in await desk.call(desk.store.audit_log, 1) if e["event"] == "ladder bump"]
    assert entry["mentors"] == ["ada@example.com"]
    [bump] = await desk.sent("request_bump")
    assert "You have taken 0 of your 4 sessions this month." in " ".join(text_of(bump).split())
