"""OAuth2 tokens (issue 10): the token file, the refresh decision, the token endpoint's
answers, and TokenKeeper against a real loopback provider (tests/oauth_servers.py);
plus the [oauth], auth, ca_file and tls checks of config.toml."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mentordesk.config import load_config
from mentordesk.errors import ConfigError, LoginNeeded, OAuthError
from mentordesk.oauth import (
    OAuthConfig,
    TokenKeeper,
    Tokens,
    load_tokens,
    needs_refresh,
    parse_token_file,
    refresh_body,
    save_tokens,
    token_file_text,
    tokens_from_answer,
)

from .oauth_servers import OAuthProvider
from .servers import PROGRAM_USER

SECRET = {"MENTORDESK_SECRET": "s" * 32}
PROGRAM = """
[program]
name = "Test Mentors"
address = "mentors@program.test"
coordinator = "coord@program.test"
"""


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    # Tokens live 63 s; the keeper refreshes 60 s before expiry, so after 3 s.
    with OAuthProvider(access_lifetime_s=63) as server:
        yield server


def oauth_config(provider: OAuthProvider, token_file: Path, **changes: object) -> OAuthConfig:
    settings: dict[str, object] = {
        "provider": "custom",
        "client_id": "mentordesk-test",
        "client_secret_env": "",
        "tenant": "common",
        "token_url": provider.token_url,
        "device_url": provider.device_url,
        "auth_url": provider.auth_url,
        "scopes": ("mail",),
        "token_file": token_file,
    }
    settings.update(changes)
    return OAuthConfig(**settings)  # type: ignore[arg-type]


# --- pure parts ------------------------------------------------------------------------------


def test_token_file_round_trip_and_bad_files() -> None:
    tokens = Tokens("rt-1", "at-1", 1000.0)
    assert parse_token_file(token_file_text(tokens)) == tokens
    assert parse_token_file('{"refresh_token": " rt-2 "}') == Tokens("rt-2")
    for text, reason in [
        ("not json", "is not JSON"),
        ("[]", "is not a JSON object"),
        ('{"access_token": "x"}', "holds no refresh_token"),
        ('{"refresh_token": "r", "expires_at": "soon", "access_token": "a"}', "malformed"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_token_file(text)
    assert "rt-1" not in repr(tokens) and "at-1" not in repr(tokens)


def test_refresh_is_needed_within_the_margin_or_without_an_access_token() -> None:
    assert needs_refresh(Tokens("r"), now=0)
    assert needs_refresh(Tokens("r", "a", expires_at=1000), now=941)
    assert not needs_refresh(Tokens("r", "a", expires_at=1000), now=939)
    assert needs_refresh(Tokens("r", "a", expires_at=1000), now=990, margin_s=5) is False
    assert needs_refresh(Tokens("r", "a", expires_at=1000), now=996, margin_s=5)


def test_answers_of_the_token_endpoint(tmp_path: Path) -> None:
    fresh = tokens_from_answer({"access_token": "a", "expires_in": 10}, 200, 100.0, "old")
    assert fresh == Tokens("old", "a", 110.0)  # not rotated: the old one stays
    rotated = tokens_from_answer({"access_token": "a", "refresh_token": "new"}, 200, 0.0)
    assert rotated.refresh_token == "new" and rotated.expires_at == 3600.0
    with pytest.raises(LoginNeeded, match="run `mentordesk oauth login`"):
        tokens_from_answer({"error": "invalid_grant", "error_description": "revoked"}, 400, 0)
    with pytest.raises(OAuthError, match="invalid_client: bad secret") as refused:
        tokens_from_answer({"error": "invalid_client", "error_description": "bad secret"}, 401, 0)
    assert not isinstance(refused.value, LoginNeeded)
    with pytest.raises(OAuthError, match="without an access_token"):
        tokens_from_answer({"token_type": "Bearer"}, 200, 0)
    with pytest.raises(OAuthError, match="no refresh token"):
        tokens_from_answer({"access_token": "a"}, 200, 0)


def test_refresh_body_carries_the_client_secret_only_when_there_is_one(tmp_path: Path) -> None:
    public = OAuthConfig("custom", "id", "", "common", "u", "d", "", ("a", "b"), tmp_path / "t")
    body = refresh_body(public, "rt")
    assert body == {
        "client_id": "id",
        "grant_type": "refresh_token",
        "refresh_token": "rt",
        "scope": "a b",
    }
    confidential = OAuthConfig(
        "google", "id", "X", "common", "u", "", "", ("a",), tmp_path / "t", client_secret="s3"
    )
    assert refresh_body(confidential, "rt")["client_secret"] == "s3"


def test_token_file_is_written_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "oauth-token.json"
    save_tokens(path, Tokens("rt-1", "at", 5.0))
    save_tokens(path, Tokens("rt-2", "at", 6.0))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["refresh_token"] == "rt-2"
    assert [p.name for p in path.parent.iterdir()] == ["oauth-token.json"]  # no temp left


def test_a_missing_or_broken_token_file_names_the_login_command(tmp_path: Path) -> None:
    with pytest.raises(LoginNeeded, match=r"no OAuth2 token file at .*mentordesk oauth login"):
        load_tokens(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(LoginNeeded, match=r"is not JSON.*mentordesk oauth login"):
        load_tokens(tmp_path / "broken.json")


# --- TokenKeeper against the loopback provider ------------------------------------------------


def test_keeper_refreshes_before_expiry_and_saves_each_rotated_token(
    provider: OAuthProvider, tmp_path: Path
) -> None:
    token_file = tmp_path / "oauth-token.json"
    save_tokens(token_file, Tokens(provider.grant(PROGRAM_USER)))
    now = [1_000_000.0]
    keeper = TokenKeeper(oauth_config(provider, token_file), clock=lambda: now[0])
    first = keeper.access_token()
    assert provider.access_user(first) == PROGRAM_USER
    assert keeper.access_token() == first  # still 63 s to go: no refresh
    now[0] += 2.9
    assert keeper.access_token() == first
    seen = {first}
    for _ in range(3):
        now[0] += 3.1  # within 60 s of expiry: refresh, and the provider rotates
        token = keeper.access_token()
        assert token not in seen
        seen.add(token)
        saved = load_tokens(token_file)
        assert saved.access_token == token
        assert provider.refresh_token_valid(saved.refresh_token)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert provider.refreshes == 4
    assert keeper.refreshes == 4


def test_keeper_refreshes_a_token_the_server_refused(
    provider: OAuthProvider, tmp_path: Path
) -> None:
    token_file = tmp_path / "oauth-token.json"
    save_tokens(token_file, Tokens(provider.grant(PROGRAM_USER)))
    keeper = TokenKeeper(oauth_config(provider, token_file))
    first = keeper.access_token()
    second = keeper.access_token(refused=first)
    assert second != first and provider.refreshes == 2
    assert keeper.access_token(refused=first) == second  # the refusal was of the old one


def test_revoked_refresh_token_raises_login_needed_and_a_new_login_is_picked_up(
    provider: OAuthProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "oauth-token.json"
    save_tokens(token_file, Tokens(provider.grant(PROGRAM_USER)))
    keeper = TokenKeeper(oauth_config(provider, token_file))
    spent = keeper.access_token()
    provider.revoke_all()
    with pytest.raises(LoginNeeded, match=r"invalid_grant.*run `mentordesk oauth login`"):
        keeper.access_token(refused=spent)
    assert "run `mentordesk oauth login`" in caplog.text
    assert load_tokens(token_file).access_token == spent  # nothing overwritten
    # `mentordesk oauth login` writes a new file; the keeper reads it without a restart.
    save_tokens(token_file, Tokens(provider.grant(PROGRAM_USER)))
    fresh = keeper.access_token(refused=spent)
    assert provider.access_user(fresh) == PROGRAM_USER


def test_an_unreachable_token_endpoint_is_an_oauth_error(tmp_path: Path) -> None:
    token_file = tmp_path / "oauth-token.json"
    save_tokens(token_file, Tokens("rt"))
    with OAuthProvider() as gone:
        config = oauth_config(gone, token_file)
    with pytest.raises(OAuthError, match="cannot reach the OAuth2 endpoint") as error:
        TokenKeeper(config).access_token()
    assert not isinstance(error.value, LoginNeeded)


# --- config.toml -----------------------------------------------------------------------------


def load(tmp_path: Path, text: str, **env: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(PROGRAM + text, encoding="utf-8")
    return load_config(path, environ={**SECRET, **env})


IMAP_OAUTH = """
[inbox]
kind = "imap"
host = "outlook.office365.com"
username = "mentors@program.test"
auth = "oauth2"
"""


def test_microsoft_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, IMAP_OAUTH + '[oauth]\nclient_id = "abc"\ntenant = "program.test"\n')
    oauth = config.oauth  # type: ignore[attr-defined]
    assert oauth is not None and config.inbox.oauth == oauth  # type: ignore[attr-defined]
    base = "https://login.microsoftonline.com/program.test/oauth2/v2.0"
    assert (oauth.token_url, oauth.device_url) == (f"{base}/token", f"{base}/devicecode")
    assert oauth.scopes == (
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    )
    assert oauth.token_file == (tmp_path / "state" / "oauth-token.json").resolve()
    assert config.inbox.password == ""  # type: ignore[attr-defined]


def test_google_defaults_and_client_secret(tmp_path: Path) -> None:
    text = IMAP_OAUTH + '[oauth]\nprovider = "google"\nclient_id = "g"\nclient_secret_env = "G"\n'
    config = load(tmp_path, text, G="shh")
    oauth = config.oauth  # type: ignore[attr-defined]
    assert oauth.scopes == ("https://mail.google.com/",)
    assert oauth.device_url == "" and oauth.token_url == "https://oauth2.googleapis.com/token"
    assert oauth.client_secret == "shh" and "shh" not in repr(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[oauth]\n", r"\[oauth\] client_id: is required with auth = \"oauth2\""),
        (
            '[oauth]\nclient_id = "c"\nprovider = "custom"\n',
            r"\[oauth\] token_url: is required with provider = \"custom\"",
        ),
        (
            '[oauth]\nclient_id = "c"\nprovider = "custom"\ntoken_url = "https://t/x"\n',
            r"\[oauth\] device_url: is required with provider = \"custom\"",
        ),
        (
            '[oauth]\nclient_id = "c"\ntoken_url = "http://sso.example.org/token"\n',
            r"\[oauth\] token_url: 'http://sso.example.org/token' is not an https URL",
        ),
        (
            '[oauth]\nclient_id = "c"\nclient_secret_env = "NOPE"\n',
            r"\[oauth\] client_secret_env: the environment variable NOPE is not set",
        ),
        ('[oauth]\nclient_id = "c"\nprovider = "yahoo"\n', r"\[oauth\] provider: 'yahoo' is not"),
        (
            '[oauth]\nclient_id = "c"\nprovider = "google"\n',
            r"\[oauth\] client_secret_env: is required with provider = \"google\"",
        ),
        ('[oauth]\nclient_id = "c"\nscopes = 3\n', r"\[oauth\] scopes: expected a list"),
    ],
)
def test_bad_oauth_tables_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, IMAP_OAUTH + text)


def test_oauth2_needs_a_username(tmp_path: Path) -> None:
    text = '[smtp]\nkind = "smtp"\nhost = "smtp.office365.com"\nauth = "oauth2"\n'
    with pytest.raises(ConfigError, match=r'\[smtp\] username: is required with auth = "oauth2"'):
        load(tmp_path, text + '[oauth]\nclient_id = "c"\n')


def test_oauth2_for_the_inbox_only_leaves_smtp_on_its_password(tmp_path: Path) -> None:
    smtp = '[smtp]\nkind = "smtp"\nhost = "relay.test"\nusername = "m"\npassword_env = "P"\n'
    config = load(tmp_path, IMAP_OAUTH + smtp + '[oauth]\nclient_id = "c"\n', P="pw")
    assert config.inbox.oauth is not None  # type: ignore[attr-defined]
    assert config.smtp.oauth is None and config.smtp.password == "pw"  # type: ignore[attr-defined]


def test_the_oauth_table_is_ignored_without_oauth2(tmp_path: Path) -> None:
    config = load(tmp_path, '[oauth]\nprovider = "custom"\n')
    assert config.oauth is None  # type: ignore[attr-defined]


# --- TLS settings ------------------------------------------------------------------------------


def test_a_password_to_a_remote_host_without_tls_is_refused(tmp_path: Path) -> None:
    text = (
        '[inbox]\nkind = "imap"\nhost = "imap.program.test"\ntls = "none"\n'
        'username = "mentors@program.test"\npassword_env = "P"\n'
    )
    with pytest.raises(
        ConfigError,
        match=r'\[inbox\] tls: "none" would send the password or '
        r"token to imap.program.test unencrypted",
    ):
        load(tmp_path, text, P="pw")
    smtp = (
        '[smtp]\nkind = "smtp"\nhost = "10.0.0.5"\ntls = "none"\nusername = "m@program.test"\n'
        'auth = "oauth2"\n[oauth]\nclient_id = "c"\n'
    )
    with pytest.raises(ConfigError, match=r"\[smtp\] tls: .* to 10.0.0.5 unencrypted"):
        load(tmp_path, smtp)
    no_user = '[inbox]\nkind = "imap"\nhost = "imap.program.test"\ntls = "none"\n'
    with pytest.raises(ConfigError, match=r"\[inbox\] username: is required"):
        load(tmp_path, no_user)  # IMAP always logs in, so a user is needed first


def test_plaintext_is_allowed_to_loopback_and_without_credentials(tmp_path: Path) -> None:
    local = '[inbox]\nkind = "imap"\nhost = "127.0.0.1"\ntls = "none"\nusername = "m"\n'
    load(tmp_path, local + 'password_env = "P"\n', P="pw")
    load(tmp_path, '[smtp]\nkind = "smtp"\nhost = "relay.program.test"\ntls = "none"\n')


def test_ca_file_is_resolved_and_checked(tmp_path: Path) -> None:
    from .oauth_servers import Certificates

    certs = Certificates.make(tmp_path / "certs")
    text = '[smtp]\nkind = "smtp"\nhost = "relay.program.test"\n'
    text += f'ca_file = "certs/{certs.ca_file.name}"\n'
    config = load(tmp_path, text)
    assert config.smtp.ca_file == certs.ca_file.resolve()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"\[smtp\] ca_file: .*missing.pem is not a readable PEM"):
        load(tmp_path, text.replace(certs.ca_file.name, "missing.pem"))
    (tmp_path / "garbage.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"\[inbox\] ca_file: .*garbage.pem is not a readable"):
        load(
            tmp_path,
            '[inbox]\nkind = "imap"\nhost = "imap.program.test"\nca_file = "garbage.pem"\n'
            'username = "m"\npassword_env = "P"\n',
            P="pw",
        )
