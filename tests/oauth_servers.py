"""Real parts for the OAuth2 and TLS tests: a loopback OAuth2 provider, Dovecot with its
``oauth2`` passdb and TLS, and the SMTP sink with an XOAUTH2 authenticator.

``OAuthProvider`` is an aiohttp server on 127.0.0.1 (its own thread and event loop, so
sync tests, async tests, Dovecot's auth process and the daemon all reach it alike). It
speaks the token endpoint of RFC 6749 (refresh, authorization code with PKCE, RFC 8628
device code), a device authorization endpoint, an authorization endpoint that redirects
at once (the person has "approved"), and RFC 7662 token introspection, which Dovecot
calls for each XOAUTH2 login. Access tokens live ``access_lifetime_s``; every refresh
rotates the refresh token and spends the old one, as Microsoft does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from tests.servers import LOOPBACK, Dovecot, SmtpSink, _SinkHandler, free_port


@dataclass
class _Device:
    """One device-code login: the answers the token endpoint gives, in order."""

    user: str
    script: list[str]
    polls: list[float] = field(default_factory=list)  # time.monotonic() of each poll


class OAuthProvider:
    """A loopback OAuth2 provider for one or more mailbox users."""

    def __init__(self, *, access_lifetime_s: float = 3600.0, rotate: bool = True) -> None:
        self.access_lifetime_s = access_lifetime_s
        self.rotate = rotate
        self._lock = threading.Lock()
        self._refresh: dict[str, str] = {}  # refresh token → user
        self._access: dict[str, tuple[str, float]] = {}  # access token → (user, expiry)
        self._devices: dict[str, _Device] = {}
        self._codes: dict[str, tuple[str, str, str]] = {}  # code → (user, challenge, uri)
        self.refreshes = 0
        self.introspections = 0
        self.device_interval_s = 0
        self.device_expires_in_s = 600
        self.requests: list[dict[str, str]] = []  # every form posted to the token endpoint
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    token_url = property(lambda self: f"{self.url}/token")
    device_url = property(lambda self: f"{self.url}/device")
    auth_url = property(lambda self: f"{self.url}/authorize")
    introspection_url = property(lambda self: f"{self.url}/introspect")

    def start(self) -> None:
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the OAuth2 test provider did not start")

    def close(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> OAuthProvider:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what tests arrange and look at -----------------------------------------------------

    def grant(self, user: str) -> str:
        """A new valid refresh token for ``user``."""
        token = "rt-" + secrets.token_urlsafe(16)
        with self._lock:
            self._refresh[token] = user
        return token

    def revoke_all(self) -> None:
        """Every refresh and access token stops working (a password change, say)."""
        with self._lock:
            self._refresh.clear()
            self._access.clear()

    def expire_access_tokens(self) -> None:
        """Every access token is refused from now on, though not yet past its expiry."""
        with self._lock:
            self._access.clear()

    def refresh_token_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._refresh

    def access_user(self, token: str) -> str | None:
        """The user of a valid, unexpired access token, else None."""
        with self._lock:
            user, expiry = self._access.get(token, ("", 0.0))
        return user if user and expiry > time.time() else None

    def add_device_login(self, user: str, script: list[str]) -> None:
        """The next device-code login answers ``script`` (RFC 8628 error codes, or "ok")."""
        with self._lock:
            self._devices["next"] = _Device(user, list(script))

    def device_polls(self) -> list[float]:
        with self._lock:
            return [p for d in self._devices.values() for p in d.polls]

    # -- the server -------------------------------------------------------------------------

    def _serve(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/device", self._device)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/introspect", self._introspect)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        started.set()
        loop.run_forever()
        loop.close()

    def _issue(self, user: str) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(16)
        refresh = "rt-" + secrets.token_urlsafe(16)
        self._access[access] = (user, time.time() + self.access_lifetime_s)
        self._refresh[refresh] = user
        return {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": self.access_lifetime_s,
            "refresh_token": refresh,
        }

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        with self._lock:
            self.requests.append(form)
            answer, status = self._token_answer(form)
        return web.json_response(answer, status=status)

    def _token_answer(self, form: dict[str, str]) -> tuple[dict[str, Any], int]:
        grant = form.get("grant_type")
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            user = self._refresh.get(token)
            if user is None:
                return {"error": "invalid_grant", "error_description": "AADSTS70000"}, 400
            if self.rotate:
                del self._refresh[token]
            self.refreshes += 1
            answer = self._issue(user)
            if not self.rotate:
                del self._refresh[answer["refresh_token"]]
                answer.pop("refresh_token")
            return answer, 200
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            device = self._devices.get(form.get("device_code", ""))
            if device is None:
                return {"error": "invalid_grant"}, 400
            device.polls.append(time.monotonic())
            step = device.script.pop(0) if device.script else "expired_token"
            if step == "ok":
                return self._issue(device.user), 200
            return {"error": step}, 400
        if grant == "authorization_code":
            user, challenge, uri = self._codes.pop(form.get("code", ""), ("", "", ""))
            verifier = form.get("code_verifier", "").encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
            if not user or digest.decode() != challenge or form.get("redirect_uri") != uri:
                return {"error": "invalid_grant"}, 400
            return self._issue(user), 200
        return {"error": "unsupported_grant_type"}, 400

    async def _device(self, request: web.Request) -> web.Response:
        form = await request.post()
        with self._lock:
            device = self._devices.pop("next", None)
            if device is None or not form.get("client_id"):
                return web.json_response({"error": "invalid_request"}, status=400)
            code = "dc-" + secrets.token_urlsafe(8)
            self._devices[code] = device
        return web.json_response(
            {
                "device_code": code,
                "user_code": "ABCD-EFGH",
                "verification_uri": f"{self.url}/verify",
                "expires_in": self.device_expires_in_s,
                "interval": self.device_interval_s,
            }
        )

    async def _authorize(self, request: web.Request) -> web.Response:
        """The person approved at once: redirect back with a code (RFC 6749 §4.1.2)."""
        query = request.query
        user = query.get("login_hint", "")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return web.Response(status=400, text="PKCE S256 required")
        code = "ac-" + secrets.token_urlsafe(8)
        uri = query["redirect_uri"]
        with self._lock:
            self._codes[code] = (user or self.default_user, query["code_challenge"], uri)
        state = query.get("state", "")
        raise web.HTTPFound(f"{uri}?code={code}&state={state}")

    default_user = ""

    async def _introspect(self, request: web.Request) -> web.Response:
        """RFC 7662, as Dovecot's oauth2 passdb asks (introspection_mode = post)."""
        form = await request.post()
        user = self.access_user(str(form.get("token", "")))
        with self._lock:
            self.introspections += 1
        if user is None:
            return web.json_response({"active": "false"})
        return web.json_response({"active": "true", "username": user})


# --- Dovecot with TLS and/or the oauth2 passdb ------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A trustme CA and a certificate it issued for 127.0.0.1, written as PEM files."""

    ca_file: Path  # the CA certificate, for ca_file
    chain_file: Path  # the server's certificate chain
    key_file: Path  # the server's private key

    @classmethod
    def make(cls, folder: Path) -> Certificates:
        ca = trustme.CA()
        cert = ca.issue_cert(LOOPBACK, "localhost")
        folder.mkdir(parents=True, exist_ok=True)
        paths = cls(folder / "ca.pem", folder / "chain.pem", folder / "key.pem")
        ca.cert_pem.write_to_path(str(paths.ca_file))
        cert.private_key_pem.write_to_path(str(paths.key_file))
        with paths.chain_file.open("wb") as chain:
            for blob in cert.cert_chain_pems:
                chain.write(blob.bytes())
        for path in (paths.ca_file, paths.chain_file, paths.key_file):
            path.chmod(0o644)  # Dovecot's config reader may run as another user
        return paths


class SecureDovecot(Dovecot):
    """Dovecot with STARTTLS on ``port`` and implicit TLS on ``tls_port`` (when given
    certificates), and XOAUTH2/OAUTHBEARER checked by introspection at ``introspection_url``
    (when given)."""

    def __init__(
        self, *, certificates: Certificates | None = None, introspection_url: str = ""
    ) -> None:
        super().__init__()
        self.certificates = certificates
        self.introspection_url = introspection_url
        self.tls_port = free_port() if certificates is not None else 0

    def _adjust_config(self, text: str) -> str:
        if self.certificates is not None:
            cert = self.certificates
            text = text.replace(
                "ssl = no\n",
                f"ssl = yes\nssl_cert = <{cert.chain_file}\nssl_key = <{cert.key_file}\n",
            )
            imaps = f"  inet_listener imaps {{\n    address = {self.host}\n"
            text = text.replace(
                "  inet_listener imaps {\n    port = 0\n", f"{imaps}    port = {self.tls_port}\n"
            )
        if self.introspection_url:
            settings = self.root / "dovecot-oauth2.conf.ext"
            settings.write_text(
                f"introspection_url = {self.introspection_url}\n"
                "introspection_mode = post\n"
                "force_introspection = yes\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
            )
            settings.chmod(0o644)
            text = text.replace(
                "auth_mechanisms = plain login\n",
                "auth_mechanisms = plain login xoauth2 oauthbearer\n",
            )
            text = text.replace(
                "passdb {\n",
                f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {settings}\n}}\npassdb {{\n  mechanisms = plain login\n",
                1,
            )
        return text


# --- the SMTP sink with XOAUTH2 and STARTTLS ------------------------------------------------------


class _XOAuth2Handler(_SinkHandler):
    """The sink's handler plus an XOAUTH2 mechanism checked against the provider."""

    def __init__(self, sink: OAuthSmtpSink) -> None:
        super().__init__(sink)
        self.provider = sink.provider
        self.logins: list[str] = []

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        try:
            fields = base64.b64decode(args[1], validate=True).decode().split("\x01")
        except (ValueError, UnicodeDecodeError):
            return AuthResult(success=False, handled=False)
        given = dict(f.split("=", 1) for f in fields if "=" in f)
        user = given.get("user", "")
        token = given.get("auth", "").removeprefix("Bearer ")
        if self.provider.access_user(token) == user and user:
            self.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        # The XOAUTH2 error dance: a JSON challenge, the client's empty answer, then 535.
        error = json.dumps({"status": "401", "schemes": "bearer"})
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535


class _Sessions(Controller):
    """aiosmtpd's Controller, remembering its sessions so ``stop`` can close them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        smtp = SMTP(self.handler, **self.SMTP_kwargs)
        self.sessions.append(smtp)
        return smtp

    async def drop_sessions(self) -> None:
        for smtp in self.sessions:
            for transport in (smtp.transport, smtp._original_transport):
                if transport is not None:
                    transport.abort()  # type: ignore[attr-defined]
        self.sessions.clear()
        await asyncio.sleep(0.05)  # let the transports finish closing


class OAuthSmtpSink(SmtpSink):
    """The SMTP sink offering only XOAUTH2 (with ``provider``'s tokens), and STARTTLS when
    given a server TLS context (then AUTH only after STARTTLS)."""

    def __init__(self, provider: OAuthProvider | None = None, *, tls: Any = None) -> None:
        super().__init__()
        self.provider = provider or OAuthProvider()
        self.tls = tls
        self.handler = _XOAuth2Handler(self)

    def stop(self) -> None:
        """Stop listening and close every session at once, as a crashed server would
        (aiosmtpd's own stop would leave their sockets to the garbage collector)."""
        controller = self._controller
        if isinstance(controller, _Sessions):
            dropping = asyncio.run_coroutine_threadsafe(controller.drop_sessions(), controller.loop)
            dropping.result(10)
        super().stop()

    close = stop

    def _make_controller(self) -> Controller:
        kwargs: dict[str, Any] = {"auth_exclude_mechanism": ["LOGIN", "PLAIN"]}
        if self.tls is not None:
            kwargs.update(tls_context=self.tls, require_starttls=True, auth_require_tls=True)
        else:
            kwargs.update(auth_require_tls=False)
        return _Sessions(
            self.handler, hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )
