"""Requests (SPEC §3 flow 2): a mentee writes in; we acknowledge, or ask what is missing.

The acknowledgement carries the reference (``[MD-0042]``), what we understood — a zone and
hours said in sentences are echoed with the words they were read from ("America/Chicago
(you wrote “Chicago”)"), so a wrong reading can be corrected by replying — and what
happens next; a request too thin to match gets a reply naming exactly what is missing,
and the mentee's answer in the same thread completes it. Nothing is asked twice and
nothing she already said is asked for. Without her zone or hours we ask for them but
match anyway: once a mentor takes it she picks one of the mentor's times
(``SessionDesk.book``). Later words in the thread are kept as notes; a zone or hours in
them fill in (or, said firmly, correct) what we had. Withdrawing, in any words that mean
it, is a lifecycle step (``flows/lifecycle.py``): a live session is cancelled and the
mentor told.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Config
from ..inbox.classify import Classification, Kind, request_tag
from ..inbox.fields import FormFields, format_windows, parse_form
from ..inbox.parse import ParsedMessage
from ..inbox.quoting import is_greeting_line, strip_greeting
from ..mailer.outbox import Postman
from ..state.records import RequestStatus, request_status
from ..state.store import Store, iso
from ..views import SHORTENED, request_view, shortened, windows_from_doc, windows_to_doc
from .lifecycle import Lifecycle
from .matching import MatchingDesk
from .orientation import Orientation

MIN_DETAIL_WORDS = 6  # "can someone help me?" is not a question a mentor can take
# The most a request keeps of a mentee's later words, all notes together (the details
# grow by as much at most): one person writing again and again cannot grow it forever.
MAX_NOTES_CHARS = 20_000


def skills_in_text(text: str, synonyms: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """Skills named anywhere in free text: every alias and canonical name, whole words."""
    names = dict(synonyms)
    for skill in known:
        names.setdefault(skill.lower(), skill.lower())
    found: list[str] = []
    lowered = f" {text.lower()} "
    for alias in sorted(names, key=len, reverse=True):
        pattern = r"(?<![\w+#.])" + re.escape(alias) + r"(?![\w+#])"
        if re.search(pattern, lowered) and names[alias] not in found:
            found.append(names[alias])
    return found


def free_text(text: str) -> str:
    """The body minus `Key: value` form lines and greetings: what the person wrote."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip(" *-•\t")
        if re.match(r"^[A-Za-z][A-Za-z ]{0,24}:\s", stripped + " ") and not stripped.endswith(":"):
            continue
        # "Hi," / "Hello Ada!" is not part of the question, even on the same line.
        if is_greeting_line(line):
            continue
        lines.append(strip_greeting(line).rstrip())
    return "\n".join(lines).strip()


def enough_detail(text: str) -> bool:
    return len(re.findall(r"\w+", text)) >= MIN_DETAIL_WORDS


WEEK_FIELDS = ("timezone", "availability")  # asked for, but not needed to match


def understood(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The zone and hours we hold, for the mentee to check: each with the words it was
    read from where those differ ("America/Chicago (you wrote “Chicago”)")."""
    rows = []
    if zone := doc.get("timezone"):
        rows.append(("Timezone", _echo(zone, doc.get("timezone_text"))))
    if hours := format_windows(windows_from_doc(doc.get("availability") or [])):
        rows.append(("Availability", _echo(hours, doc.get("availability_text"))))
    return rows


def _echo(value: str, written: str | None) -> str:
    def plain(text: str) -> str:
        return re.sub(r"[\W_]+", "", text.lower())

    if not written or plain(written) == plain(value):
        return value
    return f"{value} (you wrote “{written}”)"


def _problem_fields(problems: Iterable[str]) -> set[str]:
    """The fields the problem sentences are about ("Availability: I couldn't read …")."""
    return {problem.split(":", 1)[0].strip().lower() for problem in problems}


class RequestDesk:
    """Takes mentees' requests in and keeps them up to date."""

    def __init__(
        self,
        config: Config,
        store: Store,
        postman: Postman,
        matching: MatchingDesk,
        lifecycle: Lifecycle,
        orientation: Orientation | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        self.matching = matching
        self.lifecycle = lifecycle
        self.orientation = orientation

    def known_skills(self) -> set[str]:
        return self.store.mentor_skills() | set(self.config.matching.synonyms.values())

    def fields_of(self, msg: ParsedMessage) -> dict[str, Any]:
        fields = parse_form(msg.new_text, self.config.matching.synonyms)
        known = self.known_skills()
        skills = [s for s in fields.skills if s in known]
        unknown = [s for s in fields.skills if s not in known]
        details = (fields.details or "").strip()
        prose = free_text(msg.new_text)
        if not details and enough_detail(prose):
            details = prose
        if not skills:
            skills = skills_in_text(
                f"{msg.subject}\n{details}", self.config.matching.synonyms, known
            )
        return {
            "name": fields.name or msg.sender_name,
            "skills": skills,
            "unknown_skills": unknown,
            "details": details,
            "timezone": fields.timezone,
            "timezone_text": fields.timezone_text,
            "availability": windows_to_doc(fields.availability),
            "availability_text": fields.availability_text,
            "problems": list(fields.problems),
            "firm": _firm(fields),
        }

    @staticmethod
    def questions(doc: Mapping[str, Any], problems: Iterable[str] = ()) -> list[str]:
        """What to ask the mentee, in order, each once: what matching needs (skills,
        details) and what booking needs (zone, hours), minus any field a problem sentence
        already asks about."""
        asked = [*RequestDesk.missing_fields(doc), *RequestDesk.unknown_week(doc)]
        told = _problem_fields(problems)
        return [field for field in asked if field not in told]

    @staticmethod
    def unknown_week(doc: Mapping[str, Any]) -> list[str]:
        return [field for field in WEEK_FIELDS if not doc.get(field)]

    @staticmethod
    def missing_fields(doc: Mapping[str, Any]) -> list[str]:
        missing = []
        if not doc.get("skills"):
            missing.append("skills")
        if not enough_detail(doc.get("details") or ""):
            missing.append("details")
        return missing

    def receive(self, msg: ParsedMessage, now: datetime) -> int | None:
        """A new request: acknowledge it (or ask for what is missing) and match it."""
        fields = self.fields_of(msg)
        open_requests = self.store.open_requests_of(msg.sender)
        for existing in open_requests:
            if fields["details"] and existing.get("details") == fields["details"]:
                self.postman.reply(
                    msg,
                    "request_duplicate",
                    now,
                    number=existing["number"],
                    context={"request": request_view(existing)},
                )
                return int(existing["number"])
        limit = self.config.limits.open_requests_per_mentee
        if len(open_requests) >= limit:
            self.postman.reply(
                msg,
                "request_limit",
                now,
                context={
                    "limit": limit,
                    "requests": [request_view(r) for r in open_requests],
                },
            )
            self.store.audit("request refused: limit", now=now, mentee=msg.sender)
            return None
        number = self.store.new_request_number()
        doc = {
            "number": number,
            "mentee": msg.sender,
            "name": fields["name"],
            "skills": fields["skills"],
            "details": fields["details"],
            "timezone": fields["timezone"],
            "timezone_text": fields["timezone_text"],
            "availability": fields["availability"],
            "availability_text": fields["availability_text"],
            "status": "incomplete",
            "created": iso(now),
            "updated": iso(now),
            "subject": msg.subject,
            "source": msg.message_id,
        }
        self._settle(msg, doc, fields, now, new=True)
        if self.orientation is not None:
            self.orientation.welcome_mentee(msg.sender, doc["name"] or msg.sender_name, number, now)
        return number

    def _settle(
        self,
        msg: ParsedMessage,
        doc: dict[str, Any],
        fields: Mapping[str, Any],
        now: datetime,
        *,
        new: bool,
    ) -> None:
        missing = self.missing_fields(doc)
        was = doc["status"]
        doc["status"] = "incomplete" if missing else "open"
        if doc["status"] == "open" and was != "open":
            doc["opened"] = iso(now)
        doc["updated"] = iso(now)
        self.store.save_request(doc)
        number = int(doc["number"])
        problems = list(fields.get("problems", []))
        context = {
            "request": request_view(doc),
            "missing": missing,
            "asked": self.questions(doc, problems),
            "understood": understood(doc),
            "problems": problems,
            "unknown_skills": fields.get("unknown_skills", []),
            "known_skills": sorted(self.known_skills()),
        }
        if missing:
            self.postman.reply(msg, "request_incomplete", now, number=number, context=context)
            self.store.audit("request incomplete", now=now, request=number, missing=missing)
        else:
            context["next_update"] = self._local_date(
                now + self.config.timers.mentee_update_after, doc.get("timezone")
            )
            context["invite_count"] = self.config.matching.invite_count
            self.postman.reply(msg, "request_ack", now, number=number, context=context)
            self.store.audit("request opened", now=now, request=number, mentee=doc["mentee"])
            self.matching.match(number, now)
        if new:
            self.store.audit("request received", now=now, request=number, mentee=doc["mentee"])

    def _local_date(self, moment: datetime, timezone: str | None) -> str:

        zone = ZoneInfo(timezone or self.config.program.timezone)
        return moment.astimezone(zone).strftime("%A %-d %B")

    def withdraw_by_sender(
        self, msg: ParsedMessage, found: Classification, now: datetime
    ) -> int | None:
        number = found.tag or request_tag(msg.subject)
        open_requests = self.store.open_requests_of(msg.sender)
        chosen = [r for r in open_requests if number is None or r["number"] == number]
        if len(chosen) == 1:
            return self.withdraw(msg, chosen[0], now)
        self.postman.reply(
            msg,
            "which_request",
            now,
            context={
                "requests": [request_view(r) for r in open_requests],
            },
        )
        return None

    def withdraw(self, msg: ParsedMessage, request: dict[str, Any], now: datetime) -> int:
        number = int(request["number"])
        self.lifecycle.withdraw(number, msg.sender, now)
        request = self.store.request(number) or request
        self.postman.reply(
            msg,
            "request_withdrawn",
            now,
            number=number,
            context={"request": request_view(request)},
        )
        return number

    def _note(self, msg: ParsedMessage, request: dict[str, Any], now: datetime) -> None:
        """More words from the mentee. A mentor who holds the request gets them at once;
        otherwise they join the details every mentor asked from now on reads."""
        number = int(request["number"])
        note = free_text(msg.new_text)
        room = MAX_NOTES_CHARS - sum(len(n["text"]) for n in request.get("notes", []))
        full = len(note) > room
        if full:
            note = shortened(note, room - len(SHORTENED) - 1) if room > 200 else ""
        holder = request.get("claimed_by") if request_status(request).held else None
        updated = update_week(request, self.fields_of(msg))
        if note:
            request.setdefault("notes", []).append({"at": iso(now), "text": note})
            if not holder and note not in request["details"]:
                request["details"] = f"{request['details']}\n\n{note}".strip()
        if note or updated:
            request["updated"] = iso(now)
            self.store.save_request(request)
        mentor = self.store.mentor(holder) if holder else None
        if note and mentor is not None:
            self.postman.send(
                "mentee_note",
                to=mentor["email"],
                to_name=mentor.get("name", ""),
                now=now,
                context={"mentor": mentor, "request": request_view(request), "note": note},
                thread=("request-mentor", {"number": number, "mentor": mentor["email"]}),
                request=number,
            )
        self.postman.reply(
            msg,
            "request_note",
            now,
            number=number,
            context={
                "request": request_view(request),
                "holder": mentor,
                "noted": bool(note),
                "full": full,
                "updated": updated,
                "understood": understood(request),
            },
        )
        self.store.audit("request note", now=now, request=number, passed_to=holder, updated=updated)

    def answer(self, msg: ParsedMessage, request: dict[str, Any], now: datetime) -> str:
        """The mentee wrote in their request's thread: complete it, add a note, or (once
        it has ended) pass it to a person. Returns the kind of message it was."""
        if request_status(request) is RequestStatus.INCOMPLETE:
            answer = self.fields_of(msg)
            request["skills"] = request["skills"] or answer["skills"]
            extra = answer["details"]
            if extra and extra not in request["details"]:
                request["details"] = f"{request['details']}\n\n{extra}".strip()
            update_week(request, answer)
            self._settle(msg, request, answer, now, new=False)
            return Kind.REQUEST.value
        if request_status(request).waiting:
            self._note(msg, request, now)
            return Kind.REPLY.value
        # A reply to a withdrawn or closed request: a person should look at it.
        self.postman.tell_coordinator("reply to a closed request", now, msg=msg)
        return Kind.REPLY.value


def _firm(fields: FormFields) -> dict[str, bool]:
    """Which of the zone and hours were said firmly enough to replace what we had: a
    form line always; a zone in a sentence when said as the writer's own ("I'm in …")."""
    return {
        "timezone": fields.timezone is not None
        and (fields.prose_zone is None or fields.prose_zone.firm),
        "availability": bool(fields.availability) and fields.prose_hours is None,
    }


def update_week(request: dict[str, Any], answer: Mapping[str, Any]) -> list[str]:
    """Take the zone and hours from a mentee's later message: filling in what we did not
    have, or replacing it when said firmly (a form line, "I'm in Denver now"). Returns
    the labels of what changed, as ``understood`` names them."""
    changed = []
    firm = answer.get("firm") or {}
    if answer.get("timezone") and (not request.get("timezone") or firm.get("timezone")):
        if answer["timezone"] != request.get("timezone"):
            changed.append("Timezone")
        request["timezone"] = answer["timezone"]
        request["timezone_text"] = answer.get("timezone_text")
    if answer.get("availability") and (not request.get("availability") or firm.get("availability")):
        if answer["availability"] != request.get("availability"):
            changed.append("Availability")
        request["availability"] = answer["availability"]
        request["availability_text"] = answer.get("availability_text")
    return changed
