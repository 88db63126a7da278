"""The flows' desks, built once, in the order they depend on each other.

    Postman (the mail gate) ─┬─ SessionDesk ─┐
    Links (signed URLs) ─────┼─ OfficeHoursDesk ─┤
                             ├─ MatchingDesk ────┼─ Lifecycle ─ ClaimDesk
                             └───────────────────┘
    Enrollment, Requests (use Matching, Lifecycle), Bounces (use the Postman)
    CoordinatorDesk (a person's moves: Lifecycle, ClaimDesk, SessionDesk, Enrollment)

The daemon builds one ``Desks`` and hands it to the inbox router, the web pages and the
timers, so every flow works with the same desks (and the same lifecycle).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..mailer.compose import Renderer
from ..mailer.outbox import Postman
from ..state.store import Store
from ..tokens import Links
from .bounces import BounceDesk
from .claims import ClaimDesk
from .coordinator import CoordinatorDesk
from .enrollment import EnrollmentDesk
from .lifecycle import Lifecycle
from .matching import MatchingDesk
from .office_hours import OfficeHoursDesk
from .requests import RequestDesk
from .sessions import SessionDesk


@dataclass(frozen=True)
class Desks:
    postman: Postman
    links: Links
    sessions: SessionDesk
    office_hours: OfficeHoursDesk
    matching: MatchingDesk
    lifecycle: Lifecycle
    claims: ClaimDesk
    enrollment: EnrollmentDesk
    requests: RequestDesk
    bounces: BounceDesk
    coordinator: CoordinatorDesk  # a person's moves by hand (CLI, web desk)


def build_desks(config: Config, store: Store, renderer: Renderer) -> Desks:
    postman = Postman(
        config.program,
        store,
        renderer,
        replies_per_hour=config.limits.replies_per_sender_per_hour,
    )
    links = Links(config.secret, config.program.base_url, config.web.link_lifetime)
    office_hours = OfficeHoursDesk(config, store, postman, links)
    sessions = SessionDesk(
        config,
        store,
        postman,
        links,
        busy_elsewhere=office_hours.busy_for,
        other_replies=office_hours.handle_reply,
    )
    matching = MatchingDesk(config, store, postman, links)
    lifecycle = Lifecycle(store, postman, sessions, matching.rematch, office_hours)
    claims = ClaimDesk(config, store, postman, matching, lifecycle, book=sessions.book)
    enrollment = EnrollmentDesk(config, store, postman, lifecycle, links)
    coordinator = CoordinatorDesk(config, store, postman, lifecycle, claims, sessions, enrollment)
    return Desks(
        postman=postman,
        links=links,
        sessions=sessions,
        office_hours=office_hours,
        matching=matching,
        lifecycle=lifecycle,
        claims=claims,
        enrollment=enrollment,
        requests=RequestDesk(config, store, postman, matching, lifecycle),
        bounces=BounceDesk(config, store, postman),
        coordinator=coordinator,
    )
