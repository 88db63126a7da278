"""config.toml → typed, frozen settings, checked once at start.

Every option is declared once in ``SCHEMA`` with its default, a converter and an example;
an error names the file, the table, the key, what was wrong and a value that would work.
This is the only module that reads environment variables (passwords and the signing
secret come from variables the config names, never from the file itself).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .calendar.conference import call_template_problem
from .errors import ConfigError
from .mailer.welcome import read_welcome
from .oauth import OAuthConfig, oauth_settings
from .state.archive import SHORTEST_ARCHIVE_AFTER
from .tls import check_server_tls

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _Invalid(ValueError):
    """Raised by a converter; the loader adds file, table and key."""


# --- converters: raw TOML value → typed value, or _Invalid with a reason -------------


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected text, got {type(value).__name__} {value!r}")
    return value


def _nonempty(value: Any) -> str:
    text = _str(value).strip()
    if not text:
        raise _Invalid("must not be empty")
    return text


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected a whole number, got {value!r}")
    return value


def _positive_int(value: Any) -> int:
    number = _int(value)
    if number < 1:
        raise _Invalid(f"must be 1 or more, got {number}")
    return number


def _port(value: Any) -> int:
    number = _int(value)
    if not 0 <= number <= 65535:
        raise _Invalid(f"must be a port number 0–65535, got {number}")
    return number


def _server_port(value: Any) -> int:
    number = _int(value)
    if not 1 <= number <= 65535:
        raise _Invalid(f"must be the server's port number, 1–65535, got {number}")
    return number


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {value!r}")
    return value


def _address(value: Any) -> str:
    text = _nonempty(value)
    _, addr = parseaddr(text)
    if addr != text or "@" not in addr or any(c.isspace() for c in addr):
        raise _Invalid(f"{text!r} is not a plain email address")
    local, _, domain = addr.rpartition("@")
    if not local or "." not in domain:
        raise _Invalid(f"{text!r} is not a plain email address")
    return addr.lower()


def _address_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"expected a list of addresses, got {value!r}")
    return tuple(_address(item) for item in value)


def _zone(value: Any) -> str:
    name = _nonempty(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _Invalid(f"{name!r} is not an IANA timezone name") from exc
    return name


def parse_duration(text: str) -> timedelta:
    """'3d', '12h', '30m', '45s', '2w' → timedelta; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like '3d', '12h', '30m' or '45s'")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(_str(value))
    except ValueError as exc:
        raise _Invalid(str(exc)) from exc


def _positive_duration(value: Any) -> timedelta:
    duration = _duration(value)
    if duration <= timedelta(0):
        raise _Invalid(f"must be longer than nothing, got {value!r}")
    return duration


def _archive_after(value: Any) -> timedelta:
    duration = _duration(value)
    if duration < SHORTEST_ARCHIVE_AFTER:
        raise _Invalid(
            f"must be at least {SHORTEST_ARCHIVE_AFTER.days}d, got {value!r}: the desk's "
            "yearly feedback results and announcements to the past year's mentees read "
            "the history kept in memory"
        )
    return duration


def _clock(value: Any) -> time:
    text = _nonempty(value)
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise _Invalid(f"{text!r} is not a time of day like '08:00'")
    return time(int(match.group(1)), int(match.group(2)))


def _month_day(value: Any) -> tuple[int, int]:
    text = _nonempty(value)
    match = re.fullmatch(r"(\d{2})-(\d{2})", text)
    if not match:
        raise _Invalid(f"{text!r} is not a month and day like '03-01'")
    month, day = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and 1 <= day <= 28 + (month != 2) * 3):
        raise _Invalid(f"{text!r} is not a day that comes every year")
    return month, day


def _choice(*options: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _nonempty(value).lower()
        if text not in options:
            raise _Invalid(f"{text!r} is not one of {', '.join(options)}")
        return text

    return convert


def _url(value: Any) -> str:
    text = _nonempty(value).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", text):
        raise _Invalid(f"{text!r} is not an http(s) URL")
    return text


def _call_link(value: Any) -> str:
    text = _str(value).strip()
    if text and (problem := call_template_problem(text)):
        raise _Invalid(problem)
    return text


def _scopes(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(scope for item in value for scope in item.split())
    raise _Invalid(f"expected a list of scopes, got {value!r}")


def _env_name(value: Any) -> str:
    text = _str(value).strip()
    if text and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise _Invalid(f"{text!r} is not an environment variable name")
    return text


# --- the schema: table → key → (converter, default, example) ---------------------------

_REQUIRED = object()

SCHEMA: dict[str, dict[str, tuple[Callable[[Any], Any], Any, str]]] = {
    "program": {
        "name": (_nonempty, _REQUIRED, '"Code Mentors"'),
        "address": (_address, _REQUIRED, '"mentors@program.org"'),
        "coordinator": (_address, _REQUIRED, '"coordinator@program.org"'),
        "escalation": (_address_list, [], '["director@program.org"]'),
        "timezone": (_zone, "UTC", '"America/New_York"'),
        "base_url": (_url, "http://127.0.0.1:8025", '"https://mentors.program.org"'),
        "secret_env": (_env_name, "MENTORDESK_SECRET", '"MENTORDESK_SECRET"'),
        "approve_mentors": (_bool, False, "true"),
    },
    "inbox": {
        "kind": (_choice("imap", "maildir"), "maildir", '"imap"'),
        "path": (_nonempty, "state/mail", '"state/mail"'),
        "host": (_nonempty, "127.0.0.1", '"imap.program.org"'),
        "port": (_server_port, 993, "993"),
        "tls": (_choice("ssl", "starttls", "none"), "ssl", '"ssl"'),
        "username": (_str, "", '"mentors@program.org"'),
        "password_env": (_env_name, "", '"MENTORDESK_IMAP_PASSWORD"'),
        "auth": (_choice("password", "oauth2"), "password", '"oauth2"'),
        "ca_file": (_str, "", '"/etc/ssl/certs/program-ca.pem"'),
        "folder": (_nonempty, "INBOX", '"INBOX"'),
        "processed_folder": (_nonempty, "Processed", '"Processed"'),
        "quarantine_folder": (_nonempty, "Quarantine", '"Quarantine"'),
        "create_folders": (_bool, True, "true"),
        "idle": (_bool, True, "true"),
        "poll_interval": (_duration, "30s", '"30s"'),
        "max_attempts": (_positive_int, 3, "3"),
        "max_message_bytes": (_positive_int, 10_000_000, "10000000"),
        "batch_size": (_positive_int, 200, "200"),
        "require_authentication": (_bool, False, "true"),
        "authserv_id": (_str, "", '"mx.program.org"'),
    },
    "smtp": {
        "kind": (_choice("smtp", "maildir"), "maildir", '"smtp"'),
        "path": (_nonempty, "state/mail", '"state/mail"'),
        "host": (_nonempty, "127.0.0.1", '"smtp.program.org"'),
        "port": (_server_port, 587, "587"),
        "tls": (_choice("ssl", "starttls", "none"), "starttls", '"starttls"'),
        "username": (_str, "", '"mentors@program.org"'),
        "password_env": (_env_name, "", '"MENTORDESK_SMTP_PASSWORD"'),
        "auth": (_choice("password", "oauth2"), "password", '"oauth2"'),
        "ca_file": (_str, "", '"/etc/ssl/certs/program-ca.pem"'),
        "timeout": (_duration, "30s", '"30s"'),
        "max_attempts": (_positive_int, 8, "8"),
        "retry_after": (_duration, "30s", '"30s"'),
        "max_retry_after": (_duration, "1h", '"1h"'),
        "connections": (_positive_int, 2, "2"),
    },
    "oauth": {
        "provider": (_choice("microsoft", "google", "custom"), "microsoft", '"microsoft"'),
        "client_id": (_str, "", '"00000000-0000-0000-0000-000000000000"'),
        "client_secret_env": (_env_name, "", '"MENTORDESK_OAUTH_SECRET"'),
        "tenant": (_nonempty, "common", '"program.org"'),
        "token_url": (_str, "", '"https://login.example.org/oauth2/token"'),
        "device_url": (_str, "", '"https://login.example.org/oauth2/device"'),
        "auth_url": (_str, "", '"https://login.example.org/oauth2/authorize"'),
        "scopes": (_scopes, [], '["https://mail.google.com/"]'),
        "token_file": (_str, "oauth-token.json", '"oauth-token.json"'),
    },
    "state": {
        "path": (_nonempty, "state/mentordesk.db", '"state/mentordesk.db"'),
        "fsync": (_bool, True, "true"),
        "archive_after": (_archive_after, "400d", '"400d"'),
    },
    "web": {
        "host": (_nonempty, "127.0.0.1", '"127.0.0.1"'),
        "port": (_port, 8025, "8025"),
        "link_lifetime": (_duration, "14d", '"14d"'),
    },
    "timers": {
        "bump_after": (_duration, "3d", '"3d"'),
        "mentee_update_after": (_duration, "3d", '"3d"'),
        "widen_after": (_duration, "5d", '"5d"'),
        "escalate_after": (_duration, "10d", '"10d"'),
        "digest_time": (_clock, "08:00", '"08:00"'),
        "survey_date": (_month_day, "03-01", '"03-01"'),
        "term_length": (_duration, "730d", '"730d"'),
        "renewal_notice": (_duration, "30d", '"30d"'),
        "sweep_interval": (_duration, "1m", '"1m"'),
        "followup_after": (_duration, "2h", '"2h"'),
        "survey_reminder_after": (_duration, "7d", '"7d"'),
        "digest_when_quiet": (_choice("line", "none"), "line", '"line"'),
        "request_max_age": (_positive_duration, "60d", '"60d"'),
        "ladder_grace": (_duration, "2d", '"2d"'),
        "after_session_grace": (_duration, "7d", '"7d"'),
        "survey_grace": (_duration, "14d", '"14d"'),
    },
    "sessions": {
        "length": (_duration, "30m", '"30m"'),
        "notice": (_duration, "24h", '"24h"'),
        "horizon": (_duration, "28d", '"28d"'),
        "reminder_before": (_duration, "24h", '"24h"'),
        "location": (
            _nonempty,
            "Video call: your mentor sends the link",
            '"Video call: your mentor sends the link"',
        ),
        "call_link": (_call_link, "", '"https://meet.jit.si/{program}-{random}"'),
    },
    "orientation": {
        "mentor_welcome": (_str, "", '"welcome-mentor.md"'),
        "mentee_welcome": (_str, "", '"welcome-mentee.md"'),
    },
    "matching": {
        "invite_count": (_positive_int, 3, "3"),
        "widen_count": (_positive_int, 3, "3"),
        "default_capacity": (_positive_int, 2, "2"),
    },
    "desk": {
        "coordinators": (_address_list, [], '["coordinator@program.org", "chair@program.org"]'),
        "session_lifetime": (_positive_duration, "12h", '"12h"'),
        "sign_in_lifetime": (_positive_duration, "15m", '"15m"'),
    },
    "limits": {
        "replies_per_sender_per_hour": (_positive_int, 5, "5"),
        "open_requests_per_mentee": (_positive_int, 2, "2"),
    },
    "announcements": {
        "per_minute": (_positive_int, 60, "60"),
    },
    "pairings": {
        "enabled": (_bool, False, "true"),
        "every_weeks": (_positive_int, 2, "2"),
        "term": (_positive_duration, "365d", '"365d"'),
        "all_requests": (_bool, False, "false"),
        "quiet_weeks": (_positive_int, 6, "6"),
        "check_in_every": (_positive_duration, "91d", '"91d"'),
    },
}
# [matching.synonyms] is free-form: canonical skill = ["alias", ...]; checked separately.
_FREE_FORM = {("matching", "synonyms")}


@dataclass(frozen=True)
class ProgramConfig:
    name: str
    address: str
    coordinator: str
    escalation: tuple[str, ...]
    timezone: str
    base_url: str
    secret_env: str
    # A new enrollment waits ("pending") until a coordinator approves it.
    approve_mentors: bool = False

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True)
class InboxConfig:
    kind: str
    path: Path
    host: str
    port: int
    tls: str
    username: str
    password_env: str
    folder: str
    processed_folder: str
    quarantine_folder: str
    idle: bool
    poll_interval: timedelta
    max_attempts: int
    max_message_bytes: int
    batch_size: int
    require_authentication: bool
    authserv_id: str
    create_folders: bool = True  # may processed_folder and quarantine_folder be created
    password: str = field(default="", repr=False)
    auth: str = "password"  # or "oauth2" (SASL XOAUTH2 with ``oauth``'s tokens)
    ca_file: Path | None = None  # trusted instead of the system store
    oauth: OAuthConfig | None = None


@dataclass(frozen=True)
class SmtpConfig:
    kind: str
    path: Path
    host: str
    port: int
    tls: str
    username: str
    password_env: str
    timeout: timedelta
    max_attempts: int
    retry_after: timedelta
    max_retry_after: timedelta
    connections: int
    password: str = field(default="", repr=False)
    auth: str = "password"
    ca_file: Path | None = None
    oauth: OAuthConfig | None = None


@dataclass(frozen=True)
class StateConfig:
    path: Path
    fsync: bool
    archive_after: timedelta = timedelta(days=400)


@dataclass(frozen=True)
class WebConfig:
    host: str
    port: int
    link_lifetime: timedelta


@dataclass(frozen=True)
class TimersConfig:
    bump_after: timedelta
    mentee_update_after: timedelta
    widen_after: timedelta
    escalate_after: timedelta
    digest_time: time
    survey_date: tuple[int, int]
    term_length: timedelta
    renewal_notice: timedelta
    sweep_interval: timedelta
    followup_after: timedelta
    survey_reminder_after: timedelta
    digest_when_quiet: str
    request_max_age: timedelta  # an unclaimed request older than this expires
    ladder_grace: timedelta  # how late a ladder step may still happen
    after_session_grace: timedelta  # how late the after-session questions may go out
    survey_grace: timedelta  # how late the feedback round (and its reminder) may go out


@dataclass(frozen=True)
class SessionsConfig:
    length: timedelta
    notice: timedelta
    horizon: timedelta
    reminder_before: timedelta
    location: str
    call_link: str  # a room template ("" : none); a mentor's own link wins


@dataclass(frozen=True)
class OrientationConfig:
    """The welcome texts (Markdown, read at start; "" : none sent)."""

    mentor_welcome: str
    mentee_welcome: str


@dataclass(frozen=True)
class MatchingConfig:
    invite_count: int
    widen_count: int
    default_capacity: int
    synonyms: Mapping[str, str]  # alias (lower case) → canonical skill


@dataclass(frozen=True)
class DeskConfig:
    """The coordinator's web desk (``desk_web.py``): who may sign in, for how long."""

    coordinators: tuple[str, ...] = ()  # empty: [program] coordinator alone
    session_lifetime: timedelta = timedelta(hours=12)
    sign_in_lifetime: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class LimitsConfig:
    replies_per_sender_per_hour: int
    open_requests_per_mentee: int


@dataclass(frozen=True)
class AnnouncementsConfig:
    """[announcements]: how fast one announcement leaves (flows/announcements)."""

    per_minute: int = 60


@dataclass(frozen=True)
class PairingsConfig:
    """[pairings]: a mentor and a mentee meeting every few weeks for a term (flows/pairings)."""

    enabled: bool = False
    every_weeks: int = 2
    term: timedelta = timedelta(days=365)
    all_requests: bool = False
    quiet_weeks: int = 6
    check_in_every: timedelta = timedelta(days=91)


@dataclass(frozen=True)
class Config:
    """Everything mentordesk needs to run, checked. ``source`` is the file it came from."""

    source: Path
    program: ProgramConfig
    inbox: InboxConfig
    smtp: SmtpConfig
    state: StateConfig
    web: WebConfig
    timers: TimersConfig
    sessions: SessionsConfig
    matching: MatchingConfig
    limits: LimitsConfig
    secret: bytes = field(default=b"", repr=False)
    orientation: OrientationConfig = OrientationConfig("", "")
    oauth: OAuthConfig | None = None  # set when [inbox] or [smtp] auth = "oauth2"
    pairings: PairingsConfig = field(default_factory=PairingsConfig)
    announcements: AnnouncementsConfig = field(default_factory=AnnouncementsConfig)
    desk: DeskConfig = field(default_factory=DeskConfig)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and check ``path``. Raises ConfigError naming file, table and key."""
    source = Path(path)
    env = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: no such file. Write a commented one with `mentordesk init DIR` "
            "and pass its path with --config."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: is not valid TOML: {exc}") from None
    return _build(source, raw, env)


def _build(source: Path, raw: dict[str, Any], env: Mapping[str, str]) -> Config:
    def fail(table: str, key: str, reason: str, example: str = "") -> ConfigError:
        hint = f" Example: {key} = {example}" if example else ""
        return ConfigError(f"{source}: [{table}] {key}: {reason}.{hint}")

    for table in raw:
        if table not in SCHEMA:
            known = ", ".join(f"[{name}]" for name in SCHEMA)
            raise ConfigError(f"{source}: unknown table [{table}]. Known tables: {known}.")

    values: dict[str, dict[str, Any]] = {}
    for table, options in SCHEMA.items():
        given = raw.get(table, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: {table} must be a table, written [{table}].")
        for key in given:
            if key not in options and (table, key) not in _FREE_FORM:
                known = ", ".join(options)
                raise fail(table, key, f"unknown key (known keys: {known})")
        values[table] = {}
        for key, (convert, default, example) in options.items():
            if key in given:
                value = given[key]
            elif default is _REQUIRED:
                raise fail(table, key, "is required", example)
            else:
                value = default
            try:
                values[table][key] = convert(value)
            except _Invalid as exc:
                raise fail(table, key, str(exc), example) from None

    base = source.parent
    for table in ("inbox", "smtp", "state"):
        values[table]["path"] = (base / values[table]["path"]).resolve()

    synonyms = _synonyms(raw.get("matching", {}).get("synonyms", {}), fail)

    welcomes: dict[str, str] = {}
    for key, unsafe_name in values["orientation"].items():
        welcomes[key] = ""
        if unsafe_name.strip():
            try:
                welcomes[key] = read_welcome(base / unsafe_name.strip())
            except ValueError as exc:
                example = SCHEMA["orientation"][key][2]
                raise fail("orientation", key, str(exc), example) from None

    def secret_from(table: str, key: str, needed: bool) -> str:
        name = values[table][key]
        if not needed:
            return ""
        if not name:
            raise fail(table, key, "names no environment variable", '"MENTORDESK_PASSWORD"')
        value = env.get(name, "")
        if not value:
            raise fail(table, key, f"the environment variable {name} is not set")
        return value

    if values["inbox"]["kind"] == "imap" and not values["inbox"]["username"].strip():
        raise fail("inbox", "username", 'is required with kind = "imap"', '"mentors@program.org"')
    inbox, smtp = values["inbox"], values["smtp"]
    uses = {"inbox": inbox["kind"] == "imap", "smtp": smtp["kind"] == "smtp"}
    for table in ("inbox", "smtp"):
        check_server_tls(table, values[table], uses[table], base, fail)
    inbox_password = secret_from(
        "inbox",
        "password_env",
        uses["inbox"] and inbox["auth"] == "password" and bool(inbox["username"]),
    )
    smtp_password = secret_from(
        "smtp",
        "password_env",
        uses["smtp"] and smtp["auth"] == "password" and bool(smtp["username"]),
    )
    oauth = None
    if any(uses[table] and values[table]["auth"] == "oauth2" for table in uses):
        client_secret = secret_from(
            "oauth", "client_secret_env", bool(values["oauth"]["client_secret_env"])
        )
        state_dir = values["state"]["path"].parent
        oauth = oauth_settings(values["oauth"], state_dir, client_secret, fail)

    def oauth_of(table: dict[str, Any]) -> OAuthConfig | None:
        return oauth if table["auth"] == "oauth2" else None

    secret_name = values["program"]["secret_env"]
    secret = env.get(secret_name, "") if secret_name else ""
    if len(secret) < 16:
        what = "is not set" if not secret else "is shorter than 16 characters"
        raise fail(
            "program",
            "secret_env",
            f"the environment variable {secret_name or '(none)'} {what}; it signs claim links",
            '"MENTORDESK_SECRET"  (then: export MENTORDESK_SECRET=$(openssl rand -hex 32))',
        )

    return Config(
        source=source,
        program=ProgramConfig(**values["program"]),
        inbox=InboxConfig(**inbox, password=inbox_password, oauth=oauth_of(inbox)),
        smtp=SmtpConfig(**smtp, password=smtp_password, oauth=oauth_of(smtp)),
        state=StateConfig(**values["state"]),
        web=WebConfig(**values["web"]),
        timers=TimersConfig(**values["timers"]),
        sessions=SessionsConfig(**values["sessions"]),
        matching=MatchingConfig(**values["matching"], synonyms=synonyms),
        limits=LimitsConfig(**values["limits"]),
        secret=secret.encode(),
        orientation=OrientationConfig(**welcomes),
        oauth=oauth,
        pairings=PairingsConfig(**values["pairings"]),
        announcements=AnnouncementsConfig(**values["announcements"]),
        desk=DeskConfig(**values["desk"]),
    )


def _synonyms(raw: Any, fail: Callable[..., ConfigError]) -> dict[str, str]:
    """[matching.synonyms] javascript = ["js", "ecmascript"] → {"js": "javascript", ...}."""
    example = '["js", "ecmascript"]'
    if not isinstance(raw, dict):
        raise fail("matching", "synonyms", "must be a table [matching.synonyms]", example)
    table: dict[str, str] = {}
    for canonical, aliases in raw.items():
        key = f"synonyms.{canonical}"
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise fail("matching", key, "must be a list of alternative names", example)
        name = canonical.strip().lower()
        table[name] = name
        for alias in aliases:
            alias_key = alias.strip().lower()
            if table.get(alias_key, name) != name:
                raise fail("matching", key, f"{alias!r} is already a name for {table[alias_key]!r}")
            table[alias_key] = name
    return table
