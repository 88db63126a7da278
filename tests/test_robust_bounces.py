"""Forged bounces silence nobody (issue 14, item 5).

Anyone can write a "bounce" naming anyone. A report counts for an address only when it
returns a message we sent to that address (its Message-ID is in our outbox with that
address among the recipients), or when, with ``[inbox] require_authentication`` on, our
receiving server vouches for a sender in the address's own domain. Anything else is
shown to the coordinator, and nobody is marked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mentordesk.config import Config
from mentordesk.flows.bounces import BounceDecision, Outcome, vouched_for
from mentordesk.flows.router import Coordinator
from mentordesk.inbox.source import RawMessage
from mentordesk.mailer.compose import Renderer
from mentordesk.state.store import Store

from .desk import COORDINATOR, PROGRAM, Desk, mail, text_of
from .servers import ReceivedMessage

ADA = "ada@example.com"
GRACE = "grace@example.org"
JORDAN = "jordan@example.net"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def enrollment(name: str) -> str:
    return (
        f"Name: {name}\nSkills: Python\nTimezone: Berlin\n"
        "Availability: Tue 18:00-20:00, Sat 10:00-12:00\nCapacity: 3\n"
    )


REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: PST\nAvailability: weekdays 18:00-20:00\n"
    "Details: I would like a review of my first Python project and advice on what next.\n"
)


def text_bounce(sender: str, *addresses: str, message_id: str, returned: str = "") -> bytes:
    """A bounce in words, as Postfix writes them; ``returned`` names our message."""
    lines = [
        f"From: Mail Delivery System <{sender}>",
        f"To: {PROGRAM}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Message-ID: {message_id}",
        "Date: Tue, 1 Dec 2026 10:00:00 +0000",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"This is the mail system at host {sender.partition('@')[2]}.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients.",
        "",
        *(f"<{a}>: host mx.example.net said: 550 5.1.1 User unknown" for a in addresses),
    ]
    if returned:
        lines += ["", "--- returned message headers ---", f"Message-ID: {returned}", ""]
    return "\r\n".join(lines).encode() + b"\r\n"


def message_id_of(message: ReceivedMessage) -> str:
    return str(message.message["Message-ID"])


# --- end to end ---------------------------------------------------------------------------


@pytest.mark.dovecot
async def test_a_forged_bounce_naming_a_mentee_and_two_mentors_changes_nothing(
    desk: Desk,
) -> None:
    await desk.start()
    desk.send(mail(f"Ada Lovelace <{ADA}>", "Mentor enrollment", enrollment("Ada Lovelace")))
    desk.send(mail(f"Grace Hopper <{GRACE}>", "Mentor enrollment", enrollment("Grace Hopper")))
    await desk.replies_to(ADA, 1)
    await desk.replies_to(GRACE, 1)
    desk.send(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", REQUEST))
    [ack] = await desk.replies_to(JORDAN, 1)
    await desk.replies_to(ADA, 2)  # the claim emails
    await desk.replies_to(GRACE, 2)

    # The attack: a text bounce from a domain of the sender's choosing.
    desk.send(
        text_bounce("MAILER-DAEMON@evil.test", JORDAN, ADA, GRACE, message_id="<f1@evil.test>")
    )
    # The same, claiming to return a message we did send — to Jordan, not to Ada or Grace.
    desk.send(
        text_bounce(
            "MAILER-DAEMON@evil.test",
            ADA,
            GRACE,
            message_id="<f2@evil.test>",
            returned=message_id_of(ack),
        )
    )
    await desk.processed(5)
    async with desk.store() as store:
        assert store.bounced_addresses() == []
        assert not [e for e in store.audit_log() if e["event"] == "address bounced"]
    [notice] = await desk.replies_to(COORDINATOR, 1)  # a person looks; once per sender, day
    assert "evil.test" in text_of(notice)

    # Everyone still gets mail: Jordan's question is answered, Ada's command too.
    desk.send(mail(f"Ada Lovelace <{ADA}>", "pause", "pause"))
    desk.send(
        mail(
            f"Jordan Lee <{JORDAN}>",
            f"Re: {ack.subject}",
            "Is there any news?",
            in_reply_to=message_id_of(ack),
        )
    )
    await desk.replies_to(ADA, 3)
    await desk.replies_to(JORDAN, 2)

    # A genuine bounce — of the acknowledgement we sent to Jordan — still marks Jordan.
    desk.send(
        text_bounce(
            "MAILER-DAEMON@mx.example.net",
            JORDAN,
            message_id="<g1@mx.example.net>",
            returned=message_id_of(ack),
        )
    )
    await desk.until(lambda store: store.is_bounced(JORDAN))
    async with desk.store() as store:
        assert [a["email"] for a in store.bounced_addresses()] == [JORDAN]


# --- the rule itself ------------------------------------------------------------------------


def failed(*addresses: str, original: str | None = "<ours@program.test>") -> BounceDecision:
    return BounceDecision(Outcome.FAILED, addresses, "550 5.1.1", original)


@pytest.mark.parametrize(
    ("sent_to", "vouching", "trusted"),
    [
        ((), "", ()),  # a message we never sent, an unauthenticated sender: nobody
        ((JORDAN,), "", (JORDAN,)),  # it returns our message to Jordan: Jordan only
        ((JORDAN, ADA), "", (JORDAN, ADA)),
        ((), "evil.test", ()),  # an authenticated attacker speaks for nobody else
        ((), "example.net", (JORDAN,)),  # Jordan's own domain speaks for Jordan
        ((), "mx.example.net", (JORDAN,)),  # ... and its mail servers
        ((), "ample.net", ()),
        ((), "example.net.evil.test", ()),
        ((ADA.upper(),), "", (ADA,)),
    ],
)
def test_whom_a_report_may_mark(
    sent_to: tuple[str, ...], vouching: str, trusted: tuple[str, ...]
) -> None:
    decision = failed(JORDAN, ADA, GRACE)
    counted, doubtful = vouched_for(decision.addresses, sent_to=sent_to, vouching_domain=vouching)
    assert counted == trusted
    assert set(counted) | set(doubtful) == {JORDAN, ADA, GRACE}
    assert not set(counted) & set(doubtful)


# --- through the coordinator, over a real store ------------------------------------------------


def _config(root: Path, authentication: bool) -> Config:
    from mentordesk.config import load_config

    inbox = '[inbox]\nrequire_authentication = true\nauthserv_id = "mx.program.test"\n'
    (root / "config.toml").write_text(
        f"""[program]
name = "Test Mentors"
address = "{PROGRAM}"
coordinator = "{COORDINATOR}"
base_url = "https://mentors.program.test"
secret_env = "MD_TEST_SECRET"
[state]
path = "{root / "md.db"}"
fsync = false
{inbox if authentication else ""}""",
        "utf-8",
    )
    return load_config(root / "config.toml", environ={"MD_TEST_SECRET": "s" * 32})


def _sent(store: Store, to: str, message_id: str) -> None:
    store.enqueue(
        message_id=message_id,
        sender=PROGRAM,
        recipients=[to],
        data=b"Subject: hello\r\n\r\nhello\r\n",
        kind="test",
        now=NOW,
    )


def _with_results(raw: bytes, verdict: str) -> bytes:
    return f"Authentication-Results: mx.program.test; {verdict}\r\n".encode() + raw


def test_with_authentication_a_bounce_vouched_for_by_the_address_domain_counts(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "md.db", fsync=False)
    try:
        coordinator = Coordinator(_config(tmp_path, True), store, Renderer())
        # Authenticated, but evil.test speaks for nobody at example.net.
        forged = _with_results(
            text_bounce("MAILER-DAEMON@evil.test", JORDAN, message_id="<a@evil.test>"),
            "dkim=pass header.d=evil.test; dmarc=pass header.from=evil.test",
        )
        assert coordinator.handle(RawMessage("k1", forged), NOW).status == "done"
        assert store.bounced_addresses() == []
        # Jordan's own domain, authenticated by our server: Jordan's mailbox is gone.
        genuine = _with_results(
            text_bounce("MAILER-DAEMON@example.net", JORDAN, ADA, message_id="<b@example.net>"),
            "dkim=pass header.d=example.net; dmarc=pass header.from=example.net",
        )
        assert coordinator.handle(RawMessage("k2", genuine), NOW).status == "done"
        assert [a["email"] for a in store.bounced_addresses()] == [JORDAN]
        # Unauthenticated, but returning our message to Ada: Ada is marked.
        with store.transaction():
            _sent(store, ADA, "<to-ada@program.test>")
        ours = text_bounce(
            "MAILER-DAEMON@relay.example.com",
            ADA,
            message_id="<c@relay.example.com>",
            returned="<to-ada@program.test>",
        )
        assert coordinator.handle(RawMessage("k3", ours), NOW).status == "done"
        assert sorted(a["email"] for a in store.bounced_addresses()) == [ADA, JORDAN]
    finally:
        store.close()


def test_a_complaint_about_mail_we_never_sent_marks_nobody(tmp_path: Path) -> None:
    store = Store(tmp_path / "md.db", fsync=False)
    try:
        coordinator = Coordinator(_config(tmp_path, False), store, Renderer())
        sample = Path(__file__).parent / "samples" / "bounces" / "51-arf-yahoo-abuse.eml"
        report = sample.read_bytes()
        assert coordinator.handle(RawMessage("k1", report), NOW).status == "done"
        assert store.bounced_addresses() == []
        assert coordinator.postman.may_mail("pat.lee@yahoo.example.com")
        # Once the message it returns is one we sent to that address, it counts.
        with store.transaction():
            _sent(store, "pat.lee@yahoo.example.com", "<md.111.ack.f1f1@program.example.org>")
        again = report.replace(b"Message-ID: <", b"Message-ID: <again.", 1)
        assert again != report
        assert coordinator.handle(RawMessage("k2", again), NOW).status == "done"
        assert not coordinator.postman.may_mail("pat.lee@yahoo.example.com")
    finally:
        store.close()
