"""OAuth2 access tokens for SASL XOAUTH2 logins to IMAP and SMTP (RFC 6749, RFC 8628).

Pure parts: the provider defaults, the token file's format, when to refresh, the form
bodies sent to the token endpoint and how its answers are read. I/O parts: one POST
(``post_form``), the atomic token-file write (``save_tokens``) and ``TokenKeeper``, which
hands out a valid access token to the mailbox thread and to the SMTP sender alike.

The refresh token lives in ``token_file`` (mode 0600). Providers may rotate it on every
refresh; the new one is written (temporary file, fsync, rename) before it is used, so a
crash never leaves the program with only a spent token. A refresh token the provider
refuses (``invalid_grant``) raises ``LoginNeeded``: a person must run
``mentordesk oauth login`` again; the keeper notices the new file by itself.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import LoginNeeded, OAuthError
from .tls import is_loopback

log = logging.getLogger(__name__)

LOGIN_COMMAND = "mentordesk oauth login"
# Refresh this long before the access token expires: a login must not race its expiry.
REFRESH_MARGIN_S = 60.0
# Token endpoint answers are small JSON objects; anything bigger is not one.
MAX_ANSWER_BYTES = 64_000
HTTP_TIMEOUT_S = 30.0
TOKEN_FILE_VERSION = 1

_MICROSOFT = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
PROVIDER_SCOPES = {
    "microsoft": (
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ),
    "google": ("https://mail.google.com/",),
    "custom": (),
}


@dataclass(frozen=True)
class OAuthConfig:
    """The [oauth] table, with the provider's defaults filled in."""

    provider: str
    client_id: str
    client_secret_env: str
    tenant: str
    token_url: str
    device_url: str  # "" where the provider has no device-code flow (google)
    auth_url: str  # the authorization endpoint of the loopback redirect flow
    scopes: tuple[str, ...]
    token_file: Path
    client_secret: str = field(default="", repr=False)


def provider_endpoints(provider: str, tenant: str) -> dict[str, str]:
    """The token, device and authorization URLs a provider uses ({} for custom)."""
    if provider == "microsoft":
        base = _MICROSOFT.format(tenant=tenant)
        return {
            "token_url": f"{base}/token",
            "device_url": f"{base}/devicecode",
            "auth_url": f"{base}/authorize",
        }
    if provider == "google":
        return {
            "token_url": "https://oauth2.googleapis.com/token",
            "device_url": "",
            "auth_url": "https://accounts.google.com/o/oauth2/v2/auth",
        }
    return {}


def oauth_settings(
    values: Mapping[str, Any], state_dir: Path, client_secret: str, fail: Callable[..., Exception]
) -> OAuthConfig:
    """The checked [oauth] table with the provider's defaults, for auth = "oauth2".

    ``fail(table, key, reason, example)`` builds the ConfigError raised.
    """
    provider = values["provider"]
    if not values["client_id"].strip():
        raise fail("oauth", "client_id", 'is required with auth = "oauth2"', '"0000-..."')
    if provider == "google" and not values["client_secret_env"]:
        # Google's "Desktop app" clients come with a secret its token endpoint wants.
        raise fail(
            "oauth", "client_secret_env", 'is required with provider = "google"', '"GOOGLE_SECRET"'
        )
    urls = provider_endpoints(provider, values["tenant"])
    for key in ("token_url", "device_url", "auth_url"):
        given = values[key].strip()
        if given:
            urls[key] = given
        elif provider == "custom" and key != "auth_url":
            raise fail(
                "oauth", key, 'is required with provider = "custom"', '"https://sso.org/token"'
            )
        url = urls.get(key, "")
        parsed = urllib.parse.urlsplit(url)
        if url and (
            parsed.scheme not in ("https", "http")
            or not parsed.hostname
            or (parsed.scheme == "http" and not is_loopback(parsed.hostname))
        ):
            # Refresh tokens go there: plain http only to this machine.
            raise fail("oauth", key, f"{url!r} is not an https URL", '"https://sso.org/token"')
    scopes = tuple(values["scopes"]) or PROVIDER_SCOPES[provider]
    if not scopes:
        raise fail("oauth", "scopes", 'is required with provider = "custom"', '["mail"]')
    token_file = values["token_file"].strip() or "oauth-token.json"
    return OAuthConfig(
        provider=provider,
        client_id=values["client_id"].strip(),
        client_secret_env=values["client_secret_env"],
        tenant=values["tenant"],
        token_url=urls["token_url"],
        device_url=urls.get("device_url", ""),
        auth_url=urls.get("auth_url", ""),
        scopes=scopes,
        token_file=(state_dir / token_file).resolve(),
        client_secret=client_secret,
    )


# --- the token file ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    """What the token file holds. ``expires_at`` is a Unix time; 0 means "no access token"."""

    refresh_token: str = field(repr=False)
    access_token: str = field(default="", repr=False)
    expires_at: float = 0.0


def parse_token_file(text: str) -> Tokens:
    """The tokens in a token file's text; ValueError saying what is wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ValueError("is not a JSON object")
    refresh = raw.get("refresh_token")
    if not isinstance(refresh, str) or not refresh.strip():
        raise ValueError("holds no refresh_token")
    access = raw.get("access_token", "")
    expires = raw.get("expires_at", 0)
    if not isinstance(access, str) or not isinstance(expires, int | float):
        raise ValueError("has a malformed access_token or expires_at")
    return Tokens(refresh.strip(), access, float(expires) if access else 0.0)


def token_file_text(tokens: Tokens) -> str:
    return json.dumps(
        {
            "version": TOKEN_FILE_VERSION,
            "refresh_token": tokens.refresh_token,
            "access_token": tokens.access_token,
            "expires_at": tokens.expires_at,
        },
        indent=1,
    )


def needs_refresh(tokens: Tokens, now: float, margin_s: float = REFRESH_MARGIN_S) -> bool:
    """Whether the access token is missing or expires within ``margin_s``."""
    return not tokens.access_token or tokens.expires_at - margin_s <= now


# --- what is sent to the token endpoint, and how its answers are read -----------------------


def _client(config: OAuthConfig) -> dict[str, str]:
    body = {"client_id": config.client_id}
    if config.client_secret:
        body["client_secret"] = config.client_secret
    return body


def refresh_body(config: OAuthConfig, refresh_token: str) -> dict[str, str]:
    """RFC 6749 §6: trade the refresh token for a new access token."""
    return {
        **_client(config),
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "scope": " ".join(config.scopes),
    }


def device_code_body(config: OAuthConfig) -> dict[str, str]:
    """RFC 8628 §3.1: ask for a device code and a user code."""
    return {**_client(config), "scope": " ".join(config.scopes)}


def device_token_body(config: OAuthConfig, device_code: str) -> dict[str, str]:
    """RFC 8628 §3.4: ask whether the person has approved yet."""
    return {
        **_client(config),
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": device_code,
    }


def authorization_code_body(
    config: OAuthConfig, code: str, verifier: str, redirect_uri: str
) -> dict[str, str]:
    """RFC 6749 §4.1.3 with the PKCE verifier of RFC 7636 §4.5."""
    return {
        **_client(config),
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": redirect_uri,
    }


def error_code(answer: Mapping[str, Any]) -> str:
    """The RFC 6749 §5.2 ``error`` of an answer; "" when there is none."""
    code = answer.get("error", "")
    return code if isinstance(code, str) else "invalid_answer"


def describe_error(answer: Mapping[str, Any], status: int) -> str:
    code = error_code(answer) or f"HTTP {status}"
    text = answer.get("error_description", "")
    first_line = text.strip().splitlines()[0] if isinstance(text, str) and text.strip() else ""
    return f"{code}: {first_line[:200]}" if first_line else code


def tokens_from_answer(
    answer: Mapping[str, Any], status: int, now: float, previous_refresh: str = ""
) -> Tokens:
    """The tokens in a successful answer (RFC 6749 §5.1), keeping ``previous_refresh``
    when the provider does not rotate it. Raises LoginNeeded for ``invalid_grant``,
    OAuthError for any other refusal or a malformed answer."""
    if status != 200 or error_code(answer):
        reason = describe_error(answer, status)
        if error_code(answer) == "invalid_grant":
            raise LoginNeeded(
                f"the OAuth2 provider refused the refresh token ({reason}); "
                f"run `{LOGIN_COMMAND}` to log in again"
            )
        raise OAuthError(f"the OAuth2 token endpoint refused: {reason}")
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthError("the OAuth2 token endpoint answered without an access_token")
    try:
        lifetime = float(answer.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    refresh = answer.get("refresh_token") or previous_refresh
    if not isinstance(refresh, str) or not refresh:
        raise OAuthError(
            "the OAuth2 token endpoint gave no refresh token; ask for offline access "
            "(Microsoft: the offline_access scope)"
        )
    return Tokens(refresh, access, now + max(lifetime, 0.0))


# --- I/O ---------------------------------------------------------------------------------------


def post_form(url: str, body: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """POST ``body`` form-encoded to ``url``; the HTTP status and the JSON object answered.

    Raises OAuthError when the endpoint cannot be reached or answers something else.
    """
    data = urllib.parse.urlencode(body).encode("ascii")
    request = urllib.request.Request(
        url, data=data, headers={"Accept": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            status, raw = response.status, response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        # 400 and 401 carry the RFC 6749 §5.2 error object.
        with exc:
            status, raw = exc.code, exc.read(MAX_ANSWER_BYTES + 1)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OAuthError(f"cannot reach the OAuth2 endpoint {url}: {reason}") from exc
    if len(raw) > MAX_ANSWER_BYTES:
        raise OAuthError(f"the OAuth2 endpoint {url} answered more than {MAX_ANSWER_BYTES} bytes")
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise OAuthError(f"the OAuth2 endpoint {url} answered HTTP {status} without JSON") from None
    if not isinstance(answer, dict):
        raise OAuthError(f"the OAuth2 endpoint {url} answered HTTP {status} without an object")
    return status, answer


def save_tokens(path: Path, tokens: Tokens) -> None:
    """Write ``tokens`` to ``path`` atomically, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(token_file_text(tokens))
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    # The rename is durable once the folder is.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_tokens(path: Path) -> Tokens:
    """The tokens in ``path``; LoginNeeded when there are none to use."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoginNeeded(
            f"no OAuth2 token file at {path}; run `{LOGIN_COMMAND}` to log in"
        ) from None
    except OSError as exc:
        raise OAuthError(f"cannot read the OAuth2 token file {path}: {exc}") from exc
    try:
        return parse_token_file(text)
    except ValueError as exc:
        raise LoginNeeded(
            f"the OAuth2 token file {path} {exc}; run `{LOGIN_COMMAND}` to log in again"
        ) from None


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class TokenKeeper:
    """Hands out a valid access token; one per token file, shared by IMAP and SMTP.

    Thread-safe (the mailbox thread and the event loop's worker threads call it). It
    rereads the token file when it changed (``mentordesk oauth login`` ran meanwhile).
    """

    def __init__(self, config: OAuthConfig, *, clock: Any = time.time) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: Tokens | None = None
        self._stamp: tuple[int, int, int] | None = None
        # The refresh token the provider refused, and why: not offered again (nor logged
        # again) until a new login changes the token file.
        self._refused: tuple[str, LoginNeeded] | None = None
        self.refreshes = 0  # how many refreshes succeeded, for the logs and tests

    def access_token(self, *, refused: str = "") -> str:
        """A valid access token. ``refused`` is one the server just turned down: it is
        not handed out again. Raises LoginNeeded or OAuthError."""
        with self._lock:
            tokens = self._current()
            if needs_refresh(tokens, self._clock()) or (refused and tokens.access_token == refused):
                tokens = self._refresh(tokens)
            return tokens.access_token

    def _current(self) -> Tokens:
        path = self.config.token_file
        stamp = _file_stamp(path)
        if self._tokens is None or stamp != self._stamp:
            self._tokens = load_tokens(path)
            self._stamp = stamp
        return self._tokens

    def _refresh(self, tokens: Tokens) -> Tokens:
        if self._refused is not None and self._refused[0] == tokens.refresh_token:
            raise self._refused[1]
        now = self._clock()
        try:
            status, answer = post_form(
                self.config.token_url, refresh_body(self.config, tokens.refresh_token)
            )
            fresh = tokens_from_answer(answer, status, now, tokens.refresh_token)
        except LoginNeeded as exc:
            log.error("OAuth2: %s", exc)
            self._refused = (tokens.refresh_token, exc)
            raise
        save_tokens(self.config.token_file, fresh)
        self._tokens, self._stamp = fresh, _file_stamp(self.config.token_file)
        self.refreshes += 1
        log.info(
            "OAuth2: access token refreshed (valid %ds%s)",
            int(fresh.expires_at - now),
            ", new refresh token saved" if fresh.refresh_token != tokens.refresh_token else "",
        )
        return fresh


_keepers: dict[Path, TokenKeeper] = {}
_keepers_lock = threading.Lock()


def shared_keeper(config: OAuthConfig) -> TokenKeeper:
    """The one TokenKeeper of ``config.token_file`` in this process.

    IMAP and SMTP must share it: with rotating refresh tokens, two keepers refreshing
    with the same token at once would leave one of them with a spent token.
    """
    path = config.token_file.resolve()
    with _keepers_lock:
        keeper = _keepers.get(path)
        if keeper is None or keeper.config != replace(config, token_file=keeper.config.token_file):
            keeper = _keepers[path] = TokenKeeper(config)
        return keeper
