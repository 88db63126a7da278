"""Delivery and feedback reports: every sample in tests/samples/bounces reads as its
manifest says, and marks exactly the addresses that failed or complained.

Mail goes in through ``Coordinator.handle`` over a real store, as the daemon hands it
over; what the coordinator is told is read from the outbox. The end-to-end run over
Dovecot and aiosmtpd is in ``test_bounces_e2e.py``.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mentordesk.config import Config, load_config
from mentordesk.core import Coordinator
from mentordesk.flows.bounces import Outcome, decide
from mentordesk.inbox.classify import Kind, classify
from mentordesk.inbox.delivery import MAX_RECIPIENTS, DeliveryReport, is_bounce_sender
from mentordesk.inbox.delivery_text import read_text_bounce
from mentordesk.inbox.parse import ParsedMessage, parse_message
from mentordesk.inbox.source import RawMessage
from mentordesk.mailer.compose import Renderer
from mentordesk.mailer.drafts import stored_email
from mentordesk.state.store import Store

FOLDER = Path(__file__).resolve().parent / "samples" / "bounces"
MANIFEST: dict[str, dict[str, Any]] = tomllib.loads((FOLDER / "expected.toml").read_text("utf-8"))
PROGRAM = "mentors@program.example.org"  # the address the samples were sent from
COORDINATOR = "coord@program.example.org"
NOW = datetime(2025, 3, 24, 9, 0, tzinfo=UTC)
MARKING = ("failed", "complaint")  # readings that mark their addresses
REPORTS = ("failed", "delayed", "complaint", "feedback", "unreadable")


def sample(name: str) -> ParsedMessage:
    return parse_message((FOLDER / name).read_bytes())


# --- the corpus itself ---------------------------------------------------------------------


def test_every_sample_has_an_expected_reading_and_back() -> None:
    assert sorted(p.name for p in FOLDER.glob("*.eml")) == sorted(MANIFEST)


def test_the_corpus_is_broad() -> None:
    reports = [e for e in MANIFEST.values() if e["reading"] in ("failed", "delayed")]
    servers = {e["server"].split(" (")[0] for e in reports}
    assert len(reports) >= 40
    assert len(servers) >= 25, sorted(servers)


def test_samples_are_anonymised() -> None:
    # Every address is under a reserved example domain (RFC 2606); the program's is ours.
    import re

    for path in FOLDER.glob("*.eml"):
        text = path.read_bytes().decode("utf-8", "replace")
        for domain in re.findall(r"@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b", text):
            assert domain.lower().endswith(("example.com", "example.net", "example.org")), (
                path.name,
                domain,
            )


# --- each sample, read -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_sample_reads_as_expected(name: str) -> None:
    expected = MANIFEST[name]
    msg = sample(name)
    verdict = classify(msg, PROGRAM)
    report = msg.delivery_report
    if expected["reading"] == "auto-reply":
        assert verdict.kind is Kind.AUTO_REPLY, verdict.reason
        assert report is None
        return
    assert verdict.kind is Kind.BOUNCE, verdict.reason
    assert report is not None
    assert list(report.failed_recipients) == expected["recipients"]
    if "message_id" in expected:
        assert report.original_message_id == expected["message_id"]
    if expected["reading"] in ("complaint", "feedback"):
        assert report.feedback_type is not None
        assert report.complaint is (expected["reading"] == "complaint")
    else:
        assert report.feedback_type is None
        assert report.permanent is (expected["reading"] != "delayed")
    assert report.diagnostic.strip()
    assert "\n" not in report.diagnostic


# --- each sample, through the coordinator --------------------------------------------------


def write_config(root: Path) -> Config:
    (root / "config.toml").write_text(
        f"""[program]
name = "Test Mentors"
address = "{PROGRAM}"
coordinator = "{COORDINATOR}"
timezone = "Europe/London"
base_url = "https://mentors.program.example.org"
secret_env = "MD_TEST_SECRET"
[state]
path = "{root / "state" / "md.db"}"
fsync = false
""",
        "utf-8",
    )
    return load_config(root / "config.toml", environ={"MD_TEST_SECRET": "s" * 32})


class World:
    """The coordinator over a real store; mail in through ``receive``, out via ``sent``."""

    def __init__(self, root: Path) -> None:
        self.config = write_config(root)
        self.store = Store(self.config.state.path, fsync=False)
        self.coordinator = Coordinator(self.config, self.store, Renderer())
        self._keys = 0

    def receive(self, raw: bytes, now: datetime = NOW) -> None:
        self._keys += 1
        self._sent_what_it_returns(raw, now)
        outcome = self.coordinator.handle(RawMessage(f"test:{self._keys}", raw), now)
        assert outcome.status == "done", outcome

    def _sent_what_it_returns(self, raw: bytes, now: datetime) -> None:
        """A report counts only for mail we sent to the address (issue 14, item 5): the
        email a sample returns goes into the outbox first, sent to whom it names."""
        report = parse_message(raw).delivery_report
        if report is None or report.original_message_id is None:
            return
        if self.store.outbox_by_message_id(report.original_message_id) is None:
            item = self.store.enqueue(
                message_id=report.original_message_id,
                sender=PROGRAM,
                recipients=list(report.failed_recipients),
                data=b"",
                kind="returned",
                now=now,
            )
            self.store.mark_sent(item, now)

    def sent(self) -> list[EmailMessage]:
        parser = email.parser.BytesParser(policy=email.policy.default)
        return [
            parser.parsebytes(stored_email(doc, self.config.program))
            for doc in self.store.outbox()
            if doc["kind"] != "returned"
        ]

    def marked(self) -> dict[str, str]:
        return {doc["email"]: doc["reason"] for doc in self.store.bounced_addresses()}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.store.close()


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_sample_marks_exactly_the_failed_addresses(world: World, name: str) -> None:
    expected = MANIFEST[name]
    with world.store.transaction():
        world.receive((FOLDER / name).read_bytes())
    # A report returning none of our emails (no Message-ID to match) marks nobody.
    report = sample(name).delivery_report
    proven = report is not None and report.original_message_id is not None
    marks = expected["recipients"] if expected["reading"] in MARKING and proven else []
    assert sorted(world.marked()) == sorted(marks)
    sent = world.sent()
    # Nobody but the coordinator hears of a report; a report is never answered.
    assert all(m["To"].addresses[0].addr_spec == COORDINATOR for m in sent), [m["To"] for m in sent]
    if expected["reading"] in ("delayed", "auto-reply"):
        assert sent == []
    elif expected["reading"] in MARKING and marks:
        assert len(sent) == len(marks)
        assert all(any(a in text_of(m) for m in sent) for a in marks)
    else:  # unreadable, feedback, a complaint naming nobody: the report goes along
        [notice] = sent
        assert "Needs a person" in notice["Subject"]
    if expected["reading"] == "complaint":
        assert all(reason.startswith("complaint") for reason in world.marked().values())


# --- the coordinator hears once -----------------------------------------------------------


def with_id(name: str, message_id: str, sender: str | None = None) -> bytes:
    """A sample under another Message-ID (each arrival is a new message), maybe another From."""
    msg = email.message_from_bytes((FOLDER / name).read_bytes(), policy=email.policy.compat32)
    del msg["Message-ID"]
    msg["Message-ID"] = message_id
    if sender is not None:
        del msg["From"]
        msg["From"] = sender
    return msg.as_bytes()


def test_the_same_address_bouncing_again_is_told_once(world: World) -> None:
    for n in range(3):
        with world.store.transaction():
            world.receive(with_id("04-gmail-empty-status-part.eml", f"<g{n}@mx.example.com>"))
    [notice] = world.sent()
    assert "lena.fischer@example.net" in text_of(notice)
    assert list(world.marked()) == ["lena.fischer@example.net"]


def test_unreadable_bounces_are_told_once_per_sender_and_day(world: World) -> None:
    name = "55-unreadable-filter-reject.eml"
    for n in range(3):
        with world.store.transaction():
            world.receive(with_id(name, f"<u{n}@filter.example.com>"))
    assert len(world.sent()) == 1
    # Another server's unreadable bounce is news; so is the same server tomorrow.
    other = "Mail Delivery System <MAILER-DAEMON@other.example.net>"
    with world.store.transaction():
        world.receive(with_id(name, "<u9@other.example.net>", sender=other))
    with world.store.transaction():
        world.receive(with_id(name, "<u10@filter.example.com>"), NOW + timedelta(days=1))
    assert len(world.sent()) == 3
    assert world.marked() == {}


def test_a_complaint_is_told_once_and_stops_mail(world: World) -> None:
    for n in range(2):
        with world.store.transaction():
            world.receive(with_id("51-arf-yahoo-abuse.eml", f"<arf{n}@arf.example.com>"))
    [notice] = world.sent()
    assert "pat.lee@yahoo.example.com" in text_of(notice)
    assert "unwanted" in text_of(notice)
    assert world.marked()["pat.lee@yahoo.example.com"].startswith("complaint: abuse report")
    assert not world.coordinator.postman.may_mail("pat.lee@yahoo.example.com")


def test_a_report_naming_the_program_marks_nothing() -> None:
    report = DeliveryReport((PROGRAM, "gone@example.com"), None, True, "550 5.1.1")
    decision = decide(report, PROGRAM.upper())
    assert decision.outcome is Outcome.FAILED
    assert decision.addresses == ("gone@example.com",)
    assert decide(DeliveryReport((PROGRAM,), None, True, "550"), PROGRAM).outcome is (
        Outcome.UNREADABLE
    )


@pytest.mark.parametrize(
    ("report", "outcome"),
    [
        (None, Outcome.UNREADABLE),
        (DeliveryReport(("a@example.com",), None, False, "4.4.1"), Outcome.DELAYED),
        (DeliveryReport((), None, False, "4.4.1"), Outcome.DELAYED),
        (DeliveryReport((), None, True, "550"), Outcome.UNREADABLE),
        (DeliveryReport(("a@example.com",), None, True, "abuse", "abuse"), Outcome.COMPLAINT),
        (DeliveryReport((), None, False, "auth-failure", "auth-failure"), Outcome.FEEDBACK),
        (DeliveryReport((), None, False, "not-spam", "not-spam"), Outcome.FEEDBACK),
    ],
)
def test_decide(report: DeliveryReport | None, outcome: Outcome) -> None:
    assert decide(report, PROGRAM).outcome is outcome


# --- reading rules, one by one -------------------------------------------------------------


def mail(headers: str, body: str) -> bytes:
    return (headers.strip("\n") + "\n\n" + body).encode("utf-8")


DSN_HEAD = """\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: mentors@program.example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"
"""


def dsn(fields: str, extra_headers: str = "") -> bytes:
    return mail(
        DSN_HEAD + extra_headers,
        "--B\nContent-Type: text/plain\n\nNot delivered.\n\n"
        f"--B\nContent-Type: message/delivery-status\n\n{fields}\n--B--\n",
    )


def report_of(raw: bytes) -> DeliveryReport:
    report = parse_message(raw).delivery_report
    assert report is not None
    return report


def test_the_action_is_the_final_verdict_whatever_the_status_class() -> None:
    # Postfix after its queue lifetime: Action failed, Status 4.4.1.
    fields = "Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@example.com\n"
    assert report_of(dsn(fields + "Action: failed\nStatus: 4.4.1\n")).permanent
    assert not report_of(dsn(fields + "Action: delayed\nStatus: 4.4.1\n")).permanent
    # No Action at all: the status class decides.
    assert report_of(dsn(fields + "Status: 5.1.1\n")).permanent


def test_delivered_and_relayed_recipients_are_not_failures() -> None:
    fields = (
        "Reporting-MTA: dns; mx\n\n"
        "Final-Recipient: rfc822; ok@example.com\nAction: relayed\nStatus: 2.0.0\n\n"
        "Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n"
    )
    assert report_of(dsn(fields)).failed_recipients == ("gone@example.com",)


def test_x_failed_recipients_adds_only_what_the_blocks_leave_out() -> None:
    fields = (
        "Reporting-MTA: dns; mx\n\nOriginal-Recipient: rfc822; alias@example.com\n"
        "Final-Recipient: rfc822; box@internal.example.com\nAction: failed\nStatus: 5.2.2\n"
    )
    headers = "X-Failed-Recipients: box@internal.example.com, other@example.org\n"
    report = report_of(dsn(fields, headers))
    assert report.failed_recipients == ("alias@example.com", "other@example.org")


def test_every_x_failed_recipients_header_counts() -> None:
    raw = mail(
        "From: MAILER-DAEMON@mx.example.net\nTo: mentors@program.example.org\n"
        "Subject: Mail delivery failed: returning message to sender\n"
        "X-Failed-Recipients: a@example.com\nX-Failed-Recipients: b@example.com, c@example.com",
        "A message that you sent could not be delivered.\n",
    )
    assert report_of(raw).failed_recipients == ("a@example.com", "b@example.com", "c@example.com")


def test_utf8_addresses_in_a_global_delivery_status() -> None:
    # RFC 6533 §3: utf-8-addr-xtext may write characters as \x{HEX}.
    raw = mail(
        DSN_HEAD.replace("boundary", "charset=utf-8; boundary"),
        "--B\nContent-Type: message/global-delivery-status\n\n"
        "Reporting-MTA: dns; mx\n\nFinal-Recipient: utf-8; ren\\x{E9}@example.com\n"
        "Action: failed\nStatus: 5.1.1\n\n--B--\n",
    )
    assert report_of(raw).failed_recipients == ("rené@example.com",)


@pytest.mark.parametrize(
    "from_header",
    [
        "MAILER-DAEMON <>",
        '"Courier mail server at mx.example.net" <@>',
        "MAILER-DAEMON",
        "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com>",
        "Postmaster <postmaster@example.com>",
    ],
)
def test_mail_systems_without_a_report_part_are_recognised(from_header: str) -> None:
    raw = mail(
        f"From: {from_header}\nTo: mentors@program.example.org\nSubject: Notice",
        "Your message could not be delivered to the following recipient:\n\n    gone@example.com\n",
    )
    msg = parse_message(raw)
    assert msg.delivery_report is not None
    assert msg.delivery_report.failed_recipients == ("gone@example.com",)
    assert classify(msg, PROGRAM).kind is Kind.BOUNCE


def test_a_report_names_at_most_max_recipients() -> None:
    lines = "".join(f"  user{n}@example.com\n" for n in range(MAX_RECIPIENTS + 50))
    raw = mail(
        "From: MAILER-DAEMON@mx.example.net\nTo: mentors@program.example.org\n"
        "Subject: Mail delivery failed: returning message to sender",
        f"The following address(es) failed:\n\n{lines}",
    )
    assert len(report_of(raw).failed_recipients) == MAX_RECIPIENTS


def test_an_empty_return_path_alone_makes_a_mail_system() -> None:
    raw = mail(
        "Return-Path: <>\nFrom: Delivery <robot@example.net>\nTo: mentors@program.example.org\n"
        "Subject: Notice",
        "Delivery to the following recipient failed permanently:\n\n   gone@example.com\n",
    )
    assert report_of(raw).failed_recipients == ("gone@example.com",)


def test_a_person_quoting_a_bounce_is_no_bounce() -> None:
    raw = mail(
        "From: Ana <ana@example.org>\nTo: mentors@program.example.org\n"
        "Subject: Undeliverable: my mail to you?",
        "I got this:\n\nDelivery has failed to these recipients or groups:\n\nbob@example.org\n",
    )
    assert parse_message(raw).delivery_report is None


def test_is_bounce_sender() -> None:
    assert is_bounce_sender("MAILER-DAEMON@example.com")
    assert is_bounce_sender("microsoftexchange329e71ec88ae4615bbc36ab6ce41109e")
    assert not is_bounce_sender("postmaster.general@example.com")
    assert not is_bounce_sender("ana@example.com")


@pytest.mark.parametrize(
    ("text", "delayed"),
    [
        # qmail's final notice after a temporary code is the end.
        (
            "<a@example.com>:\nRemote host said: 451 4.3.0 try later\n"
            "I'm not going to try again; this message has been in the queue too long.\n",
            False,
        ),
        # Exim's warning says it "will give up" some day: not yet.
        (
            "A message that you sent has not yet been delivered to one or more of its\n"
            "recipients.\n\n  a@example.com\n\nEventually the mail delivery software will "
            "give up, and when that happens, the message will be returned to you.\n",
            True,
        ),
        # Gmail's delay: "if the delivery fails permanently" is a condition, not a verdict.
        (
            "There is a temporary problem delivering your message to a@example.com. Gmail "
            "will retry for 44 more hours. You'll be notified if the delivery fails "
            "permanently.\n",
            True,
        ),
        ("Delivery to the following recipient failed permanently:\n\n   a@example.com\n", False),
        ("a@example.com: 550 5.1.1 User unknown\n", False),
    ],
)
def test_the_final_verdict_in_words(text: str, delayed: bool) -> None:
    reading = read_text_bounce(text, "failure notice")
    assert reading.recipients == ("a@example.com",)
    assert reading.delayed is delayed


@pytest.mark.parametrize(
    "line",
    [
        "a@example.com",
        "  <a@example.com>:",
        "a@example.com on 1/28/2025 3:04 PM",
        "a@example.com<mailto:a@example.com>",
        "a@example.com Invalid Address",
        ">    a@example.com",
        "a@example.com: 550 5.1.1 <a@example.com>: Recipient address rejected",
        "Unknown user: a@example.com",
        "Recipient: a@example.com - 550 Invalid Recipient",
        ">>> RCPT TO:<a@example.com>",
        "Your message wasn't delivered to a@example.com because the address couldn't be found.",
        "Your message to a@example.com couldn't be delivered.",
        "Votre message à a@example.com n'a pas pu être remis.",
        "收件人：a@example.com",
        "您发送给 a@example.com 的邮件被退回。",
        "<b@internal.example.com> (expanded from <a@example.com>): host mx said: 550",
    ],
)
def test_where_bounces_write_the_failed_address(line: str) -> None:
    reading = read_text_bounce(f"Delivery failed.\n\n{line}\n", "Undeliverable")
    assert reading.recipients == ("a@example.com",)


@pytest.mark.parametrize(
    "line",
    [
        "For further assistance, please send mail to postmaster@example.com.",
        "Sender: mentors@program.example.org",
        "From: Code Mentors <mentors@program.example.org>",
        "Please write to ana@example.org instead, she has taken over.",
        "ana@example.org has been very helpful to us.",
    ],
)
def test_addresses_that_are_not_the_failed_one(line: str) -> None:
    reading = read_text_bounce(f"Delivery failed.\n\n{line}\n", "Undeliverable")
    assert reading.recipients == ()


def test_nothing_below_the_returned_copy_counts() -> None:
    text = (
        "Your message could not be delivered to the following recipient:\n\n"
        "  gone@example.com\n\n--- Below this line is a copy of the message.\n\n"
        "To: gone@example.com, other@example.net\nMessage-ID: <x@y>\n\nother@example.net\n"
    )
    assert read_text_bounce(text, "failure notice").recipients == ("gone@example.com",)


@pytest.mark.parametrize("feedback_type", ["abuse", "fraud"])
def test_complaint_types(feedback_type: str) -> None:
    report = DeliveryReport(("a@example.com",), None, True, "x", feedback_type)
    assert report.complaint


@pytest.mark.parametrize("feedback_type", [None, "auth-failure", "not-spam", "virus", "other"])
def test_not_complaints(feedback_type: str | None) -> None:
    assert not DeliveryReport(("a@example.com",), None, True, "x", feedback_type).complaint


def test_a_complaint_about_a_message_to_several_names_nobody() -> None:
    raw = mail(
        "From: fbl@isp.example.net\nTo: mentors@program.example.org\nSubject: report\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="B"',
        "--B\nContent-Type: text/plain\n\nAbuse report.\n\n"
        "--B\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nVersion: 1\n\n"
        "--B\nContent-Type: text/rfc822-headers\n\nFrom: mentors@program.example.org\n"
        "To: a@example.com, b@example.com\nMessage-ID: <m1@program.example.org>\n\n--B--\n",
    )
    report = report_of(raw)
    assert report.complaint and report.failed_recipients == ()
    assert report.original_message_id == "<m1@program.example.org>"
