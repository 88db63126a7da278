"""inbox.classify: a request called off in the words people use, and "renew" in sentences."""

from __future__ import annotations

import time
from dataclasses import replace
from types import MappingProxyType

import pytest

from mentordesk.inbox.classify import Kind, classify, means_withdraw
from mentordesk.inbox.parse import ParsedMessage, parse_message

PROGRAM = "mentors@program.example.org"
BASE = parse_message(
    b"From: Ana Lima <ana.lima@example.biz>\n"
    b"To: mentors@program.example.org\n"
    b"Subject: hello\n"
    b"Message-ID: <base@example.biz>\n\n"
    b"Hello there.\n"
)

WITHDRAWALS = [
    "withdraw",
    "Withdraw.",
    "please withdraw my request",
    "Please withdraw my request, thanks!",
    "I found help elsewhere, you can close this",
    "I no longer need a mentor",
    "I'm no longer looking for a mentor.",
    "please cancel my request",
    "I don't need help anymore",
    "I don’t need a mentor any more, thank you.",
    "you can close my request",
    "never mind, I figured it out",
    "Never mind!",
    "Could you please withdraw my request?",
    "I'd like to withdraw my request.",
    "I would like to withdraw.",
    "Please close it, thanks",
    "I found someone else.",
    "Figured it out, thanks!",
    "Withdraw please.\nI found a mentor at work.\n\nThanks!",
    "Hi Maria,\n\nI found help elsewhere, you can close this.\n\nThanks,\nAna",
    "Thanks so much, but I found help elsewhere. You can close this.",
]

NOT_WITHDRAWALS = [
    "I can't withdraw money from my account in my app, can someone help with the bug?",
    "I can't withdraw money from my account in my app. Can someone help with the bug?",
    "I want to withdraw 50 dollars from the account",
    "The withdraw button doesn't work",
    "I need to withdraw cash from an ATM in my app",
    "Please don't withdraw my request",
    "Please do not close my request, I am still interested.",
    "Why did you close my request?",
    "How do I withdraw?",
    "I tried to close it",
    "Can you close the port for me?",
    "I figured it out, but now the tests fail.",
    "I fixed it. But now I have another question.",
    "I no longer need a mentor for Python, but I still need help with SQL",
    "I found a mentor, thanks!",  # perhaps the one the program found
    "We fixed it in the session, thanks!",
    "Never mind the typo in my last mail.",
    "I don't need help with syntax, just design",
    "Please cancel the session, I am ill",
    "cancel",
    "Thanks for the update.",
    "",
    # quoted history is not what they say now
    "Thanks, see you Tuesday!\n\n> please withdraw my request",
    "Sounds good.\n\nOn Mon, 3 Feb 2025 at 10:00, Ana <ana@example.biz> wrote:\n"
    "> I no longer need a mentor",
    # nor is a message they forward
    "See below.\n\n---------- Forwarded message ---------\nFrom: Bo\n\nPlease withdraw my request",
]


@pytest.mark.parametrize("text", WITHDRAWALS)
def test_means_withdraw(text: str) -> None:
    assert means_withdraw(text)


@pytest.mark.parametrize("text", NOT_WITHDRAWALS)
def test_does_not_mean_withdraw(text: str) -> None:
    assert not means_withdraw(text)


def test_means_withdraw_reads_a_long_body_quickly() -> None:
    text = ("I can't withdraw money " * 5000 + "\n") * 3 + "never mind " * 20_000
    started = time.perf_counter()
    means_withdraw(text)
    assert time.perf_counter() - started < 2


# --- in the classifier -----------------------------------------------------------------


def message(subject: str, text: str, **changes: object) -> ParsedMessage:
    return replace(
        BASE,
        subject=subject,
        text=text,
        new_text=text,
        headers=MappingProxyType({}),
        **changes,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("text", WITHDRAWALS)
def test_a_reply_on_a_request_withdraws_it(text: str) -> None:
    result = classify(message("Re: [MD-0042] Still looking for a mentor", text), PROGRAM)
    assert (result.kind, result.command, result.tag) == (Kind.REPLY, "withdraw", 42)
    threaded = message("Re: your mentor request", text, in_reply_to=("<ack@program.org>",))
    assert classify(threaded, PROGRAM).command == "withdraw"


@pytest.mark.parametrize("text", NOT_WITHDRAWALS)
def test_other_replies_do_not_withdraw(text: str) -> None:
    result = classify(message("Re: [MD-0042] Still looking for a mentor", text), PROGRAM)
    assert result.command != "withdraw"


def test_cancel_alone_still_answers_a_session() -> None:
    result = classify(message("Re: [MD-0042] Session on Tuesday", "Cancel, please."), PROGRAM)
    assert result.command == "cancel"
    result = classify(message("Re: [MD-0042] Session on Tuesday", "Cancel my request"), PROGRAM)
    assert result.command == "withdraw"


def test_a_tagless_request_subject_that_withdraws_is_no_new_request() -> None:
    result = classify(message("Re: mentor request", "I no longer need a mentor."), PROGRAM)
    assert (result.kind, result.command) == (Kind.COMMAND, "withdraw")
    fresh = classify(message("Mentor request", "I need help with Go channels."), PROGRAM)
    assert fresh.kind is Kind.REQUEST


@pytest.mark.parametrize(
    "text",
    [
        "Yes, please renew me.",
        "please renew my term",
        "Renew",
        "Yes! Please renew me for another year.",
        "Yes, please renew me. Thanks for the reminder!",
        "Hi Maria,\n\nYes, please renew me.\n\nBest,\nAda",
    ],
)
def test_renew_in_reply_to_the_term_reminder(text: str) -> None:
    msg = message(
        'Re: Your mentor term ends on Saturday 26 April 2025 – reply "renew" to stay',
        text,
        in_reply_to=("<md.term.reminder@program.example.org>",),
    )
    assert classify(msg, PROGRAM).command == "renew"


@pytest.mark.parametrize(
    "text", ["Please don't renew me.", "Renew? Not sure yet.", "I will not renew, thanks."]
)
def test_not_renew(text: str) -> None:
    msg = message("Re: Your mentor term ends soon", text, in_reply_to=("<t@program.org>",))
    assert classify(msg, PROGRAM).command is None
