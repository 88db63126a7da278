"""The daemon on OAuth2 (issue 10): XOAUTH2 to a real Dovecot (oauth2 passdb) and to
aiosmtpd, both over STARTTLS with a private CA (``ca_file``), with access tokens that go
stale within seconds and refresh tokens that rotate on every refresh. It must refresh,
save each new refresh token and lose no message; a revoked refresh token turns /healthz
to 503 naming ``mentordesk oauth login``, and running that command heals it."""

from __future__ import annotations

import asyncio
import io
import ssl
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mentordesk.cli import main
from mentordesk.oauth import Tokens, load_tokens, save_tokens

from .desk import ENVIRON, Desk, mail
from .oauth_servers import Certificates, OAuthProvider, OAuthSmtpSink, SecureDovecot
from .servers import INSTALL_HINT, PROGRAM_PASSWORD, PROGRAM_USER, dovecot_installed
from .test_robust_inbox import health_until


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    # Tokens live 62 s and the daemon refreshes 60 s before expiry: every login after
    # 2 s needs a refresh, and each refresh rotates the refresh token.
    with OAuthProvider(access_lifetime_s=62) as server:
        yield server


@pytest.fixture
async def oauth_desk(tmp_path: Path, provider: OAuthProvider) -> AsyncIterator[Desk]:
    if not dovecot_installed():
        pytest.fail(INSTALL_HINT, pytrace=False)
    certs = Certificates.make(tmp_path / "certs")
    dovecot = SecureDovecot(certificates=certs, introspection_url=provider.introspection_url)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.chain_file, certs.key_file)
    sink = OAuthSmtpSink(provider, tls=context)
    desk = Desk(tmp_path, dovecot, sink)
    try:
        dovecot.add_user(PROGRAM_USER, PROGRAM_PASSWORD)
        dovecot.start()
        sink.start()
        config = desk.configure(
            inbox={"tls": "starttls", "ca_file": str(certs.ca_file), "auth": "oauth2"},
            smtp={
                "tls": "starttls",
                "ca_file": str(certs.ca_file),
                "auth": "oauth2",
                "username": PROGRAM_USER,
            },
            oauth={
                "provider": "custom",
                "client_id": "mentordesk-test",
                "token_url": provider.token_url,
                "device_url": provider.device_url,
                "scopes": ["mail"],
            },
        )
        assert config.oauth is not None
        save_tokens(config.oauth.token_file, Tokens(provider.grant(PROGRAM_USER)))
        yield desk
    finally:
        await desk.stop()
        sink.stop()
        dovecot.close()


async def asking_for_login(http: aiohttp.ClientSession, desk: Desk) -> dict[str, Any]:
    """Poll /healthz until it answers 503 and both the inbox and SMTP name the command."""
    url = f"http://127.0.0.1:{desk.web_port}/healthz"
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async with http.get(url) as response:
            code, body = response.status, await response.json()
        if code == 503 and all(
            "run `mentordesk oauth login`" in str(body.get(task, "")) for task in ("inbox", "smtp")
        ):
            return dict(body)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/healthz never asked for the login; last: {code} {body}")
        await asyncio.sleep(0.05)


def person(n: int) -> str:
    return f"person{n}@example.net"


async def restart_servers(desk: Desk) -> None:
    """Both servers drop every session: the daemon must log in again, with XOAUTH2."""
    await asyncio.to_thread(desk.dovecot.stop)
    await asyncio.to_thread(desk.dovecot.start)
    await asyncio.to_thread(desk.sink.stop)
    await asyncio.to_thread(desk.sink.start)


@pytest.mark.dovecot
async def test_daemon_refreshes_rotating_tokens_and_loses_no_mail(
    oauth_desk: Desk, provider: OAuthProvider
) -> None:
    desk = oauth_desk
    await desk.start()
    assert desk.config.oauth is not None
    token_file = desk.config.oauth.token_file
    count = 15
    # About 15 s of mail, one message a second, with both servers restarted every 4 s.
    for n in range(count):
        await asyncio.to_thread(desk.send, mail(f"Person {n} <{person(n)}>", "pause", "hi"))
        await asyncio.sleep(1)
        if n % 4 == 3:
            await restart_servers(desk)
    for n in range(count):
        await desk.replies_to(person(n), 1, timeout_s=30)
    await desk.processed(count, timeout_s=30)
    async with desk.store() as store:
        assert [m["status"] for m in store.messages()] == ["done"] * count
    assert provider.refreshes >= 4
    saved = load_tokens(token_file)
    assert provider.refresh_token_valid(saved.refresh_token)  # the last rotation is saved
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert isinstance(desk.sink, OAuthSmtpSink)
    assert set(desk.sink.handler.logins) == {PROGRAM_USER}
    assert len(desk.sink.handler.logins) >= 4  # one per (re)connection
    assert "method=XOAUTH2" in (desk.dovecot.root / "dovecot.log").read_text()


@pytest.mark.dovecot
async def test_revoked_refresh_token_turns_healthz_503_until_oauth_login(
    oauth_desk: Desk,
    provider: OAuthProvider,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desk = oauth_desk
    await desk.start()
    desk.send(mail(f"Person 0 <{person(0)}>", "pause", "hi"))
    await desk.replies_to(person(0), 1)
    await health_until(http, desk, 200)

    # A reply waits in the outbox while the relay is away; then the grant is revoked.
    await asyncio.to_thread(desk.sink.stop)
    desk.send(mail(f"Person 1 <{person(1)}>", "pause", "hi"))
    await desk.processed(2)
    provider.revoke_all()
    await asyncio.to_thread(desk.sink.start)
    await asyncio.to_thread(desk.dovecot.stop)
    await asyncio.to_thread(desk.dovecot.start)
    body = await asking_for_login(http, desk)
    assert body["status"] == "degraded"
    for task in ("inbox", "smtp"):
        assert "invalid_grant" in body[task], body
    desk.send(mail(f"Person 2 <{person(2)}>", "pause", "hi"))
    await asyncio.sleep(1)
    assert desk.sink.messages_to(person(1)) == []
    assert desk.dovecot.count(PROGRAM_USER, "INBOX") == 1  # waits in the mailbox, unread

    # The coordinator logs in again; the daemon picks the new token file up by itself.
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(provider.grant(PROGRAM_USER) + "\n"))
    config = str(desk.config.source)
    code = await asyncio.to_thread(main, ["oauth", "login", "--config", config, "--paste"])
    assert code == 0
    await desk.replies_to(person(1), 1, timeout_s=30)
    await desk.replies_to(person(2), 1, timeout_s=30)
    await health_until(http, desk, 200, timeout_s=30)
