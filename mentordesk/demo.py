"""``mentordesk demo``: the whole flow on realistic emails, with no server.

It writes the embedded default configuration into a fresh folder, drops a morning's worth
of mail into the local Maildir inbox, runs the daemon until everything is handled and
prints what each person received. A second round answers one of the daemon's questions
in the same thread, as a mentee would.
"""

from __future__ import annotations

import mailbox
import os
import re
import secrets
import socket
import tempfile
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiohttp

from . import event_loop
from .config import Config, load_config
from .daemon import Daemon
from .deploy_cli import shipped_config
from .state.store import Store
from .status import render_status

MENTEE = "sam.rivera@example.net"


def _mail(
    sender: str,
    subject: str,
    body: str,
    *,
    html: str | None = None,
    headers: dict[str, str] | None = None,
    in_reply_to: str | None = None,
    to: str = "mentors@program.example.org",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    if html is not None and not body:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body)
    return msg.as_bytes()


def morning_mail() -> list[tuple[str, bytes]]:
    """(what it is, raw message) — the shapes of mail a program really gets."""
    return [
        (
            "a mentor enrolls (plain text)",
            _mail(
                "Ada Lovelace <ada@example.com>",
                "Mentor enrollment",
                "Hi!\n\nName: Ada Lovelace\nSkills: Python, career advice, Django\n"
                "Timezone: Berlin\nAvailability: Tue 18:00-20:00, Sat 10:00-12:00\n"
                "Capacity: 2\nAbout: Backend engineer, 10 years. Happy to review code.\n\n"
                "-- \nAda\n",
            ),
        ),
        (
            "a mentor enrolls (HTML-only, from Outlook)",
            _mail(
                "Grace Hopper <grace@example.org>",
                "enroll",
                "",
                html="<html><body><p>Name: Grace Hopper</p><p>Skills: JS, web dev</p>"
                "<p>Time zone: EST</p><p>Availability: Mon-Fri 7pm-9pm</p>"
                "<p>About: Front-end lead</p></body></html>",
            ),
        ),
        (
            "a mentor forgets her availability",
            _mail(
                "Katherine Johnson <kj@example.com>",
                "I'd like to become a mentor",
                "Name: Katherine Johnson\nSkills: data science\nTimezone: America/Chicago\n",
            ),
        ),
        (
            "a mentee asks for help",
            _mail(
                "Jordan Lee <jordan@example.net>",
                "Mentor request: Python job search",
                "Name: Jordan Lee\nSkills: python, resume\nTimezone: PST\n"
                "Availability: weekdays 9:00-11:00\n"
                "Details: I'm leaving the Army in March and learning Python. I'd love help\n"
                "turning my projects into a resume that gets interviews.\n",
            ),
        ),
        (
            "a mentee writes too little",
            _mail(
                f"Sam Rivera <{MENTEE}>",
                "need a mentor",
                "Hi, can someone help me?\n\nSam\n",
            ),
        ),
        (
            "an out-of-office reply",
            _mail(
                "Busy Person <busy@example.com>",
                "Automatic reply: Mentor enrollment",
                "I am out of the office until Monday.",
                headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
            ),
        ),
        (
            "a mailing-list post",
            _mail(
                "Newsletter <news@lists.example.com>",
                "This week in tech",
                "Ten links you should read.",
                headers={"List-Id": "<weekly.lists.example.com>"},
            ),
        ),
        (
            "something nobody planned for",
            _mail(
                "Pat Doe <pat@example.com>",
                "Sponsorship",
                "Hello, our company would like to sponsor your program. Who should I talk to?",
            ),
        ),
    ]


def _default_config_text() -> str:
    return shipped_config()


def _drop(inbox: mailbox.Maildir, messages: Iterable[bytes]) -> None:
    for raw in messages:
        inbox.add(raw)


def _sent(config: Config) -> list[EmailMessage]:
    folder = mailbox.Maildir(config.smtp.path / "sent", create=True)
    found = []
    for key in sorted(folder.keys(), key=_delivery_order):
        parsed = message_from_bytes(folder.get_bytes(key), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(parsed)
    return found


def _delivery_order(key: str) -> tuple[int, int, str]:
    """Maildir names start "<seconds>.M<microseconds>…": the order they were written."""
    seconds, _, rest = key.partition(".")
    micro = rest[1:].split("P", 1)[0] if rest.startswith("M") else "0"
    return (int(seconds) if seconds.isdigit() else 0, int(micro) if micro.isdigit() else 0, key)


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


def _show(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    body_text = text.replace("\r\n", "\n").split("\n-- \n")[0]  # without the footer
    lines = body_text.strip().splitlines()[:30]
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            lines.append(f"[calendar invitation, method={part.get_param('method')}]")
    lines += [f"[attached: {a.get_filename()}]" for a in message.iter_attachments()]
    indented = textwrap.indent("\n".join(lines), "    │ ")
    return f"  → To: {message['To']}\n    Subject: {message['Subject']}\n{indented}\n"


async def _round(config: Config, click: str | None = None) -> str:
    """Handle everything waiting; with ``click``, first press the button behind that link
    the way a mentor's browser does (GET the page, POST the form). Returns the page."""
    daemon = Daemon(config)
    await daemon.start()
    page = ""
    try:
        if click is not None:
            await daemon.start_web()
            async with aiohttp.ClientSession() as browser:
                async with browser.get(click) as response:
                    await response.text()
                async with browser.post(click) as response:
                    page = await response.text()
        await daemon.drain()
    finally:
        if daemon.web is not None:
            await daemon.web.stop()
        await daemon.close()
    return page


def _demo_config_text() -> str:
    """The embedded default, with the web endpoint on a port that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = _default_config_text()
    text = re.sub(r"(?m)^port = 8025$", f"port = {port}", text)
    return text.replace("http://127.0.0.1:8025", f"http://127.0.0.1:{port}")


def run_demo(folder: Path | None = None) -> int:
    """Run the demo in ``folder`` (a temporary one by default)."""
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="mentordesk-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.toml"
    config_path.write_text(_demo_config_text(), encoding="utf-8")
    # The demo signs its links with a throwaway secret; a real program sets its own.
    os.environ.setdefault("MENTORDESK_SECRET", secrets.token_hex(32))
    config = load_config(config_path)
    (config.inbox.path).mkdir(parents=True, exist_ok=True)
    inbox = mailbox.Maildir(config.inbox.path / "inbox", create=True)

    print(f"mentordesk demo in {folder}\n")
    print("1. This morning's mail arrives in the program mailbox:")
    arrivals = morning_mail()
    for what, _ in arrivals:
        print(f"   • {what}")
    _drop(inbox, (raw for _, raw in arrivals))
    event_loop.run(_round(config))
    first = _sent(config)
    print(
        f"\n2. The daemon answered ({len(first)} emails, written to {config.smtp.path / 'sent'}):\n"
    )
    for message in first:
        print(_show(message))

    seen = len(first)
    invite = next(
        (
            m
            for m in first
            if m["To"].addresses[0].addr_spec == "ada@example.com"
            and "would like help" in str(m["Subject"])
        ),
        None,
    )
    if invite is not None:
        link = re.search(r"http://127\.0\.0\.1:\d+/claim/\S+", _text(invite))
        if link is not None:
            print("3. Ada presses “Take MD-0001” on the page behind her link:\n")
            page = event_loop.run(_round(config, click=link.group(0)))
            heading = re.search(r"<h1>(.*?)</h1>", page, re.S)
            print(f"   The page says: {heading.group(1).strip() if heading else '?'}\n")
            sent = _sent(config)
            for message in sent[seen:]:
                print(_show(message))
            seen = len(sent)

    question = next((m for m in first if m["To"].addresses[0].addr_spec == MENTEE), None)
    if question is not None:
        print("4. Sam answers the question in the same thread:")
        reply = _mail(
            f"Sam Rivera <{MENTEE}>",
            f"Re: {question['Subject']}",
            "Skills: JavaScript\nDetails: I'm building my first React app and I'm stuck on\n"
            "state management. Could someone look at it with me?\n\n"
            f"> {question['Subject']}\n",
            in_reply_to=question["Message-ID"],
        )
        _drop(inbox, [reply])
        event_loop.run(_round(config))
        for message in _sent(config)[seen:]:
            print(_show(message))

    store = Store(config.state.path, fsync=False, read_only=True)
    try:
        print("5. What the coordinator sees with `mentordesk status`:\n")
        print(render_status(store, datetime.now(UTC)))
    finally:
        store.close()
    print(
        f"\nEverything is in {folder} (config.toml, state/). "
        "Run `mentordesk status --config "
        f"{config_path}` to look again."
    )
    return 0
