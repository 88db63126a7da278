"""inbox/ongoing.py: does a request ask for an ongoing mentor? Read from people's words."""

from __future__ import annotations

import pytest

from mentordesk.inbox.ongoing import asks_for_ongoing


@pytest.mark.parametrize(
    "text",
    [
        "I'd love a mentor for the next year while I learn Rust.",
        "Looking for a long-term mentor to help me grow into a senior role.",
        "Could we have regular sessions? I learn best with a steady rhythm.",
        "I am hoping for an ongoing mentor, not just a quick chat.",
        "Ideally we would meet every two weeks over the coming months.",
        "Looking for longterm mentorship in data science.",
        "A year-long mentoring relationship would be perfect.",
        "I would like a dedicated mentor for the whole year.",
        "Hi!\n\nI'm career-switching. Fortnightly calls for the next 12 months would help.",
    ],
)
def test_asks_for_an_ongoing_mentor(text: str) -> None:
    assert asks_for_ongoing(text)


@pytest.mark.parametrize(
    "text",
    [
        "Can someone review my portfolio site? Thanks!",
        "I'm not looking for anything long-term, just some feedback on my CV.",
        "Just one session to talk through a job offer, please.",
        "I don't need regular sessions, one call about interviews is plenty.",
        "A one-off chat about Kubernetes would be great.",
        # The words are in the quoted history, not in what they wrote now.
        "Thanks, that helps!\n\nOn Mon, Ann wrote:\n> Do you want a mentor for the next year?",
        "",
    ],
)
def test_a_single_session_request_is_not_a_pairing(text: str) -> None:
    assert not asks_for_ongoing(text)


def test_a_huge_text_is_cut_before_reading() -> None:
    assert not asks_for_ongoing("x " * 50_000 + "for the next year")
    assert asks_for_ongoing("Long-term mentor please. " + "x " * 50_000)
