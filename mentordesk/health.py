"""How the daemon's long-running tasks are doing, for ``GET /healthz``.

A task says ``trouble(name, what)`` while it cannot do its work and ``fine(name)`` once it
can again; the web endpoint answers 200 ``{"status": "ok"}`` when no task is in trouble,
else 503 with what each one says, so a monitor notices a reader that stopped reading
while the pages still answer. Used from the event loop only.
"""

from __future__ import annotations

from typing import Any


class Health:
    """What each long-running task of the daemon last said about itself."""

    def __init__(self) -> None:
        self._trouble: dict[str, str] = {}

    def trouble(self, task: str, what: str) -> None:
        """``task`` cannot do its work now; ``what`` says why (no secrets: it is shown)."""
        self._trouble[task] = what

    def fine(self, task: str) -> None:
        self._trouble.pop(task, None)

    def troubles(self) -> dict[str, str]:
        return dict(self._trouble)

    def response(self, *, store_open: bool) -> dict[str, Any]:
        """The arguments of the /healthz JSON response: its data and its HTTP status."""
        if not store_open:
            return {"data": {"status": "starting"}, "status": 503}
        if self._trouble:
            return {"data": {"status": "degraded", **self._trouble}, "status": 503}
        return {"data": {"status": "ok"}, "status": 200}
