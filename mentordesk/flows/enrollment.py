"""Enrollment (SPEC §3 flow 1): a mentor writes in, we record them and echo what we read.

Missing or unreadable fields get a reply naming exactly what is missing, with the form
filled in with what we understood; the answer in that thread completes it. Writing
again updates; "pause", "resume", "renew" and "resign" work by email too. Resigning is
a lifecycle step: the requests they hold go back to matching (``flows/lifecycle.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..config import Config
from ..inbox.fields import FormFields, format_windows
from ..inbox.parse import ParsedMessage
from ..mailer.outbox import Postman
from ..state.lifecycle import MentorEvent, next_mentor_status
from ..state.records import MentorStatus, mentor_status, term_over
from ..state.store import Store, iso
from ..tokens import Links
from ..views import windows_from_doc, windows_to_doc
from .lifecycle import Lifecycle

MENTOR_COMMANDS = ("pause", "resume", "resign", "renew")


def missing_enrollment_fields(fields: FormFields, name: str) -> list[str]:
    missing = []
    if not name:
        missing.append("name")
    if not fields.skills:
        missing.append("skills")
    if not fields.timezone:
        missing.append("timezone")
    if not fields.availability:
        missing.append("availability")
    return missing


class EnrollmentDesk:
    """Records mentors and their own changes of standing."""

    def __init__(
        self,
        config: Config,
        store: Store,
        postman: Postman,
        lifecycle: Lifecycle,
        links: Links,
    ) -> None:
        self.links = links  # the coordinator's approval link ([program] approve_mentors)
        self.config = config
        self.store = store
        self.postman = postman
        self.lifecycle = lifecycle

    def enroll(
        self,
        msg: ParsedMessage,
        fields: FormFields,
        now: datetime,
        pending: Mapping[str, Any] | None = None,
    ) -> None:
        merged = self._merge_enrollment(pending or {}, fields)
        name = merged["name"] or msg.sender_name
        existing = self.store.mentor(msg.sender)
        if existing and not pending:
            # Re-enrollment: anything left out keeps its stored value.
            for key in (
                "skills",
                "timezone",
                "timezone_text",
                "availability",
                "availability_text",
                "capacity",
                "about",
            ):
                if not merged.get(key) and existing.get(key):
                    merged[key] = existing[key]
            name = merged["name"] or existing.get("name") or name
        check = FormFields(
            name=name or None,
            skills=tuple(merged["skills"]),
            timezone=merged["timezone"],
            timezone_text=merged["timezone_text"],
            availability=windows_from_doc(merged["availability"]),
            availability_text=None,
            capacity=merged["capacity"],
            about=merged["about"],
            details=None,
            present=frozenset(),
            problems=(),
        )
        missing = missing_enrollment_fields(check, name)
        if missing or (fields.problems and not existing):
            self.postman.reply(
                msg,
                "enrollment_incomplete",
                now,
                context={
                    "name": name,
                    "missing": missing,
                    # Each field once: one a problem sentence names is not asked again.
                    "asked": [
                        field
                        for field in missing
                        if field
                        not in {p.split(":", 1)[0].strip().lower() for p in fields.problems}
                    ],
                    "problems": fields.problems,
                    "understood": self.mentor_view(merged, name),
                },
                thread=("enrollment", {**merged, "name": name, "email": msg.sender}),
            )
            self.store.audit("enrollment incomplete", now=now, mentor=msg.sender, missing=missing)
            return
        term_end = existing.get("term_end") if existing else None
        if not term_end or term_end < iso(now):
            term_end = iso(now + self.config.timers.term_length)
        mentor = self.store.save_mentor(
            {
                "email": msg.sender,
                "name": name,
                "skills": list(merged["skills"]),
                "timezone": merged["timezone"],
                "timezone_text": merged["timezone_text"],
                "availability": merged["availability"],
                "availability_text": merged["availability_text"],
                "capacity": merged["capacity"] or self.config.matching.default_capacity,
                "about": merged["about"] or "",
                "status": (
                    next_mentor_status(mentor_status(existing), MentorEvent.ENROLL, term_over=False)
                    or mentor_status(existing)
                    if existing
                    else self._first_status()
                ).value,
                "term_end": term_end,
                "enrolled": existing["enrolled"] if existing else iso(now),
                "updated": iso(now),
            }
        )
        self.postman.reply(
            msg,
            "enrollment_confirmed",
            now,
            context={
                "name": name,
                "updated": existing is not None,
                "mentor": self.mentor_view(mentor, name),
                "problems": fields.problems,
            },
            thread=("mentor", msg.sender),
        )
        self.store.audit(
            "enrolled" if not existing else "enrollment updated", now=now, mentor=msg.sender
        )
        if not existing and mentor_status(mentor) is MentorStatus.PENDING:
            self._ask_for_approval(mentor, now)

    def _first_status(self) -> MentorStatus:
        """A new mentor's standing: pending when a coordinator approves each one."""
        return MentorStatus.PENDING if self.config.program.approve_mentors else MentorStatus.ACTIVE

    def _ask_for_approval(self, mentor: Mapping[str, Any], now: datetime) -> None:
        """Send the coordinator the new mentor's details and a one-click approval link."""
        coordinator = self.config.program.coordinator
        email = str(mentor["email"])
        self.postman.tell_coordinator(
            f"mentor to approve: {email}",
            now,
            template="coordinator_approve",
            context={
                "mentor": self.mentor_view(mentor, str(mentor.get("name") or "")),
                "mentor_email": email,
                "approve_url": self.links("approve", coordinator, email, now),
                "lifetime_days": self.config.web.link_lifetime.days,
            },
        )

    @staticmethod
    def _merge_enrollment(pending: Mapping[str, Any], fields: FormFields) -> dict[str, Any]:
        return {
            "name": fields.name or pending.get("name") or "",
            "skills": list(fields.skills) or list(pending.get("skills", [])),
            "timezone": fields.timezone or pending.get("timezone"),
            "timezone_text": fields.timezone_text
            if fields.timezone
            else pending.get("timezone_text"),
            "availability": windows_to_doc(fields.availability) or pending.get("availability", []),
            "availability_text": fields.availability_text
            if fields.availability
            else pending.get("availability_text"),
            "capacity": fields.capacity or pending.get("capacity"),
            "about": fields.about or pending.get("about") or "",
        }

    def mentor_view(self, doc: Mapping[str, Any], name: str) -> dict[str, Any]:
        """What we understood, as the confirmation echoes it."""
        timezone = doc.get("timezone")
        written = doc.get("timezone_text")
        zone_text = timezone or ""
        if timezone and written and written.strip().lower() != timezone.lower():
            zone_text = f"{timezone} (you wrote “{written}”)"
        return {
            "name": name,
            "skills": ", ".join(doc.get("skills") or []),
            "timezone": zone_text,
            "availability": format_windows(windows_from_doc(doc.get("availability") or [])),
            "availability_said": _said_differently(
                format_windows(windows_from_doc(doc.get("availability") or [])),
                doc.get("availability_text"),
            ),
            "capacity": doc.get("capacity") or self.config.matching.default_capacity,
            "about": doc.get("about") or "",
            "term_end": (doc.get("term_end") or "")[:10],
            "status": doc.get("status", ""),
        }

    def command(self, msg: ParsedMessage, command: str, now: datetime) -> None:
        changed = self.change_standing(msg.sender, MentorEvent(command), now)
        if changed is None:
            self.postman.reply(msg, "not_a_mentor", now, context={"command": command})
            return
        before, after, mentor = changed
        self.postman.reply(
            msg,
            "mentor_status",
            now,
            context={
                "refused": after is None,
                "was": before.value,
                "command": command,
                "mentor": self.mentor_view(mentor, mentor.get("name", "")),
            },
            thread=("mentor", msg.sender),
        )

    def change_standing(
        self,
        email: str,
        event: MentorEvent,
        now: datetime,
        *,
        by: str = "",
        until: datetime | None = None,
    ) -> tuple[MentorStatus, MentorStatus | None, dict[str, Any]] | None:
        """Apply a mentor's change of standing (theirs by email, or a coordinator's for
        them, ``by``): (before, after or None when refused, the mentor), or None for an
        unknown address. Resigning hands back what they held (``Lifecycle.mentor_left``);
        renewing starts a new term from ``now`` (or runs it to ``until``)."""
        mentor = self.store.mentor(email)
        if mentor is None:
            return None
        who = {"by": by} if by else {}
        before = mentor_status(mentor)
        after = next_mentor_status(before, event, term_over=term_over(mentor, now))
        if after is None:
            self.store.audit(f"mentor {event} refused", now=now, mentor=email, was=before, **who)
        elif after is MentorStatus.RESIGNED:
            self.lifecycle.mentor_left(email, MentorStatus.RESIGNED, now, by=by)
            mentor = self.store.mentor(email) or mentor
        else:
            if event is MentorEvent.RENEW:
                mentor["term_end"] = iso(until or now + self.config.timers.term_length)
            mentor["status"] = after.value
            mentor["updated"] = iso(now)
            self.store.save_mentor(mentor)
            self.store.audit(f"mentor {event}", now=now, mentor=email, **who)
        return before, after, mentor


def _said_differently(value: str, written: str | None) -> str:
    """``written`` when it says ``value`` in other words ("weekday evenings after 6pm" for
    "Mon–Fri 18:00–22:00"), for the confirmation to echo; else ""."""

    def plain(text: str) -> str:
        return re.sub(r"[\W_]+", "", text.lower())

    return written if value and written and plain(written) != plain(value) else ""
