"""The CLI's signed commands to the running daemon: one route maker for all of them.

Each ``POST /admin/...`` route takes a command from this machine's loopback only (no
proxy's forwarding headers), signed for its exact body (``admin.py``), and applies it once:
its nonce is spent in the store in the same writer call, so a replay is refused (403).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .admin import AdminTicket, check_admin_token, spend_admin_nonce
from .tokens import TokenError

if TYPE_CHECKING:
    from .state.store import Store
    from .web import WebApp

__all__ = ["Apply", "admin_route"]

log = logging.getLogger(__name__)

# Runs on the store's writer with the parsed command; returns the JSON answer.
Apply = Callable[["Store", dict[str, Any], datetime], dict[str, Any]]


def admin_route(
    app: WebApp, path: str, apply: Apply, refused: type[Exception] | tuple[type[Exception], ...]
) -> web.RouteDef:
    """``POST path``: a CLI command from this machine, signed, applied once (``admin.py``).

    ``apply`` runs on the store's writer after the command's nonce is spent; ``refused``
    is its error for a command that cannot be applied (400, its message to the CLI).
    """

    async def command(request: web.Request) -> web.Response:
        from .web import _from_loopback

        if not _from_loopback(request):
            return web.json_response(
                {"error": "only this machine's loopback may do this, not through a proxy"},
                status=403,
            )
        body = await request.read()
        unsafe_token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        try:
            ticket = check_admin_token(app.config.secret, unsafe_token, body, app.clock())
            parsed = json.loads(body)
        except TokenError as exc:
            log.info("refused a command on %s: %s", path, type(exc).__name__)
            return web.json_response({"error": str(exc)}, status=403)
        except ValueError:
            return web.json_response({"error": "the command is not JSON"}, status=400)
        if not isinstance(parsed, dict):
            return web.json_response({"error": "the command is not a JSON object"}, status=400)

        def once(ticket: AdminTicket, parsed: dict[str, Any]) -> dict[str, Any]:
            store = app.writer.store
            if store is None:
                raise RuntimeError("the store is not open")
            now = app.clock()
            spend_admin_nonce(store, ticket, now)
            return apply(store, parsed, now)

        try:
            answer = await app.writer.call(once, ticket, parsed)
        except TokenError as exc:
            return web.json_response({"error": str(exc)}, status=403)
        except refused as exc:
            return web.json_response({"error": str(exc)}, status=400)
        app.changed()
        from .web import SECURITY_HEADERS

        return web.json_response(answer, headers=SECURITY_HEADERS)

    return web.post(path, command)
