"""inbox.quoting greetings: one table says how a message may open."""

from __future__ import annotations

import pytest

from mentordesk.inbox.quoting import GREETINGS, is_greeting_line, strip_greeting


@pytest.mark.parametrize(
    "line",
    [
        "Hi,",
        "Hi",
        "Hi.",
        "Hello Ada!",
        "Dear team",
        "Hallo",
        "Hola",
        "Bonjour",
        "Hey there",
        "Hi there!",
        "Hello, Ada!",
        "Dear Code Mentors,",
        "Dear Sir/Madam,",
        "Dear Ms. Smith:",
        "Good morning everyone,",
        "Hallo zusammen,",
        "Hola a todos",
        "Guten Tag Frau Müller,",
        "Bonjour à tous !",
        "  Hi Ada  ",
        "HELLO!!!",
    ],
)
def test_greeting_lines(line: str) -> None:
    assert is_greeting_line(line)
    assert strip_greeting(line).strip() == ""


@pytest.mark.parametrize(
    "line",
    [
        "Hi please withdraw",
        "Hi I need help with python",
        "Hi my app crashes!",
        "Hello world program crashes",
        "Hi-res images look blurry",
        "Dearest friends",
        "Highlights of my week",
        "Thanks,",
        "Please withdraw my request.",
        "",
    ],
)
def test_not_greeting_lines(line: str) -> None:
    assert not is_greeting_line(line)
    assert strip_greeting(line) == line


@pytest.mark.parametrize(
    ("line", "rest"),
    [
        ("Hi Ada, I need help with Python", "I need help with Python"),
        ("Hi, claim", "claim"),
        ("Hey, can someone help?", "can someone help?"),
        ("Hi all, please withdraw my request", "please withdraw my request"),
        ("Hello team! Pause me", "Pause me"),
        ("Hallo zusammen, ich brauche Hilfe", "ich brauche Hilfe"),
        ("Hi!!! Can you help?", "Can you help?"),
    ],
)
def test_strip_greeting_keeps_what_follows(line: str, rest: str) -> None:
    assert not is_greeting_line(line)
    assert strip_greeting(line) == rest


def test_the_table_holds_the_greetings_every_copy_knew() -> None:
    # core.free_text, office_hours and classify each had their own list.
    for word in ("hi", "hello", "hey", "dear", "hallo", "hola", "good morning", "bonjour"):
        assert word in GREETINGS
        assert is_greeting_line(word.title() + ",")
