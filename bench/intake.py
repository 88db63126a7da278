"""Intake benchmark: requests into a real Dovecot, acknowledgements out to a real SMTP server.

    .venv/bin/python bench/intake.py                       # 5,000 requests, 50 mentors
    .venv/bin/python bench/intake.py --mentors 2000 --messages 500 --paced 0   # quicker

For each of two receivers — mentordesk itself and a bare relay run in the same process —
it measures:

- throughput: N requests already in the mailbox when the receiver starts, divided by the
  time from its start to the last email they caused arriving at the SMTP server
  (requests/s), and the emails/s that makes;
- latency: APPEND → acknowledgement received at the SMTP server (the email whose
  In-Reply-To is the request's Message-ID), p50/p99, in a paced run (default 10
  requests/s) where queueing does not dominate (``--paced 0`` skips it).

mentordesk runs as a program really does: before the measured runs, ``--mentors``
mentors (default 50) enroll by email, so every request matches and, besides its
acknowledgement, sends ``invite_count`` (3) claim invitations — 4 emails per request.
Then the state gets the last 90 days of a program's claims at a real pace (about 0.7 per
mentor), since ranking weighs each mentor's recent sessions (``--no-recent-claims``
leaves the mentors without any, as a program in its first days).

The bare relay is the floor for the same-shape work and nothing else: it fetches each
message whole, sends an acknowledgement and three claim-sized (~5 KB) emails over as many
parallel SMTP connections as mentordesk uses, and moves the message; no parsing, no
state. The table shows the mean bytes per email each receiver sent, to compare.

The APPENDing client and the SMTP server run in their own processes so that they do not
compete with the receiver for the interpreter. Targets (issues 2 and 11, 2-core
machine): p50 < 0.8 s with IDLE; ≥ 100 requests/s up to 2,000 mentors and ≥ 60 at
10,000; ≥ half the bare relay's throughput; resident memory < 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing as mp
import os
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mentordesk import event_loop  # noqa: E402
from tests.servers import PROGRAM_PASSWORD, PROGRAM_USER, Dovecot, free_port  # noqa: E402

TARGET_P50_S = 0.8
INVITE_COUNT = 3
DEFAULT_CONNECTIONS = 2  # [smtp] connections when the config does not say


def target_throughput(mentors: int) -> float:
    """Requests/s to reach (issue 11): 100 up to 2,000 mentors, 60 at 10,000."""
    return 100.0 if mentors <= 2000 else 60.0


def request_mail(n: int, run: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Mentee {n} <mentee{n}.{run}@example.net>"
    msg["To"] = PROGRAM_USER
    msg["Subject"] = "Mentor request"
    msg["Message-ID"] = make_id(n, run)
    msg.set_content(
        f"Name: Mentee {n}\nSkills: python, career advice\nTimezone: Europe/Berlin\n"
        "Availability: Tue 18:00-20:00\nDetails: I am changing careers into software and "
        "would like a review of my first Python project and my resume.\n"
    )
    return msg.as_bytes()


# Mentors of every kind: some match the requests on both skills, some on one, some on
# none; zones and hours vary so that ranking has real work to do.
MENTOR_SKILLS = (
    "python, career advice",
    "python, devops",
    "career advice, web development",
    "javascript, python",
    "data science, python",
    "java, career advice",
    "go, devops",
    "typescript, web development",
)
MENTOR_ZONES = ("Europe/Berlin", "Europe/London", "America/New_York", "Asia/Kolkata", "CET")
MENTOR_HOURS = (
    "Tue 18:00-20:00",
    "weekdays 7pm-9pm",
    "Mon-Fri 9-17",
    "Tue 17:00-19:00, Sat 10:00-12:00",
    "Wed 12:00-13:00",
)


def mentor_mail(n: int, run: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Mentor {n} <mentor{n}.{run}@example.org>"
    msg["To"] = PROGRAM_USER
    msg["Subject"] = "Mentor enrollment"
    msg["Message-ID"] = make_id(n, run)
    msg.set_content(
        f"Name: Mentor {n}\nSkills: {MENTOR_SKILLS[n % len(MENTOR_SKILLS)]}\n"
        f"Timezone: {MENTOR_ZONES[n % len(MENTOR_ZONES)]}\n"
        f"Availability: {MENTOR_HOURS[n % len(MENTOR_HOURS)]}\n"
        f"Capacity: {2 + n % 4}\nAbout: Ten years of building and shipping software.\n"
    )
    return msg.as_bytes()


MAIL_KINDS = {"request": request_mail, "enrollment": mentor_mail}


# --- the SMTP server, in its own process ------------------------------------------------


def _sink_process(port: int, ready: mp.Event, conn: mp.connection.Connection) -> None:
    from aiosmtpd.controller import Controller

    arrivals: dict[str, float] = {}  # In-Reply-To → when the answer arrived
    every: list[float] = []  # when each email arrived, answers or not
    sizes: list[int] = []  # the bytes of each email

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            now = time.time()
            every.append(now)
            sizes.append(len(envelope.content))
            for line in envelope.content.split(b"\r\n"):
                if not line:
                    break
                if line.lower().startswith(b"in-reply-to:"):
                    arrivals[line.split(b":", 1)[1].strip().decode()] = now
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        command = conn.recv()
        if command == "count":
            conn.send((len(arrivals), len(every)))
        elif command == "take":
            conn.send((dict(arrivals), list(every), list(sizes)))
            arrivals.clear()
            every.clear()
            sizes.clear()
        elif command == "stop":
            controller.stop()
            return


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self._conn, child = mp.Pipe()
        ready = mp.Event()
        self.process = mp.Process(target=_sink_process, args=(self.port, ready, child), daemon=True)
        self.process.start()
        if not ready.wait(15):
            raise RuntimeError("SMTP sink did not start")

    def count(self) -> tuple[int, int]:
        """(answers received, emails received) since the last take()."""
        self._conn.send("count")
        answers, emails = self._conn.recv()
        return int(answers), int(emails)

    def take(self) -> tuple[dict[str, float], list[float], list[int]]:
        """In-Reply-To → arrival time of each answer, the arrival time of every email,
        and the size of every email."""
        self._conn.send("take")
        arrivals, every, sizes = self._conn.recv()
        return dict(arrivals), list(every), list(sizes)

    def stop(self) -> None:
        self._conn.send("stop")
        self.process.join(10)


# --- the APPENDing client, in its own process -------------------------------------------


def _append_process(
    host: str,
    port: int,
    count: int,
    rate: float,
    run: str,
    kind: str,
    conn: mp.connection.Connection,
) -> None:
    from imapclient import IMAPClient

    client = IMAPClient(host, port=port, ssl=False)
    client.login(PROGRAM_USER, PROGRAM_PASSWORD)
    mail = MAIL_KINDS[kind]
    messages = [(make_id(n, run), mail(n, run)) for n in range(count)]
    sent: dict[str, float] = {}
    start = time.time()
    for n, (message_id, raw) in enumerate(messages):
        if rate > 0:
            delay = start + n / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        sent[message_id] = time.time()
        client.append("INBOX", raw)
    client.logout()
    conn.send(sent)


def make_id(n: int, run: str) -> str:
    return f"<{run}.{n}@bench.test>"


def append_all(
    dovecot: Dovecot, count: int, rate: float, run: str, kind: str = "request"
) -> dict[str, float]:
    """APPEND ``count`` messages from another process; Message-ID → APPEND time."""
    parent, child = mp.Pipe()
    process = mp.Process(
        target=_append_process, args=(dovecot.host, dovecot.port, count, rate, run, kind, child)
    )
    process.start()
    sent = parent.recv()
    process.join()
    return dict(sent)


# --- the receivers ---------------------------------------------------------------------


# A program's pace: a 2,000-mentor program takes ~27,700 requests in five years.
CLAIMS_PER_MENTOR_DAY = 27_666 / (5 * 365) / 2_000
RECENT_DAYS = 90  # how far back ranking counts a mentor's sessions (flows/matching.py, RECENT)


def seed_recent_claims(state: Path, mentors: int) -> int:
    """Write the last 90 days of a program's claims into the state (closed requests, each
    claimed by one of the enrolled mentors, spread evenly): a program that has run for a
    while ranks its mentors with their recent sessions counted. Returns how many."""
    from datetime import UTC, datetime, timedelta

    from mentordesk.state.store import Store, iso

    now = datetime.now(UTC)
    count = round(CLAIMS_PER_MENTOR_DAY * RECENT_DAYS * mentors)
    store = Store(state, fsync=False)
    try:
        with store.transaction():
            for k in range(count):
                at = now - timedelta(days=RECENT_DAYS) * (k + 0.5) / count
                mentor = f"mentor{(k * 7919) % mentors}.mentor@example.org"
                store.save_request(
                    {
                        "number": store.new_request_number(),
                        "mentee": f"past{k}@example.net",
                        "name": f"Past Mentee {k}",
                        "skills": ["python"],
                        "status": "closed",
                        "created": iso(at - timedelta(hours=6)),
                        "updated": iso(at + timedelta(days=5)),
                        "claimed_by": mentor,
                        "claimed_at": iso(at),
                    }
                )
    finally:
        store.close()
    return count


def run_mentordesk(
    root: Path,
    dovecot: Dovecot,
    sink: Sink,
    stop: threading.Event,
    started: threading.Event,
    idle: bool,
    connections: int | None = None,
    profile: Path | None = None,
) -> None:
    """Run the daemon; with ``profile``, its store writer thread (where every decision
    runs) is profiled while it runs, and the statistics written there (pstats format)."""
    import cProfile

    from mentordesk.config import load_config
    from mentordesk.daemon import Daemon

    config_path = root / "config.toml"
    config_path.write_text(
        f"""
[program]
name = "Bench Mentors"
address = "{PROGRAM_USER}"
coordinator = "coord@program.test"
secret_env = "BENCH_SECRET"
[inbox]
kind = "imap"
host = "{dovecot.host}"
port = {dovecot.port}
tls = "none"
username = "{PROGRAM_USER}"
password_env = "BENCH_IMAP_PASSWORD"
idle = {"true" if idle else "false"}
poll_interval = "1s"
[smtp]
kind = "smtp"
host = "127.0.0.1"
port = {sink.port}
tls = "none"
{f"connections = {connections}" if connections else ""}
[state]
path = "{root / "state" / "bench.db"}"
fsync = true
[web]
port = {free_port()}
[matching]
invite_count = {INVITE_COUNT}
""",
        encoding="utf-8",
    )
    config = load_config(
        config_path,
        environ={
            "BENCH_SECRET": "bench-secret-0123456789",
            "BENCH_IMAP_PASSWORD": PROGRAM_PASSWORD,
        },
    )

    async def main() -> None:
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        await daemon.ready.wait()
        # CPU time of the thread: waits for the disk and for the GIL are not its work.
        profiler = cProfile.Profile(time.thread_time) if profile else None
        if profiler is not None:
            await daemon.writer.call(profiler.enable)  # that thread only
        cpu = await thread_times(daemon)
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        writer, mailbox, loop = (
            after - before for before, after in zip(cpu, await thread_times(daemon), strict=True)
        )
        print(
            f"mentordesk's CPU seconds by thread: store writer {writer:.2f}, mailbox "
            f"{mailbox:.2f}, event loop {loop:.2f}"
        )
        if profiler is not None:
            await daemon.writer.call(profiler.disable)
            profiler.dump_stats(str(profile))
        daemon.stop()
        await task

    event_loop.run(main())


async def thread_times(daemon: Any) -> tuple[float, float, float]:
    """CPU time so far of the daemon's store writer, mailbox and event loop threads."""
    return (
        await daemon.writer.call(time.thread_time),
        await daemon._in_mailbox_thread(time.thread_time),
        time.thread_time(),
    )


def run_bare_relay(
    dovecot: Dovecot,
    sink: Sink,
    stop: threading.Event,
    started: threading.Event,
    idle: bool,
    connections: int,
) -> None:
    """The floor, doing the same-shape work as mentordesk with nothing else: fetch each
    message whole, send one acknowledgement (In-Reply-To the request) and INVITE_COUNT
    claim-sized emails over ``connections`` parallel SMTP connections, move it. No
    parsing beyond two header lines, no state, no rendering."""
    import aiosmtplib
    from imapclient import IMAPClient

    async def main() -> None:
        client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
        client.login(PROGRAM_USER, PROGRAM_PASSWORD)
        client.create_folder("RelayDone") if not client.folder_exists("RelayDone") else None
        client.select_folder("INBOX")
        outgoing: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=64)

        async def deliver() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False)
            await smtp.connect()
            while (email := await outgoing.get()) is not None:
                await smtp.sendmail(PROGRAM_USER, [email[0]], email[1])
            await smtp.quit()

        senders = [asyncio.create_task(deliver()) for _ in range(connections)]
        started.set()
        while not stop.is_set():
            uids = await asyncio.to_thread(client.search, "ALL")
            if not uids:
                if idle:
                    await asyncio.to_thread(_idle_once, client)
                else:
                    await asyncio.sleep(0.2)
                continue
            batch = uids[:200]
            fetched = await asyncio.to_thread(client.fetch, batch, ["BODY.PEEK[]"])
            for uid in batch:
                raw = fetched[uid][b"BODY[]"]
                message_id = _header(raw, b"message-id") or "<none>"
                sender = _header(raw, b"from") or "someone@example.net"
                for email in relay_emails(message_id, sender):
                    if failed := [s for s in senders if s.done()]:
                        await failed[0]  # raises what stopped it
                    await outgoing.put(email)
            await asyncio.to_thread(client.move, batch, "RelayDone")
        for _ in senders:
            await outgoing.put(None)
        await asyncio.gather(*senders)
        client.logout()

    event_loop.run(main())  # the daemon's loop, so that only the work differs


# About the size of mentordesk's emails (text and HTML of a request's details, links,
# the mentor's load): the relay sends as many bytes (the table shows both means).
EMAIL_BYTES = 5600


def relay_emails(message_id: str, sender: str) -> list[tuple[str, bytes]]:
    """What the relay sends for one request: an acknowledgement and the claim emails."""
    line = "Details of the request, the mentee's hours and the claim link.\r\n"
    filler = line * ((EMAIL_BYTES - 250) // len(line))
    ack = (
        f"From: {PROGRAM_USER}\r\nTo: {sender}\r\nSubject: Re: Mentor request\r\n"
        f"In-Reply-To: {message_id}\r\nMessage-ID: <ack.{message_id.strip('<>')}>\r\n"
        f"\r\n{filler}\r\n"
    )
    emails = [(sender, ack.encode())]
    for n in range(INVITE_COUNT):
        claim = (
            f"From: {PROGRAM_USER}\r\nTo: mentor{n}@example.org\r\n"
            f"Subject: Can you take a request?\r\n"
            f"Message-ID: <claim{n}.{message_id.strip('<>')}>\r\n\r\n{filler}\r\n"
        )
        emails.append((f"mentor{n}@example.org", claim.encode()))
    return emails


def _header(raw: bytes, name: bytes) -> str:
    """The value of header ``name`` (lower-case) in ``raw``, "" when absent."""
    for line in raw.split(b"\r\n"):
        if not line:
            break
        if line.lower().startswith(name + b":"):
            value = line.split(b":", 1)[1].strip().decode(errors="replace")
            found = re.search(r"<[^>]*@[^>]*>", value) if name == b"from" else None
            return found.group(0).strip("<>") if found else value
    return ""


def _idle_once(client: object) -> None:
    client.idle()  # type: ignore[attr-defined]
    client.idle_check(timeout=1)  # type: ignore[attr-defined]
    client.idle_done()  # type: ignore[attr-defined]


# --- measuring --------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(
    name: str,
    receiver,  # type: ignore[no-untyped-def]
    dovecot: Dovecot,
    sink: Sink,
    count: int,
    rate: float,
    run: str,
    *,
    emails_per_message: int = 1,
    kind: str = "request",
    preload: bool = False,
) -> dict[str, float]:
    """Start ``receiver``, APPEND ``count`` messages, wait for every email they cause.

    ``preload``: the messages are all in the mailbox before the receiver starts, and the
    clock runs from its start to the last email: its throughput, not the APPENDing
    client's (which shares the two cores while it runs)."""
    sink.take()
    stop, started = threading.Event(), threading.Event()
    thread = threading.Thread(target=receiver, args=(stop, started), daemon=True)
    if preload:
        sent = append_all(dovecot, count, 0, run, kind)
    thread.start()
    if not started.wait(120):
        raise RuntimeError(f"{name} did not start")
    began, cpu_began = time.time(), time.process_time()
    if not preload:
        sent = append_all(dovecot, count, rate, run, kind)
        began = min(sent.values())
    expected = count * emails_per_message
    deadline = time.time() + max(120.0, count / 5)
    while time.time() < deadline:
        answers, emails = sink.count()
        if answers >= count and emails >= expected:
            break
        time.sleep(0.1)
    # The receivers run in this process (the client and the server in their own).
    cpu = time.process_time() - cpu_began
    time.sleep(0.2)  # anything more (there should be nothing) would show as extra
    arrivals, every, sizes = sink.take()
    stop.set()
    thread.join(60)
    latencies = [arrivals[mid] - sent[mid] for mid in sent if mid in arrivals]
    elapsed = max(every, default=time.time()) - began
    return {
        "count": count,
        "received": len(latencies),
        "missing": count - len(latencies),
        "emails": len(every),
        "emails_expected": expected,
        "bytes_per_email": statistics.mean(sizes) if sizes else 0.0,
        "cpu_ms": 1000 * cpu / count if count else 0.0,
        "throughput": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "emails_per_s": len(every) / elapsed if elapsed > 0 else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99) if latencies else float("nan"),
    }


def verdict(figure: str, target: str, ok: bool) -> None:
    print(f"{figure:<40} target {target:<10} {'OK' if ok else 'MISSED'}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000, help="messages in the throughput run")
    parser.add_argument("--paced", type=int, default=200, help="messages in the paced latency run")
    parser.add_argument("--rate", type=float, default=10.0, help="messages/s in the paced run")
    parser.add_argument("--poll", action="store_true", help="poll instead of IMAP IDLE")
    parser.add_argument(
        "--mentors", type=int, default=50, help="mentors enrolled by email before the runs"
    )
    parser.add_argument(
        "--no-recent-claims",
        dest="recent_claims",
        action="store_false",
        help="leave the mentors without claims (by default the last 90 days hold a "
        "program's pace of claims, as ranking reads them)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=None,
        help="[smtp] connections for mentordesk (default: mentordesk's own default)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write a cProfile of mentordesk's store writer thread during the preloaded run "
        "to this file (pstats format)",
    )
    parser.add_argument(
        "--compose",
        choices=("direct", "email-package"),
        default="direct",
        help="how mentordesk writes each email: its direct MIME writer (what ships) or the "
        "email package's message objects (the reference), to measure what the first buys",
    )
    args = parser.parse_args()
    idle = not args.poll
    if args.compose == "email-package":
        import mentordesk.mailer.outbox as outbox
        from mentordesk.mailer.compose import Email, as_bytes, build_message

        def by_message_objects(email: Email) -> bytes:
            return as_bytes(build_message(email))

        outbox.message_bytes = by_message_objects

    with tempfile.TemporaryDirectory(prefix="md-bench-") as tmp, Dovecot() as dovecot:
        dovecot.add_user(PROGRAM_USER, PROGRAM_PASSWORD)
        dovecot.start()
        sink = Sink()
        root = Path(tmp)
        try:
            results: dict[str, dict[str, dict[str, float]]] = {}
            receivers = {
                "mentordesk": lambda stop, started: run_mentordesk(
                    root, dovecot, sink, stop, started, idle, args.connections
                ),
                "bare relay": lambda stop, started: run_bare_relay(
                    dovecot, sink, stop, started, idle, args.connections or DEFAULT_CONNECTIONS
                ),
            }
            # Not measured: the mentors enroll (and get their confirmations) first.
            seeded = measure(
                "mentordesk",
                receivers["mentordesk"],
                dovecot,
                sink,
                args.mentors,
                0,
                "mentor",
                kind="enrollment",
                preload=True,
            )
            if seeded["missing"]:
                raise RuntimeError(f"{int(seeded['missing'])} enrollments were not confirmed")
            if args.recent_claims:
                recent = seed_recent_claims(root / "state" / "bench.db", args.mentors)
                print(f"{recent:,} requests claimed in the last 90 days, at a program's pace")
            per = 1 + INVITE_COUNT  # both receivers
            for name, receiver in receivers.items():
                results[name] = {}
                if args.paced:
                    results[name]["paced"] = measure(
                        name,
                        receiver,
                        dovecot,
                        sink,
                        args.paced,
                        args.rate,
                        f"{name[:4]}-p",
                        emails_per_message=per,
                    )
                if name == "mentordesk" and args.profile:
                    receiver = functools.partial(
                        run_mentordesk,
                        root,
                        dovecot,
                        sink,
                        idle=idle,
                        connections=args.connections,
                        profile=args.profile,
                    )
                results[name]["burst"] = measure(
                    name,
                    receiver,
                    dovecot,
                    sink,
                    args.messages,
                    0,
                    f"{name[:4]}-b",
                    emails_per_message=per,
                    preload=True,
                )
        finally:
            sink.stop()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mode = "IDLE" if idle else "polling"
    print(
        f"\nIntake benchmark ({mode}; {os.cpu_count()} cores; {args.mentors} mentors, "
        f"each receiver sends 1 + {INVITE_COUNT} emails per request; both on the "
        f"{event_loop.loop_name()} event loop)"
    )
    print(
        f"{'receiver':<12} {'run':<24} {'acks':>6} {'emails':>7} {'bytes':>6} {'req/s':>8} "
        f"{'emails/s':>9} {'CPU ms/req':>10} {'p50 s':>7} {'p99 s':>7}"
    )
    for name, runs in results.items():
        for run, figures in runs.items():
            label = (
                f"paced {args.rate:g}/s × {args.paced}"
                if run == "paced"
                else f"preloaded × {args.messages}"
            )
            print(
                f"{name:<12} {label:<24} {int(figures['received']):>6} "
                f"{int(figures['emails']):>7} {figures['bytes_per_email']:>6.0f} "
                f"{figures['throughput']:>8.1f} {figures['emails_per_s']:>9.1f} "
                f"{figures['cpu_ms']:>10.1f} {figures['p50']:>7.3f} {figures['p99']:>7.3f}"
            )
    desk, relay = results["mentordesk"], results["bare relay"]
    ratio = (
        desk["burst"]["throughput"] / relay["burst"]["throughput"]
        if relay["burst"]["throughput"]
        else 0
    )
    throughput = desk["burst"]["throughput"]
    target = target_throughput(args.mentors)
    print()
    if "paced" in desk:
        p50 = desk["paced"]["p50"]
        verdict(f"p50 latency (paced)      {p50:.3f} s", f"< {TARGET_P50_S} s", p50 < TARGET_P50_S)
    verdict(
        f"throughput (preloaded)   {throughput:.1f} req/s",
        f"≥ {target:g}",
        throughput >= target,
    )
    verdict(f"vs bare relay            {ratio:.2f}×", "≥ 0.5×", ratio >= 0.5)
    verdict(f"peak RSS (this process)  {rss_mb:.0f} MB", "< 150 MB", rss_mb < 150)
    lost = sum(r["missing"] for r in desk.values())
    print(f"acknowledgements missing {int(lost)}")
    emails_off = sum(int(r["emails"] - r["emails_expected"]) for r in desk.values())
    print(f"emails missing (-) or extra (+) {emails_off:+d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
