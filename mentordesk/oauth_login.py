"""``mentordesk oauth login``: get the first refresh token, once, with a person present.

Three ways, by provider:

- the device-code flow (RFC 8628), for Microsoft and custom providers: we print a URL and
  a short code, the person approves on any device, and we poll the token endpoint;
- a loopback redirect (RFC 8252 §7.3, authorization code with PKCE, RFC 7636), for
  Google, which has no device flow for mail scopes: we listen on 127.0.0.1 on a free port
  and the browser comes back there with the code;
- ``--paste``: a refresh token obtained elsewhere, checked with one refresh.

Each saves the token file (mode 0600) that the daemon's ``TokenKeeper`` reads.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import OAuthError
from .oauth import (
    LOGIN_COMMAND,
    OAuthConfig,
    Tokens,
    authorization_code_body,
    describe_error,
    device_code_body,
    device_token_body,
    error_code,
    post_form,
    refresh_body,
    save_tokens,
    tokens_from_answer,
)

Say = Callable[[str], None]
# RFC 8628 §3.5: "slow_down" means add 5 seconds to the polling interval, for good.
SLOW_DOWN_S = 5.0
DEFAULT_INTERVAL_S = 5.0
MIN_INTERVAL_S = 1.0
REDIRECT_WAIT_S = 300.0


# --- the device-code flow (RFC 8628) ------------------------------------------------------


@dataclass(frozen=True)
class DeviceCode:
    device_code: str
    user_code: str
    verification_uri: str
    expires_in_s: float
    interval_s: float


def read_device_code(answer: dict[str, Any], status: int) -> DeviceCode:
    """RFC 8628 §3.2: the device authorization answer; OAuthError when unusable."""
    if status != 200 or error_code(answer):
        raise OAuthError(f"the device code endpoint refused: {describe_error(answer, status)}")
    # Google's older endpoint says verification_url.
    uri = answer.get("verification_uri") or answer.get("verification_url")
    device, user = answer.get("device_code"), answer.get("user_code")
    if not all(isinstance(v, str) and v for v in (uri, device, user)):
        raise OAuthError("the device code endpoint answered without a device or user code")
    try:
        expires = float(answer.get("expires_in", 900))
        interval = float(answer.get("interval", DEFAULT_INTERVAL_S))
    except (TypeError, ValueError):
        raise OAuthError("the device code endpoint answered a malformed expires_in") from None
    # Never poll faster than once a second, whatever the answer said.
    return DeviceCode(str(device), str(user), str(uri), expires, max(interval, MIN_INTERVAL_S))


def next_poll(answer: dict[str, Any], status: int, interval_s: float) -> float | None:
    """RFC 8628 §3.5: seconds to wait before polling again, or None when the answer
    holds the tokens. OAuthError when the person refused or the code expired."""
    code = error_code(answer)
    if status == 200 and not code:
        return None
    if code == "authorization_pending":
        return interval_s
    if code == "slow_down":
        return interval_s + SLOW_DOWN_S
    if code == "expired_token":
        raise OAuthError(f"the code expired before it was entered; run `{LOGIN_COMMAND}` again")
    if code == "access_denied":
        raise OAuthError("the login was declined on the provider's page")
    raise OAuthError(f"the token endpoint refused: {describe_error(answer, status)}")


def device_login(
    config: OAuthConfig,
    say: Say = print,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Tokens:
    """Run the device-code flow and save the token file; the tokens."""
    if not config.device_url:
        raise OAuthError(
            f"provider {config.provider!r} has no device_url; use `{LOGIN_COMMAND} --paste`"
        )
    status, answer = post_form(config.device_url, device_code_body(config))
    device = read_device_code(answer, status)
    minutes = max(1, int(device.expires_in_s // 60))
    say(
        f"To let mentordesk read and send the program's mail, open {device.verification_uri} "
        f"and enter the code {device.user_code} (within {minutes} minutes)."
    )
    deadline = clock() + device.expires_in_s
    interval = device.interval_s
    while True:
        sleep(interval)
        status, answer = post_form(config.token_url, device_token_body(config, device.device_code))
        wait = next_poll(answer, status, interval)
        if wait is None:
            return _save(config, tokens_from_answer(answer, status, clock()), say)
        if clock() >= deadline:
            raise OAuthError(f"the code expired before it was entered; run `{LOGIN_COMMAND}` again")
        interval = wait


# --- the loopback redirect (authorization code + PKCE) --------------------------------------


def pkce_pair() -> tuple[str, str]:
    """RFC 7636 §4.1-4.2: a code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(config: OAuthConfig, redirect_uri: str, challenge: str, state: str) -> str:
    query = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(config.scopes),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        # Google gives a refresh token only with offline access, and again only on consent.
        "access_type": "offline",
        "prompt": "consent",
    }
    return f"{config.auth_url}?{urllib.parse.urlencode(query)}"


def read_redirect(query: str, state: str) -> str:
    """The authorization code of the redirect's query; OAuthError when it has none or
    its state is not ours (RFC 6749 §10.12: another site's redirect)."""
    params = urllib.parse.parse_qs(query)
    if params.get("state", [""])[0] != state:
        raise OAuthError("the redirect's state does not match this login; not used")
    if "error" in params:
        raise OAuthError(f"the login was refused: {params['error'][0]}")
    code = params.get("code", [""])[0]
    if not code:
        raise OAuthError("the redirect carried no authorization code")
    return code


class _Redirects(http.server.BaseHTTPRequestHandler):
    """Answers the browser's one redirect and hands its query to the waiting login."""

    server: _RedirectServer

    def do_GET(self) -> None:
        query = urllib.parse.urlsplit(self.path).query
        page = b"mentordesk is logged in. You can close this page."
        try:
            read_redirect(query, self.server.state)
        except OAuthError as exc:
            page = f"mentordesk did not log in: {exc}".encode()
            if "state" in str(exc):
                self.send_response(400)
                self._page(page)
                return  # not ours: keep waiting for the real one
        self.send_response(200)
        self._page(page)
        self.server.query = query
        self.server.arrived.set()

    def _page(self, page: bytes) -> None:
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the query holds the code: keep it out of the terminal


class _RedirectServer(http.server.HTTPServer):
    def __init__(self, state: str) -> None:
        super().__init__(("127.0.0.1", 0), _Redirects)
        self.state = state
        self.query = ""
        self.arrived = threading.Event()


def loopback_login(
    config: OAuthConfig, say: Say = print, *, wait_s: float = REDIRECT_WAIT_S
) -> Tokens:
    """Run the authorization code flow through a loopback redirect; save the token file."""
    if not config.auth_url:
        raise OAuthError("[oauth] auth_url is needed for a browser login")
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    server = _RedirectServer(state)
    thread = threading.Thread(target=server.serve_forever, name="oauth-redirect", daemon=True)
    thread.start()
    try:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
        say(
            "Open this address in a browser on this machine and allow mentordesk to use "
            f"the program's mailbox:\n{authorization_url(config, redirect_uri, challenge, state)}"
        )
        if not server.arrived.wait(wait_s):
            raise OAuthError(f"no answer from the browser within {int(wait_s)} s")
    finally:
        server.shutdown()
        server.server_close()
    code = read_redirect(server.query, state)
    body = authorization_code_body(config, code, verifier, redirect_uri)
    status, answer = post_form(config.token_url, body)
    return _save(config, tokens_from_answer(answer, status, time.time()), say)


def paste_login(config: OAuthConfig, refresh_token: str, say: Say = print) -> Tokens:
    """Check a refresh token obtained elsewhere with one refresh; save the token file."""
    refresh_token = refresh_token.strip()
    if not refresh_token:
        raise OAuthError("no refresh token was pasted")
    status, answer = post_form(config.token_url, refresh_body(config, refresh_token))
    return _save(config, tokens_from_answer(answer, status, time.time(), refresh_token), say)


def login(config: OAuthConfig, *, paste: str | None = None, say: Say = print) -> Tokens:
    """The login the provider supports: pasted token, device code, or loopback redirect."""
    if paste is not None:
        return paste_login(config, paste, say)
    if config.device_url:
        return device_login(config, say)
    return loopback_login(config, say)


def _save(config: OAuthConfig, tokens: Tokens, say: Say) -> Tokens:
    save_tokens(config.token_file, tokens)
    say(f"Logged in. The refresh token is in {config.token_file} (readable by you only).")
    return tokens
