"""What emails and pages echo of what people wrote is capped (issue 14, item 6): one
10 MB request once became four outgoing emails of 24 MB each."""

from __future__ import annotations

from mentordesk.views import MAX_ECHO_CHARS, MAX_LIST_CHARS, SHORTENED, mentor_view, request_view

HUGE = "I would like help with my python project and its many parts. " * 160_000


def request(**fields: object) -> dict[str, object]:
    return {"number": 7, "details": "Help me with Go.", **fields}


def test_short_details_are_echoed_whole() -> None:
    view = request_view(request(details="Help me\nwith Go.\n\nThanks!"))
    assert view["details"] == "Help me with Go.\n\nThanks!"
    assert view["details_shortened"] is False


def test_ten_megabytes_of_details_are_echoed_shortened() -> None:
    view = request_view(request(details=HUGE))
    assert len(view["details"]) <= MAX_ECHO_CHARS + len(SHORTENED) + 1
    assert view["details"].startswith("I would like help with my python project")
    assert view["details"].endswith(SHORTENED)
    assert view["details_shortened"] is True


def test_details_just_over_the_limit_are_cut_at_a_word() -> None:
    details = "word " * (MAX_ECHO_CHARS // 5 + 10)
    shown = request_view(request(details=details))["details"]
    assert shown.removesuffix(" " + SHORTENED).endswith("word")


def test_whitespace_that_unwraps_away_is_not_called_shortened() -> None:
    details = "Help me with Go.\n" + " \n" * 2 * MAX_ECHO_CHARS
    view = request_view(request(details=details))
    assert view["details"] == "Help me with Go." + " " + SHORTENED
    assert view["details_shortened"] is True  # there was more than was looked at


def test_every_field_people_wrote_is_capped() -> None:
    view = request_view(request(details=HUGE, name=HUGE, skills=["x" * 50] * 1_000, timezone=HUGE))
    for key in ("name", "skills", "timezone"):
        assert len(view[key]) <= MAX_LIST_CHARS + len(SHORTENED) + 1, key
    mentor = mentor_view({"name": HUGE, "about": HUGE, "skills": ["go"] * 10_000})
    assert len(mentor["about"]) <= MAX_ECHO_CHARS + len(SHORTENED) + 1
    assert len(mentor["name"]) <= MAX_LIST_CHARS + len(SHORTENED) + 1
    assert len(mentor["skills"]) <= MAX_LIST_CHARS + len(SHORTENED) + 1
