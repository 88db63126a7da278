"""Flows 3 and 4 end to end: matching, claim emails, the web endpoint, release, withdraw.

Real Dovecot in, real SMTP out, the daemon's own aiohttp server in between, and an HTTP
client (aiohttp) clicking the links found in the received emails.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from mentordesk.state.store import Store, iso
from mentordesk.tokens import sign

from .desk import COORDINATOR, SECRET, Desk, html_of, mail, text_of
from .forms import press
from .servers import ReceivedMessage

JORDAN = "jordan@example.net"
REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: America/New_York\n"
    "Availability: Tue 12:00-14:00\n"
    "Details: I'm leaving the Army in March and learning Python; I'd love a review of my\n"
    "first project and advice on what to build next.\n"
)
LINK = re.compile(r"http://127\.0\.0\.1:\d+/(claim|pause|release)/[A-Za-z0-9_\-.]+")


def mentor(email: str, name: str, skills: list[str], **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "email": email,
        "name": name,
        "skills": skills,
        "timezone": "Europe/Berlin",
        "timezone_text": "Berlin",
        "availability": [[1, 18 * 60, 20 * 60]],
        "capacity": 2,
        "about": f"{name} has mentored for years.",
        "status": "active",
        "term_end": iso(now + timedelta(days=365)),
        "enrolled": iso(now),
        "updated": iso(now),
        **extra,
    }


TEAM = [
    mentor("ada@example.com", "Ada Lovelace", ["python", "career advice"]),
    mentor("linus@example.com", "Linus Park", ["python"]),
    mentor("grace@example.org", "Grace Hopper", ["javascript"]),
    mentor("paused@example.com", "Pat Paused", ["python"], status="paused"),
    mentor("gone@example.com", "Ron Resigned", ["python"], status="resigned"),
    mentor("old@example.com", "Olga Old", ["python"], term_end="2020-01-01T00:00:00+00:00"),
]


def seed(desk: Desk, mentors: list[dict[str, Any]]) -> None:
    """Mentors enrolled before the daemon starts (enrollment itself is tested elsewhere)."""
    store = Store(desk.config.state.path, fsync=False)
    try:
        for doc in mentors:
            store.save_mentor(doc)
    finally:
        store.close()


def everything_in(message: ReceivedMessage) -> str:
    """Every header and every decoded part, as a person's mail client could show them."""
    headers = "\n".join(f"{k}: {v}" for k, v in message.message.items())
    return "\n".join([headers, text_of(message), html_of(message)])


def links(message: ReceivedMessage, kind: str) -> list[str]:
    text = text_of(message)
    return [m.group(0) for m in LINK.finditer(text) if m.group(1) == kind]


async def open_request(desk: Desk, mentors: list[dict[str, Any]] = TEAM) -> None:
    seed(desk, mentors)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await desk.replies_to(JORDAN, 1)


async def test_only_the_right_mentors_get_a_personal_link(desk: Desk) -> None:
    await open_request(desk)
    ada = (await desk.replies_to("ada@example.com", 1))[0]
    linus = (await desk.replies_to("linus@example.com", 1))[0]
    desk.send(mail("Marker <marker@example.com>", "pause", ""))
    await desk.replies_to("marker@example.com", 1)
    invited = {r for m in desk.sink.messages for r in m.rcpt_tos if m.subject.startswith("[MD")}
    # Not the JavaScript mentor, not the paused, resigned or out-of-term ones.
    assert invited == {"ada@example.com", "linus@example.com"}

    assert ada.subject == "[MD-0001] Jordan would like help with python"
    text = text_of(ada)
    assert "I'm leaving the Army in March" in text
    assert "You have taken 0 of your 2 sessions this month" in text
    assert 'reply to this email with the word "claim"' in text
    [ada_claim], [linus_claim] = links(ada, "claim"), links(linus, "claim")
    assert ada_claim != linus_claim  # personal links
    assert links(ada, "pause")
    # The mentee's address is nowhere in a claim email, in any part or header.
    for message in (ada, linus):
        assert JORDAN not in everything_in(message)
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert [i["email"] for i in request["invited"]] == ["ada@example.com", "linus@example.com"]


async def test_nobody_matching_tells_the_coordinator_at_once(desk: Desk) -> None:
    seed(desk, [mentor("grace@example.org", "Grace Hopper", ["javascript"])])
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [notice] = await desk.replies_to(COORDINATOR, 1)
    assert notice.subject == "[MD-0001] No mentor matches – needs a person"
    assert JORDAN in text_of(notice)  # the coordinator may see the mentee's address
    assert not desk.sink.messages_to("grace@example.org")


async def test_opening_the_link_changes_nothing(desk: Desk, http: aiohttp.ClientSession) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("ada@example.com", 1)
    [url] = links(invite, "claim")
    for _ in range(5):  # a mail scanner, a preview, the person: all GETs
        async with http.get(url) as response:
            assert response.status == 200
            page = await response.text()
            assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Can you help Jordan?" in page
    assert '<form method="post">' in page
    assert "Take MD-0001" in page
    assert JORDAN not in page
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "open"
        assert not [e for e in store.audit_log(1) if e["event"] == "claimed"]


async def test_first_click_wins_and_both_people_are_introduced(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    ada_invite = await desk.mail_to("ada@example.com", "would like help")
    [linus_invite] = await desk.replies_to("linus@example.com", 1)
    async with press(http, links(ada_invite, "claim")[0]) as response:
        assert response.status == 200
        page = await response.text()
    assert "Thank you! MD-0001 is yours." in page

    intro_mentor = await desk.mail_to("ada@example.com", "It's yours")
    assert intro_mentor.subject == "[MD-0001] It's yours: meet Jordan Lee"
    assert JORDAN in text_of(intro_mentor)
    assert links(intro_mentor, "release")
    intro = await desk.mail_to(JORDAN, "will be your mentor")
    assert intro.subject == "[MD-0001] Ada Lovelace will be your mentor"
    assert "ada@example.com" in text_of(intro)
    taken = await desk.mail_to("linus@example.com", "Taken by")
    assert taken.subject == "[MD-0001] Taken by Ada – thank you"
    assert JORDAN not in everything_in(taken)

    async with http.post(links(linus_invite, "claim")[0]) as response:
        assert response.status == 409
        assert "Ada Lovelace got there first." in await response.text()
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert request["status"] == "booked" and request["claimed_by"] == "ada@example.com"
        claims = [e for e in store.audit_log(1) if e["event"] == "claimed"]
        assert len(claims) == 1 and claims[0]["mentor"] == "ada@example.com"
        assert claims[0]["via"] == "web" and claims[0]["at"]


async def test_simultaneous_clicks_have_exactly_one_winner(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    team = [mentor(f"m{n:02d}@example.com", f"Mentor {n:02d}", ["python"]) for n in range(25)]
    desk.configure(matching={"invite_count": 25})
    await open_request(desk, team)
    urls = []
    for n in range(25):
        [invite] = await desk.replies_to(f"m{n:02d}@example.com", 1)
        urls += links(invite, "claim") * 2  # every mentor double-clicks: 50 POSTs

    async def click(url: str) -> tuple[int, str]:
        async with press(http, url) as response:
            return response.status, await response.text()

    results = await asyncio.gather(*(click(url) for url in urls))
    winners = [page for status, page in results if "Thank you! MD-0001 is yours." in page]
    assert len(winners) == 1, [status for status, _ in results]
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        winner = request["claimed_by"]
        claims = [e for e in store.audit_log(1) if e["event"] == "claimed"]
        assert [e["mentor"] for e in claims] == [winner]
    taken = [status for status, page in results if "got there first" in page]
    own_second_click = [p for s, p in results if "You took it already" in p]
    assert len(taken) == 48 and set(taken) == {409}
    assert len(own_second_click) == 1  # the winner's own second click
    # Exactly one introduction each way.
    await desk.mail_to(JORDAN, "will be your mentor")
    desk.send(mail("Marker <marker@example.com>", "pause", ""))
    await desk.replies_to("marker@example.com", 1)
    intros = [m for m in desk.sink.messages if "It's yours" in m.subject]
    assert [m.rcpt_tos for m in intros] == [(winner,)]
    intros_to_mentee = [m for m in desk.sink.messages_to(JORDAN) if "your mentor" in m.subject]
    assert len(intros_to_mentee) == 1


async def test_bad_links_are_refused_with_a_clear_page(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("ada@example.com", 1)
    [url] = links(invite, "claim")
    base, token = url.rsplit("/", 1)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    expired = sign(
        SECRET.encode(),
        purpose="claim",
        person="ada@example.com",
        obj="1",
        expires=datetime.now(UTC) - timedelta(seconds=1),
    )
    # A valid signature for a mentor who was never invited to this request.
    uninvited = sign(
        SECRET.encode(),
        purpose="claim",
        person="grace@example.org",
        obj="1",
        expires=datetime.now(UTC) + timedelta(days=1),
    )
    # Ada's pause token used as a claim token.
    [pause_url] = links(invite, "pause")
    wrong_purpose = pause_url.rsplit("/", 1)[1]
    cases = {
        tampered: (403, "This link does not work."),
        expired: (410, "This link has expired."),
        wrong_purpose: (403, "This link does not work."),
        uninvited: (403, "This request cannot be taken from this link."),
        "not-a-token": (403, "This link does not work."),
    }
    for bad, (status, words) in cases.items():
        for method in (http.get, http.post):
            async with method(f"{base}/{bad}") as response:
                assert response.status == status, (bad, method)
                assert words in await response.text(), bad
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "open"
    async with http.get(f"{base.rsplit('/', 1)[0]}/healthz") as response:
        assert response.status == 200 and (await response.json()) == {"status": "ok"}


async def test_release_goes_back_to_matching_without_the_releaser(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    team = [*TEAM, mentor("third@example.com", "Thea Third", ["python"])]
    desk.configure(matching={"invite_count": 2})
    await open_request(desk, team)
    [invite] = await desk.replies_to("ada@example.com", 1)
    async with press(http, links(invite, "claim")[0]) as response:
        assert response.status == 200
    intro = await desk.mail_to("ada@example.com", "It's yours")
    [release_url] = links(intro, "release")
    async with http.get(release_url) as response:
        assert "Give MD-0001 back?" in await response.text()
    async with desk.store() as store:
        assert store.request(1)["status"] == "booked"  # type: ignore[index]
    # Someone else holding the link cannot release it: only the holder's token works,
    # and a release token for another mentor is refused.
    other = sign(
        SECRET.encode(),
        purpose="release",
        person="linus@example.com",
        obj="1",
        expires=datetime.now(UTC) + timedelta(days=1),
    )
    async with http.post(release_url.rsplit("/", 1)[0] + "/" + other) as response:
        assert response.status == 403
        assert "Only the mentor who has it can give it back." in await response.text()
    async with press(http, release_url) as response:
        assert response.status == 200
        assert "Thanks for letting us know." in await response.text()

    told = await desk.mail_to(JORDAN, "another mentor")
    assert told.subject == "[MD-0001] We are finding you another mentor"
    # Back to matching: Linus (invited before) and Thea (new) are asked; Ada is not.
    again = await desk.replies_to("third@example.com", 1)
    assert again[0].subject.startswith("[MD-0001] Back again:")
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert request["status"] == "open" and request["released_by"] == ["ada@example.com"]
        events = [(e["event"], e.get("mentor"), e.get("by")) for e in store.audit_log(1)]
        assert ("released", "ada@example.com", "ada@example.com") in events
    again_to_ada = [
        m for m in desk.sink.messages_to("ada@example.com") if "Back again" in m.subject
    ]
    assert not again_to_ada  # the releaser is not invited again
    async with press(http, links(invite, "claim")[0]) as response:
        assert response.status == 403  # the releaser's old link no longer claims


async def test_claim_by_replying_claim(desk: Desk) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("linus@example.com", 1)
    desk.send(
        mail(
            "Linus Park <linus@example.com>",
            f"Re: {invite.subject}",
            "Claim\n\n> A mentee asked for help\n",
            message_id="<linus-claims@x.test>",
            in_reply_to=invite.message["Message-ID"],
        )
    )
    intro = await desk.mail_to("linus@example.com", "It's yours")
    assert intro.subject == "[MD-0001] It's yours: meet Jordan Lee"
    assert intro.message["In-Reply-To"] == "<linus-claims@x.test>"  # threaded on the reply
    # Ada replying "claim" too late is told who has it.
    ada_invite = await desk.mail_to("ada@example.com", "would like help")
    desk.send(
        mail(
            "Ada Lovelace <ada@example.com>",
            f"Re: {ada_invite.subject}",
            "claim",
            in_reply_to=ada_invite.message["Message-ID"],
        )
    )
    answer = await desk.mail_to("ada@example.com", "Re: [MD-0001]")
    assert "was already taken by Linus Park" in " ".join(text_of(answer).split())


async def test_withdrawn_request_cannot_be_claimed(desk: Desk, http: aiohttp.ClientSession) -> None:
    await open_request(desk)
    [ack] = await desk.replies_to(JORDAN, 1)
    [invite] = await desk.replies_to("ada@example.com", 1)
    desk.send(
        mail(
            "Jordan Lee <jordan@example.net>",
            f"Re: {ack.subject}",
            "withdraw",
            in_reply_to=ack.message["Message-ID"],
        )
    )
    await desk.replies_to(JORDAN, 2)
    async with http.post(links(invite, "claim")[0]) as response:
        assert response.status == 410
        assert "The mentee withdrew this request." in await response.text()


async def test_withdrawing_a_claimed_request_tells_the_mentor(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    [ack] = await desk.replies_to(JORDAN, 1)
    [invite] = await desk.replies_to("ada@example.com", 1)
    async with press(http, links(invite, "claim")[0]) as response:
        assert response.status == 200
    desk.send(
        mail(
            "Jordan Lee <jordan@example.net>",
            f"Re: {ack.subject}",
            "withdraw",
            in_reply_to=ack.message["Message-ID"],
        )
    )
    told = await desk.mail_to("ada@example.com", "Withdrawn by the mentee")
    assert told.subject == "[MD-0001] Withdrawn by the mentee"


async def test_a_full_mentor_is_refused_with_a_page(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    desk.configure(limits={"open_requests_per_mentee": 5})
    solo = [
        mentor("ada@example.com", "Ada Lovelace", ["python"], capacity=1),
        mentor("linus@example.com", "Linus Park", ["python"], capacity=5),
    ]
    await open_request(desk, solo)
    [first] = await desk.replies_to("ada@example.com", 1)
    desk.send(
        mail(
            "Jordan Lee <jordan@example.net>",
            "Mentor request",
            REQUEST.replace("first project", "second project"),
        )
    )
    second = await desk.mail_to("ada@example.com", "[MD-0002]")
    async with press(http, links(first, "claim")[0]) as response:
        assert response.status == 200
    async with press(http, links(second, "claim")[0]) as response:
        assert response.status == 409
        page = await response.text()
    assert "You have reached your limit for this month." in page
    assert "You have taken 1 of your 1 sessions this month" in page
    async with desk.store() as store:
        assert store.request(2)["status"] == "open"  # type: ignore[index]


async def test_pause_link_pauses_only_on_the_button(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("ada@example.com", 1)
    [pause_url] = links(invite, "pause")
    async with http.get(pause_url) as response:
        assert "Pause new requests?" in await response.text()
    async with desk.store() as store:
        assert store.mentor("ada@example.com")["status"] == "active"  # type: ignore[index]
    async with press(http, pause_url) as response:
        assert response.status == 200
        assert "You are paused." in await response.text()
    async with desk.store() as store:
        assert store.mentor("ada@example.com")["status"] == "paused"  # type: ignore[index]


async def test_the_coordinator_can_release_by_email_and_nobody_else(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("ada@example.com", 1)
    async with press(http, links(invite, "claim")[0]) as response:
        assert response.status == 200
    # Another mentor writing "release MD-0001" changes nothing.
    desk.send(mail("Linus Park <linus@example.com>", "release MD-0001", ""))
    refused = await desk.mail_to("linus@example.com", "Re: [MD-0001]")
    assert "Only the mentor who has MD-0001 can give it back" in " ".join(text_of(refused).split())
    async with desk.store() as store:
        assert store.request(1)["claimed_by"] == "ada@example.com"  # type: ignore[index]
    desk.send(mail(f"Coordinator <{COORDINATOR}>", "release MD-0001", ""))
    await desk.mail_to(JORDAN, "another mentor")
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "open"
        released = [e for e in store.audit_log(1) if e["event"] == "released"]
        assert released[0]["by"] == COORDINATOR and released[0]["mentor"] == "ada@example.com"
