"""state/lifecycle.py: the lifecycle's rules as data (SPEC §3a), without I/O."""

from __future__ import annotations

import pytest

from mentordesk.state.lifecycle import (
    MentorEvent,
    RequestEvent,
    leaves_holder,
    next_mentor_status,
    next_request_status,
)
from mentordesk.state.records import MentorStatus as M
from mentordesk.state.records import RequestStatus as R


@pytest.mark.parametrize("status", [R.INCOMPLETE, R.OPEN, R.CLAIMED, R.BOOKED, R.MET])
def test_a_request_can_be_withdrawn_until_it_is_closed(status: R) -> None:
    assert next_request_status(status, RequestEvent.WITHDRAWN) is R.WITHDRAWN


@pytest.mark.parametrize("status", [R.CLOSED, R.WITHDRAWN, R.EXPIRED])
def test_an_ended_request_takes_no_event(status: R) -> None:
    assert all(next_request_status(status, event) is None for event in RequestEvent)


def test_only_a_held_request_can_be_released_and_it_opens_again() -> None:
    for status in R:
        after = next_request_status(status, RequestEvent.RELEASED)
        assert (after is R.OPEN) == status.held
        assert after is None or status.held


def test_only_unclaimed_requests_expire() -> None:
    expiring = {s for s in R if next_request_status(s, RequestEvent.EXPIRED) is not None}
    assert expiring == {R.INCOMPLETE, R.OPEN}


def test_leaving_the_holder_cancels_the_session_but_meeting_does_not() -> None:
    assert leaves_holder(R.BOOKED, R.OPEN)
    assert leaves_holder(R.BOOKED, R.WITHDRAWN)
    assert leaves_holder(R.CLAIMED, R.WITHDRAWN)
    assert not leaves_holder(R.BOOKED, R.MET)
    assert not leaves_holder(R.BOOKED, R.CLAIMED)
    assert not leaves_holder(R.OPEN, R.WITHDRAWN)


def test_every_transition_lands_on_a_status_the_request_can_be_in() -> None:
    # No event moves a request from "not held" straight to "booked".
    for status in R:
        if next_request_status(status, RequestEvent.BOOKED) is not None:
            assert status.held


@pytest.mark.parametrize(
    ("status", "event", "term_over", "expected"),
    [
        (M.ACTIVE, MentorEvent.PAUSE, False, M.PAUSED),
        (M.PAUSED, MentorEvent.RESUME, False, M.ACTIVE),
        (M.TERM_ENDED, MentorEvent.PAUSE, True, None),
        (M.TERM_ENDED, MentorEvent.RESUME, True, None),  # renewing brings them back
        (M.TERM_ENDED, MentorEvent.RENEW, True, M.ACTIVE),
        (M.TERM_ENDED, MentorEvent.ENROLL, True, M.ACTIVE),
        (M.RESIGNED, MentorEvent.PAUSE, False, None),
        (M.RESIGNED, MentorEvent.RESUME, False, M.ACTIVE),
        (M.RESIGNED, MentorEvent.RESUME, True, None),
        (M.RESIGNED, MentorEvent.RESIGN, False, None),
        (M.PAUSED, MentorEvent.RENEW, False, M.PAUSED),
        (M.PENDING, MentorEvent.ENROLL, False, M.PENDING),
        (M.PAUSED, MentorEvent.RESIGN, False, M.RESIGNED),
    ],
)
def test_mentor_standing(
    status: M, event: MentorEvent, term_over: bool, expected: M | None
) -> None:
    assert next_mentor_status(status, event, term_over=term_over) is expected
