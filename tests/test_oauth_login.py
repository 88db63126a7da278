"""``mentordesk oauth login`` (issue 10): the device-code flow (RFC 8628), the loopback
redirect with PKCE, and a pasted refresh token, against the loopback provider of
tests/oauth_servers.py; the saved token file is what the provider issued."""

from __future__ import annotations

import io
import re
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mentordesk.cli import main
from mentordesk.errors import LoginNeeded, OAuthError
from mentordesk.oauth import Tokens, load_tokens
from mentordesk.oauth_login import (
    DeviceCode,
    device_login,
    loopback_login,
    paste_login,
    read_device_code,
)

from .oauth_servers import OAuthProvider
from .servers import PROGRAM_USER, wait_until
from .test_oauth_tokens import oauth_config


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider() as server:
        yield server


def assert_saved(provider: OAuthProvider, token_file: Path, tokens: Tokens) -> None:
    saved = load_tokens(token_file)
    assert saved == tokens
    assert provider.refresh_token_valid(saved.refresh_token)
    assert provider.access_user(saved.access_token) == PROGRAM_USER
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


# --- the device-code flow ----------------------------------------------------------------------


def test_device_flow_polls_while_pending_then_saves(
    provider: OAuthProvider, tmp_path: Path
) -> None:
    provider.device_interval_s = 1
    provider.add_device_login(
        PROGRAM_USER, ["authorization_pending", "authorization_pending", "ok"]
    )
    said: list[str] = []
    waits: list[float] = []
    token_file = tmp_path / "state" / "oauth-token.json"
    tokens = device_login(oauth_config(provider, token_file), said.append, sleep=waits.append)
    assert waits == [1, 1, 1]  # the interval the provider asked for, before every poll
    assert len(provider.device_polls()) == 3
    assert f"open {provider.url}/verify and enter the code ABCD-EFGH" in said[0]
    assert str(token_file) in said[-1]
    assert_saved(provider, token_file, tokens)
    polls = [r for r in provider.requests if "device_code" in r]
    assert {r["grant_type"] for r in polls} == {"urn:ietf:params:oauth:grant-type:device_code"}
    assert {r["client_id"] for r in polls} == {"mentordesk-test"}


def test_slow_down_adds_five_seconds_for_good(provider: OAuthProvider, tmp_path: Path) -> None:
    provider.device_interval_s = 2
    provider.add_device_login(
        PROGRAM_USER, ["slow_down", "authorization_pending", "slow_down", "ok"]
    )
    waits: list[float] = []
    token_file = tmp_path / "oauth-token.json"
    device_login(oauth_config(provider, token_file), lambda _: None, sleep=waits.append)
    assert waits == [2, 7, 7, 12]
    assert token_file.exists()


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (["authorization_pending", "expired_token"], "the code expired before it was entered"),
        (["access_denied"], "the login was declined"),
        (["invalid_client"], "the token endpoint refused: invalid_client"),
    ],
)
def test_device_flow_failures_save_nothing(
    provider: OAuthProvider, tmp_path: Path, script: list[str], message: str
) -> None:
    provider.add_device_login(PROGRAM_USER, script)
    token_file = tmp_path / "oauth-token.json"
    with pytest.raises(OAuthError, match=message):
        device_login(oauth_config(provider, token_file), lambda _: None, sleep=lambda _: None)
    assert not token_file.exists()


def test_device_flow_gives_up_at_the_codes_expiry(provider: OAuthProvider, tmp_path: Path) -> None:
    provider.device_expires_in_s = 60
    provider.add_device_login(PROGRAM_USER, ["authorization_pending"] * 10)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += 25

    with pytest.raises(OAuthError, match="expired before it was entered; run `mentordesk oauth"):
        device_login(
            oauth_config(provider, tmp_path / "t.json"),
            lambda _: None,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert len(provider.device_polls()) == 3  # at 25 s, 50 s and 75 s


# --- the loopback redirect (Google) -------------------------------------------------------------


def _run_loopback(config: object) -> tuple[list[str], list[object], threading.Thread]:
    said: list[str] = []
    outcome: list[object] = []

    def login() -> None:
        try:
            outcome.append(loopback_login(config, said.append, wait_s=30))  # type: ignore[arg-type]
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=login)
    thread.start()
    wait_until(lambda: said, timeout_s=10)
    return said, outcome, thread


def test_loopback_redirect_with_pkce(provider: OAuthProvider, tmp_path: Path) -> None:
    provider.default_user = PROGRAM_USER
    token_file = tmp_path / "oauth-token.json"
    said, outcome, thread = _run_loopback(oauth_config(provider, token_file, device_url=""))
    url = re.search(r"http://\S+/authorize\?\S+", said[0])
    assert url is not None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url.group()).query)
    assert query["code_challenge_method"] == ["S256"]
    redirect = query["redirect_uri"][0]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", redirect)
    # Another page's redirect (wrong state) is refused and the login keeps waiting.
    with pytest.raises(urllib.error.HTTPError) as forged:
        urllib.request.urlopen(f"{redirect}?code=stolen&state=other", timeout=10)
    assert forged.value.code == 400
    forged.value.close()
    # The browser: the provider's page redirects back to the loopback address.
    with urllib.request.urlopen(url.group(), timeout=10) as page:
        assert b"mentordesk is logged in" in page.read()
    thread.join(10)
    tokens = outcome[0]
    assert isinstance(tokens, Tokens)
    assert_saved(provider, token_file, tokens)
    exchange = [r for r in provider.requests if r.get("grant_type") == "authorization_code"]
    assert exchange[0]["redirect_uri"] == redirect and exchange[0]["code_verifier"]


def test_loopback_redirect_carrying_an_error(provider: OAuthProvider, tmp_path: Path) -> None:
    token_file = tmp_path / "oauth-token.json"
    said, outcome, thread = _run_loopback(oauth_config(provider, token_file, device_url=""))
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(said[0].split()[-1]).query)
    state = query["state"][0]
    redirect = query["redirect_uri"][0]
    with urllib.request.urlopen(f"{redirect}?error=access_denied&state={state}", timeout=10):
        pass
    thread.join(10)
    assert isinstance(outcome[0], OAuthError) and "access_denied" in str(outcome[0])
    assert not token_file.exists()


# --- a pasted refresh token, and the command itself -------------------------------------------


def test_pasted_token_is_checked_and_saved(provider: OAuthProvider, tmp_path: Path) -> None:
    token_file = tmp_path / "oauth-token.json"
    config = oauth_config(provider, token_file)
    tokens = paste_login(config, f"  {provider.grant(PROGRAM_USER)}\n", lambda _: None)
    assert_saved(provider, token_file, tokens)
    with pytest.raises(LoginNeeded, match="invalid_grant"):
        paste_login(config, "rt-made-up", lambda _: None)
    assert load_tokens(token_file) == tokens  # the good file stays


def write_config(tmp_path: Path, provider: OAuthProvider, auth: str = "oauth2") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[program]
name = "Test Mentors"
address = "mentors@program.test"
coordinator = "coord@program.test"
[inbox]
kind = "imap"
host = "127.0.0.1"
tls = "none"
username = "{PROGRAM_USER}"
password_env = "MD_PASSWORD"
auth = "{auth}"
[oauth]
provider = "custom"
client_id = "mentordesk-test"
token_url = "{provider.token_url}"
device_url = "{provider.device_url}"
scopes = ["mail"]
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MENTORDESK_SECRET", "s" * 32)
    monkeypatch.setenv("MD_PASSWORD", "pw")


@pytest.mark.usefixtures("environment")
def test_command_device_flow(
    provider: OAuthProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.add_device_login(PROGRAM_USER, ["authorization_pending", "ok"])
    assert main(["oauth", "login", "--config", str(write_config(tmp_path, provider))]) == 0
    out = capsys.readouterr().out
    assert "enter the code ABCD-EFGH" in out and "Logged in." in out
    token_file = tmp_path / "state" / "oauth-token.json"
    assert provider.refresh_token_valid(load_tokens(token_file).refresh_token)


@pytest.mark.usefixtures("environment")
def test_command_paste(
    provider: OAuthProvider,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = str(write_config(tmp_path, provider))
    monkeypatch.setattr("sys.stdin", io.StringIO(provider.grant(PROGRAM_USER) + "\n"))
    assert main(["oauth", "login", "--config", config, "--paste"]) == 0
    token_file = tmp_path / "state" / "oauth-token.json"
    assert provider.refresh_token_valid(load_tokens(token_file).refresh_token)
    monkeypatch.setattr("sys.stdin", io.StringIO("rt-revoked\n"))
    assert main(["oauth", "login", "--config", config, "--paste"]) == 2
    assert "run `mentordesk oauth login`" in capsys.readouterr().err


@pytest.mark.usefixtures("environment")
def test_command_without_oauth2(
    provider: OAuthProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, provider, auth="password"))
    assert main(["oauth", "login", "--config", config]) == 2
    assert 'neither [inbox] nor [smtp] has auth = "oauth2"' in capsys.readouterr().err


def test_device_code_answers() -> None:
    answer = {"device_code": "d", "user_code": "U", "verification_url": "https://v"}
    assert read_device_code(answer, 200) == DeviceCode("d", "U", "https://v", 900, 5)
    assert read_device_code({**answer, "interval": 0}, 200).interval_s == 1  # no busy polling
    with pytest.raises(OAuthError, match="refused: invalid_client"):
        read_device_code({"error": "invalid_client"}, 400)
    with pytest.raises(OAuthError, match="without a device or user code"):
        read_device_code({"device_code": "d"}, 200)
