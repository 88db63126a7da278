"""A mentee's later words on a request are kept within a cap (issue 14: nothing people
write is stored or echoed without a limit).

Each reply in a request's thread becomes a note (and joins the details mentors read);
one mentee writing 10,000 characters again and again must not grow the request without
end. What is over the cap is left out, and the mentee is told so, kindly, in the answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mentordesk.flows.requests import MAX_NOTES_CHARS
from mentordesk.timers import Registry

from .desk import mail
from .test_ladder import JORDAN, REQUEST, TEAM
from .timetravel import Harness, text_of


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(
        tmp_path, Registry(), limits={"replies_per_sender_per_hour": 100}
    ).open()
    await harness.seed(*TEAM)
    yield harness
    await harness.close()


def note(n: int, words: int = 1_400) -> bytes:
    body = f"More about my project, part {n}. " + "I tried this and that. " * words
    return mail(
        "Jordan Lee <jordan@example.net>",
        "Re: [MD-0001] Mentor request",
        body,
        in_reply_to="<r1@x.test>",
        message_id=f"<note{n}@x.test>",
    )


async def test_notes_stop_growing_at_the_cap_and_the_mentee_is_told(desk: Harness) -> None:
    await desk.receive(
        mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST, message_id="<r1@x.test>")
    )
    size = len(json.dumps(await desk.request(1)))
    for n in range(12):  # ~30,000 characters each (cut to 10,000 by the parser)
        await desk.receive(note(n))
    request = await desk.request(1)
    notes = request["notes"]
    assert sum(len(n["text"]) for n in notes) <= MAX_NOTES_CHARS
    assert notes[0]["text"].startswith("More about my project, part 0.")
    assert len(json.dumps(request)) < size + 2 * MAX_NOTES_CHARS + 2_000  # notes and details

    answers = await desk.sent("request_note", JORDAN)
    assert len(answers) == 12
    first, last = text_of(answers[0]), " ".join(text_of(answers[-1]).split())
    assert "as much as we can keep" not in first
    assert "we added what you wrote" in " ".join(first.split())
    assert "Your request now holds as much as we can keep" in last
    assert "what you wrote this time could not be added" in last


async def test_a_short_note_after_a_long_one_is_kept_while_there_is_room(desk: Harness) -> None:
    await desk.receive(
        mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST, message_id="<r1@x.test>")
    )
    await desk.receive(note(0, words=10))
    request = await desk.request(1)
    assert [n["text"] for n in request["notes"]] == [
        "More about my project, part 0. " + " ".join(["I tried this and that."] * 10)
    ]
