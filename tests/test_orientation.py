"""Orientation end to end: the program's Markdown welcome reaches each new mentor and each
new mentee once, ever — across a restart, a re-enrollment and a second request — as
HTML and plain text through the mail gate; a bad file is a clear config error."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mentordesk.config import load_config
from mentordesk.errors import ConfigError
from mentordesk.mailer.drafts import stored_email
from mentordesk.mailer.welcome import read_welcome, render_welcome

from .desk import ENVIRON, Desk, config_text, html_of, mail, text_of
from .servers import Dovecot, SmtpSink
from .test_flows import ENROLL_ADA, REQUEST

pytestmark = pytest.mark.dovecot

ADA = "ada@example.com"
JORDAN = "jordan@example.net"
MENTOR_WELCOME = """# Welcome to {program}, {first_name}!

Thank you for joining, {name}. **Three things** to know:

1. Read the [mentor guide](https://example.org/guide).
2. Reply to {address} with any question.
3. <script>alert("no")</script> is shown, never run; so is <b>this</b>.

Braces stay braces: {{like this}}.
"""
MENTEE_WELCOME = """# Hello {first_name}

Welcome to *{program}*. Our [code of conduct](https://example.org/conduct).
"""


def orientation(desk: Desk) -> None:
    (desk.root / "welcome-mentor.md").write_text(MENTOR_WELCOME, "utf-8")
    (desk.root / "welcome-mentee.md").write_text(MENTEE_WELCOME, "utf-8")
    desk.configure(
        orientation={"mentor_welcome": "welcome-mentor.md", "mentee_welcome": "welcome-mentee.md"}
    )


def welcomes_to(desk: Desk, address: str) -> list[str]:
    """The welcome emails ``address`` received, by subject, each Message-ID once: the
    outbox may deliver again the few emails in flight when the daemon stops, with the
    same Message-ID, which mail clients show once (``mailer/sender.py``)."""
    seen = {
        m.message["Message-ID"]: m.subject
        for m in desk.sink.messages_to(address)
        if "Welcome" in m.subject or "Hello" in m.subject
    }
    return list(seen.values())


async def test_a_new_mentor_is_welcomed_once_across_a_restart_and_a_re_enrollment(
    desk: Desk,
) -> None:
    orientation(desk)
    await desk.start()
    desk.send(mail("Ada Lovelace <ada@example.com>", "Mentor enrollment", ENROLL_ADA))
    welcome = await desk.mail_to(ADA, "Welcome to Test Mentors, Ada!")
    await desk.mail_to(ADA, "Re: Mentor enrollment")

    assert welcome.message["Auto-Submitted"] == "auto-generated"
    assert welcome.message.get_body(preferencelist=("plain",)) is not None
    text = text_of(welcome)
    assert "Thank you for joining, Ada Lovelace. **Three things** to know:" in text
    assert "Reply to mentors@program.test with any question." in text
    assert "Braces stay braces: {like this}." in text
    html = html_of(welcome)
    assert "<h1>Welcome to Test Mentors, Ada!</h1>" in html
    assert "<strong>Three things</strong>" in html
    assert '<a href="https://example.org/guide">mentor guide</a>' in html
    # Raw HTML in the program's file is text, not markup.
    assert "<script>" not in html and "<b>this</b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;this&lt;/b&gt;" in html

    # A restart, then a re-enrollment (new hours): no second welcome.
    await desk.stop()
    await desk.start()
    desk.send(
        mail(
            "Ada Lovelace <ada@example.com>",
            "Mentor enrollment",
            ENROLL_ADA.replace("Sat 10:00-12:00", "Sun 10:00-12:00"),
        )
    )
    await desk.replies_to(ADA, 3)  # the second confirmation
    await desk.processed(2)
    async with desk.store() as store:
        assert (store.mentor(ADA) or {}).get("availability", [])[-1] == [6, 600, 720]
        assert [a["event"] for a in store.audit_log() if a["event"] == "welcomed"] == ["welcomed"]
    assert welcomes_to(desk, ADA) == ["Welcome to Test Mentors, Ada!"]


async def test_a_new_mentee_is_welcomed_with_the_first_request_only(desk: Desk) -> None:
    orientation(desk)
    await desk.start()
    desk.send(mail("Jordan *J* Lee <jordan@example.net>", "Mentor request", REQUEST))
    welcome = await desk.mail_to(JORDAN, "Hello Jordan")
    assert "Welcome to *Test Mentors*." in text_of(welcome)
    html = html_of(welcome)
    assert "Welcome to <em>Test Mentors</em>." in html
    assert '<a href="https://example.org/conduct">code of conduct</a>' in html

    await desk.stop()
    await desk.start()
    desk.send(
        mail(
            "Jordan Lee <jordan@example.net>",
            "Mentor request",
            REQUEST.replace("review of my", "look at my CV and"),
        )
    )
    await desk.processed(2)
    await desk.replies_to(JORDAN, 3)  # the two acknowledgements and the one welcome
    assert welcomes_to(desk, JORDAN) == ["Hello Jordan"]
    async with desk.store() as store:
        welcomed = [a for a in store.audit_log() if a["event"] == "welcomed"]
        assert [(a["role"], a["to"]) for a in welcomed] == [("mentee", JORDAN)]
        assert len(store.requests()) == 2


@pytest.mark.parametrize(
    ("write", "complaint"),
    [
        (None, "no such file:"),
        ("Hi {nickname}!", "unknown placeholder {nickname}"),
        (b"\xff\xfe caf\xe9", "is not UTF-8 text"),
        ("   \n", "is empty"),
    ],
)
def test_a_bad_welcome_file_is_a_clear_config_error(
    tmp_path: Path,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
    write: str | bytes | None,
    complaint: str,
) -> None:
    welcome = tmp_path / "welcome-mentor.md"
    if isinstance(write, str):
        welcome.write_text(write, "utf-8")
    elif isinstance(write, bytes):
        welcome.write_bytes(write)
    path = tmp_path / "config.toml"
    path.write_text(
        config_text(
            tmp_path, dovecot, smtp_sink, 8025, orientation={"mentor_welcome": "welcome-mentor.md"}
        ),
        "utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ=ENVIRON)
    message = str(raised.value)
    assert message.startswith(f"{path}: [orientation] mentor_welcome: ")
    assert complaint in message and str(welcome) in message
    assert 'Example: mentor_welcome = "welcome-mentor.md"' in message


def test_the_approval_step_welcomes_a_pending_mentor_once(desk: Desk) -> None:
    """``welcome_mentor`` is what the approval step calls: nothing while the mentor is
    pending or paused, one welcome once they are active, never a second one."""
    from datetime import UTC, datetime

    from mentordesk.flows.desks import build_desks
    from mentordesk.mailer.compose import Renderer
    from mentordesk.state.store import Store

    from .test_claims import mentor

    orientation(desk)
    now = datetime.now(UTC)
    store = Store(desk.config.state.path, fsync=False)
    try:
        desks = build_desks(desk.config, store, Renderer())
        with store.transaction():
            store.save_mentor(mentor(ADA, "Ada *Star* Lovelace", ["python"], status="pending"))
            assert not desks.orientation.welcome_mentor(ADA, now)
            store.save_mentor({**(store.mentor(ADA) or {}), "status": "paused"})
            assert not desks.orientation.welcome_mentor(ADA, now)
            store.save_mentor({**(store.mentor(ADA) or {}), "status": "active"})
            assert desks.orientation.welcome_mentor(ADA, now)
            assert not desks.orientation.welcome_mentor(ADA, now)
            assert not desks.orientation.welcome_mentor("ADA@example.com", now)
        [sent] = [item for item in store.outbox() if item["kind"] == "orientation_welcome"]
        assert sent["recipients"] == [ADA]
        message = email.message_from_bytes(
            stored_email(sent, desk.config.program), policy=email.policy.default
        )
        assert isinstance(message, EmailMessage)
        html_part = message.get_body(preferencelist=("html",))
        text_part = message.get_body(preferencelist=("plain",))
        assert html_part is not None and text_part is not None
        # The name's asterisks are text in the HTML part, not emphasis.
        assert "Thank you for joining, Ada *Star* Lovelace." in html_part.get_content()
        assert "Thank you for joining, Ada *Star* Lovelace." in text_part.get_content()
    finally:
        store.close()


@pytest.mark.parametrize("name", ["welcome-mentor.md", "welcome-mentee.md"])
def test_the_shipped_examples_are_valid_welcomes(name: str) -> None:
    shipped = Path(__file__).resolve().parent.parent / "contrib" / "orientation" / name
    welcome = render_welcome(
        read_welcome(shipped),
        {
            "name": "Ada Lovelace",
            "first_name": "Ada",
            "program": "Code Mentors",
            "address": "m@x.org",
        },
        default_subject="Welcome",
    )
    assert welcome.subject == "Welcome to Code Mentors, Ada!"
    assert "{" not in welcome.text and "<a href=" in welcome.html


def test_a_welcome_cannot_carry_markup_or_script_links() -> None:
    welcome = render_welcome(
        "Hi {name}\n\n[click](javascript:alert(1)) <img src=x onerror=alert(1)>\n",
        {"name": "<b>Eve</b> [x](https://evil.example)"},
        default_subject="Welcome",
    )
    # No link is made (neither the script one nor one smuggled in through a name), no tag.
    assert "href" not in welcome.html
    assert "<img" not in welcome.html and "&lt;img" in welcome.html
    assert "<b>" not in welcome.html and "&lt;b&gt;Eve&lt;/b&gt; [x](https://evil.example)" in (
        welcome.html
    )
    assert welcome.subject == "Welcome"


def test_a_welcome_and_its_mark_are_kept_or_lost_together(desk: Desk) -> None:
    """The mark and the email are written in the caller's transaction: a message whose
    handling fails half-way (or a crash before it is stored) leaves neither, so the
    replay sends the welcome exactly once."""
    from datetime import UTC, datetime

    from mentordesk.flows.desks import build_desks
    from mentordesk.flows.orientation import MENTOR, welcomed_key
    from mentordesk.mailer.compose import Renderer
    from mentordesk.state.store import Store

    from .test_claims import mentor

    orientation(desk)
    now = datetime.now(UTC)
    store = Store(desk.config.state.path, fsync=False)
    try:
        desks = build_desks(desk.config, store, Renderer())
        with pytest.raises(RuntimeError), store.transaction():
            store.save_mentor(mentor(ADA, "Ada Lovelace", ["python"]))
            assert desks.orientation.welcome_mentor(ADA, now)
            raise RuntimeError("the rest of the message's handling failed")
        assert store.meta(welcomed_key(MENTOR, ADA)) is None
        assert not [i for i in store.outbox() if i["kind"] == "orientation_welcome"]
    finally:
        store.close()
    # Reopened from disk, as after a restart: the replay welcomes once.
    store = Store(desk.config.state.path, fsync=False)
    try:
        desks = build_desks(desk.config, store, Renderer())
        with store.transaction():
            store.save_mentor(mentor(ADA, "Ada Lovelace", ["python"]))
            assert desks.orientation.welcome_mentor(ADA, now)
        with store.transaction():
            assert not desks.orientation.welcome_mentor(ADA, now)
    finally:
        store.close()
    store = Store(desk.config.state.path, fsync=False, read_only=True)
    try:
        assert store.meta(welcomed_key(MENTOR, ADA))
        assert len([i for i in store.outbox() if i["kind"] == "orientation_welcome"]) == 1
    finally:
        store.close()
