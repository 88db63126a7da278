"""Optional mentor approval ([program] approve_mentors) end to end: a mentor enrolls by
email through Dovecot, waits (no requests), the coordinator approves with the link in
their email (GET shows a button, POST approves, with the page's form token) or with
``mentordesk mentor approve``; every email is read back from the real SMTP server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mentordesk.cli import main as cli
from mentordesk.config import load_config
from mentordesk.errors import ConfigError

from .desk import COORDINATOR, ENVIRON, Desk, config_text, html_of, mail, text_of
from .servers import Dovecot, SmtpSink, free_port
from .test_claims import JORDAN, REQUEST

ADA = "ada@example.com"
KAT = "kj@example.com"
ENROLL = (
    "Name: {name}\nSkills: Python\nTimezone: Berlin\n"
    "Availability: Tue 18:00-20:00\nCapacity: 3\nAbout: Backend engineer.\n"
)
APPROVE = re.compile(r"http://127\.0\.0\.1:\d+/approve/[A-Za-z0-9_\-.]+")
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]+)">')


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    desk.configure(program={"approve_mentors": True})
    yield desk
    await desk.stop()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("USER", "alice")


async def enroll(desk: Desk, address: str, name: str) -> str:
    """Enroll by email; the approval link the coordinator got."""
    desk.send(mail(f"{name} <{address}>", "Mentor enrollment", ENROLL.format(name=name)))
    confirmation = await desk.mail_to(address, "enrollment")
    text = " ".join(text_of(confirmation).split())
    assert "A coordinator will confirm your enrollment" in text
    assert "Until then you get no requests." in text
    assert "Welcome aboard" not in text
    notice = await desk.mail_to(COORDINATOR, f"New mentor to approve: {name}")
    [url] = APPROVE.findall(text_of(notice))
    assert isinstance(url, str)
    assert url in html_of(notice)
    assert f"mentordesk mentor approve {address}" in " ".join(text_of(notice).split())
    return url


async def status_of(desk: Desk, address: str) -> str:
    async with desk.store() as store:
        mentor = store.mentor(address)
        assert mentor is not None
        return str(mentor["status"])


async def test_approve_with_one_click_from_the_email(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await desk.start()
    url = await enroll(desk, ADA, "Ada Lovelace")
    assert await status_of(desk, ADA) == "pending"

    # A pending mentor gets no claim emails: nobody matches the request yet.
    desk.send(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", REQUEST))
    await desk.mail_to(COORDINATOR, "MD-0001")
    assert not [m for m in desk.sink.messages_to(ADA) if "would like help" in m.subject]

    async with http.get(url) as response:
        assert response.status == 200
        page = await response.text()
    assert "Approve Ada Lovelace as a mentor?" in page
    assert await status_of(desk, ADA) == "pending"  # a GET changes nothing
    [(field, token)] = HIDDEN.findall(page)

    # Without the page's form token the button changes nothing.
    async with http.post(url, data={}) as response:
        assert response.status == 403
    assert await status_of(desk, ADA) == "pending"

    async with http.post(url, data={field: token}) as response:
        assert response.status == 200
        assert "Done: Ada Lovelace is a mentor now." in await response.text()
    welcome = await desk.mail_to(ADA, "Welcome: you are a mentor now")
    assert "A coordinator has approved your enrollment" in " ".join(text_of(welcome).split())
    assert await status_of(desk, ADA) == "active"
    async with desk.store() as store:
        [event] = [e for e in store.audit_log() if e["event"] == "mentor approve"]
    assert event["by"] == f"link:{COORDINATOR}"

    # Pressed again: nothing to do, no second welcome.
    async with http.post(url, data={field: token}) as response:
        assert response.status == 200
        assert "Ada Lovelace is active." in await response.text()
    await asyncio.sleep(0.3)
    assert len([m for m in desk.sink.messages_to(ADA) if "Welcome" in m.subject]) == 1

    # A tampered link is refused.
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    async with http.get(tampered) as response:
        assert response.status == 403


async def test_approve_from_the_command_line(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await desk.start()
    await enroll(desk, KAT, "Katherine Johnson")
    config = str(desk.root / "config.toml")
    code = await asyncio.to_thread(cli, ["mentor", "approve", KAT, "--config", config])
    assert code == 0
    assert capsys.readouterr().out == (
        "Katherine Johnson is approved and gets requests from now on. Katherine Johnson was told.\n"
    )
    await desk.mail_to(KAT, "Welcome: you are a mentor now")
    assert await status_of(desk, KAT) == "active"
    # Enrolling again keeps them active; a second approval is refused.
    code = await asyncio.to_thread(cli, ["mentor", "approve", KAT, "--config", config])
    assert code == 1
    assert "only a pending enrollment can be approved" in capsys.readouterr().err

    # Now that Katherine is active, a request reaches her.
    desk.send(mail(f"Jordan Lee <{JORDAN}>", "Mentor request", REQUEST))
    await desk.mail_to(KAT, "would like help")


def test_approve_mentors_is_checked(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> None:
    path = tmp_path / "config.toml"
    text = config_text(tmp_path, dovecot, smtp_sink, free_port(), program={"approve_mentors": 1})
    path.write_text(text.replace("approve_mentors = 1", 'approve_mentors = "yes"'), "utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ=ENVIRON)
    assert "approve_mentors" in str(refused.value)
    path.write_text(config_text(tmp_path, dovecot, smtp_sink, free_port()), "utf-8")
    assert load_config(path, environ=ENVIRON).program.approve_mentors is False
