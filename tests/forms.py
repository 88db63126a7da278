"""What a page's button sends with its POST, for tests that press buttons over HTTP.

The claim, release and assign pages carry a hidden form token bound to their link
(``mentordesk.tokens.form_token``); a browser sends it with the button. ``form(url)``
gives the same field for a link from an email, without fetching the page (the page
may not show the button any more, as when someone else was quicker); ``press(http, url)``
posts it.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp

from mentordesk.tokens import FORM_FIELD, Claims, form_token

from .desk import SECRET


def claims_of(url: str) -> Claims:
    """The claims a link's token carries (read, not verified: the server verifies)."""
    payload = url.rsplit("/", 1)[1].split(".")[0]
    purpose, person, obj, expires = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return Claims(purpose, person, obj, datetime.fromtimestamp(expires, UTC))


def form(url: str, **fields: str) -> dict[str, str]:
    """The form a press of the button on ``url``'s page posts, plus ``fields``."""
    return {FORM_FIELD: form_token(SECRET.encode(), claims_of(url)), **fields}


@contextlib.asynccontextmanager
async def press(
    http: aiohttp.ClientSession, url: str, **fields: str
) -> AsyncIterator[aiohttp.ClientResponse]:
    """Press the button on ``url``'s page: POST its form, as the browser would."""
    async with http.post(url, data=form(url, **fields)) as response:
        yield response
