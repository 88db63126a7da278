"""Intake benchmark: requests into a real Dovecot, acknowledgements out to a real SMTP server.

    .venv/bin/python bench/intake.py                 # 5,000 messages, then a paced latency run
    .venv/bin/python bench/intake.py --messages 500  # quicker

For each of two receivers — mentordesk itself and a bare relay (IDLE, fetch, send one
fixed reply, move; no parsing, no state) run in the same process — it measures:

- throughput: N requests APPENDed as fast as a separate process can, divided by the time
  from the first APPEND to the last email they caused arriving at the SMTP server
  (requests/s), and the emails/s that makes;
- latency: APPEND → acknowledgement received at the SMTP server (the email whose
  In-Reply-To is the request's Message-ID), p50/p99, in a paced run (default 10
  requests/s) where queueing does not dominate.

mentordesk runs as a program really does: before the measured runs, ``--mentors``
mentors (default 50) enroll by email, so every request matches and, besides its
acknowledgement, sends ``invite_count`` (3) claim invitations — 4 emails per request.
The bare relay sends one email per request.

The APPENDing client and the SMTP server run in their own processes so that they do not
compete with the receiver for the interpreter. Targets (issue 2, 2-core machine): p50
< 0.8 s with IDLE, ≥ 100 messages/s over 5,000 messages, ≥ half the bare relay's
throughput, resident memory < 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import PROGRAM_PASSWORD, PROGRAM_USER, Dovecot, free_port  # noqa: E402

TARGET_P50_S = 0.8
TARGET_THROUGHPUT = 100.0
INVITE_COUNT = 3


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

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            now = time.time()
            every.append(now)
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
            conn.send((dict(arrivals), list(every)))
            arrivals.clear()
            every.clear()
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

    def take(self) -> tuple[dict[str, float], list[float]]:
        """In-Reply-To → arrival time of each answer, and the arrival time of every email."""
        self._conn.send("take")
        arrivals, every = self._conn.recv()
        return dict(arrivals), list(every)

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


def run_mentordesk(
    root: Path,
    dovecot: Dovecot,
    sink: Sink,
    stop: threading.Event,
    started: threading.Event,
    idle: bool,
    connections: int | None = None,
) -> None:
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
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        daemon.stop()
        await task

    asyncio.run(main())


def run_bare_relay(
    dovecot: Dovecot, sink: Sink, stop: threading.Event, started: threading.Event, idle: bool
) -> None:
    """The floor: fetch each message, send one fixed reply, move it. Nothing else."""
    import aiosmtplib
    from imapclient import IMAPClient

    async def main() -> None:
        client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
        client.login(PROGRAM_USER, PROGRAM_PASSWORD)
        client.create_folder("RelayDone") if not client.folder_exists("RelayDone") else None
        client.select_folder("INBOX")
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False)
        await smtp.connect()
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
            fetched = await asyncio.to_thread(
                client.fetch, batch, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID FROM)]"]
            )
            for uid in batch:
                header = fetched[uid][b"BODY[HEADER.FIELDS (MESSAGE-ID FROM)]"]
                message_id = next(
                    (
                        line.split(b":", 1)[1].strip().decode()
                        for line in header.split(b"\r\n")
                        if line.lower().startswith(b"message-id:")
                    ),
                    "<none>",
                )
                reply = (
                    f"From: {PROGRAM_USER}\r\nTo: someone@example.net\r\n"
                    f"Subject: Re: Mentor request\r\nIn-Reply-To: {message_id}\r\n\r\nThanks!\r\n"
                )
                await smtp.sendmail(PROGRAM_USER, ["someone@example.net"], reply.encode())
            await asyncio.to_thread(client.move, batch, "RelayDone")
        await smtp.quit()
        client.logout()

    asyncio.run(main())


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
) -> dict[str, float]:
    """Start ``receiver``, APPEND ``count`` messages, wait for every email they cause."""
    sink.take()
    stop, started = threading.Event(), threading.Event()
    thread = threading.Thread(target=receiver, args=(stop, started), daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError(f"{name} did not start")
    sent = append_all(dovecot, count, rate, run, kind)
    expected = count * emails_per_message
    deadline = time.time() + max(120.0, count / 20)
    while time.time() < deadline:
        answers, emails = sink.count()
        if answers >= count and emails >= expected:
            break
        time.sleep(0.1)
    time.sleep(0.2)  # anything more (there should be nothing) would show as extra
    arrivals, every = sink.take()
    stop.set()
    thread.join(30)
    latencies = [arrivals[mid] - sent[mid] for mid in sent if mid in arrivals]
    first, last = min(sent.values()), max(every, default=time.time())
    elapsed = last - first
    return {
        "count": count,
        "received": len(latencies),
        "missing": count - len(latencies),
        "emails": len(every),
        "emails_expected": expected,
        "throughput": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "emails_per_s": len(every) / elapsed if elapsed > 0 else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99) if latencies else float("nan"),
        "append_s": max(sent.values()) - first,
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
        "--connections",
        type=int,
        default=None,
        help="[smtp] connections for mentordesk (default: mentordesk's own default)",
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
                    dovecot, sink, stop, started, idle
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
            )
            if seeded["missing"]:
                raise RuntimeError(f"{int(seeded['missing'])} enrollments were not confirmed")
            emails_per_request = {"mentordesk": 1 + INVITE_COUNT, "bare relay": 1}
            for name, receiver in receivers.items():
                per = emails_per_request[name]
                results[name] = {
                    "paced": measure(
                        name,
                        receiver,
                        dovecot,
                        sink,
                        args.paced,
                        args.rate,
                        f"{name[:4]}-p",
                        emails_per_message=per,
                    ),
                    "burst": measure(
                        name,
                        receiver,
                        dovecot,
                        sink,
                        args.messages,
                        0,
                        f"{name[:4]}-b",
                        emails_per_message=per,
                    ),
                }
        finally:
            sink.stop()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mode = "IDLE" if idle else "polling"
    print(
        f"\nIntake benchmark ({mode}; {os.cpu_count()} cores; {args.mentors} mentors, "
        f"mentordesk sends 1 + {INVITE_COUNT} emails per request)"
    )
    print(
        f"{'receiver':<12} {'run':<24} {'acks':>6} {'emails':>7} {'req/s':>8} "
        f"{'emails/s':>9} {'p50 s':>7} {'p99 s':>7}"
    )
    for name, runs in results.items():
        for run, figures in runs.items():
            label = (
                f"paced {args.rate:g}/s × {args.paced}"
                if run == "paced"
                else f"burst × {args.messages}"
            )
            print(
                f"{name:<12} {label:<24} {int(figures['received']):>6} "
                f"{int(figures['emails']):>7} {figures['throughput']:>8.1f} "
                f"{figures['emails_per_s']:>9.1f} {figures['p50']:>7.3f} {figures['p99']:>7.3f}"
            )
    desk, relay = results["mentordesk"], results["bare relay"]
    ratio = (
        desk["burst"]["throughput"] / relay["burst"]["throughput"]
        if relay["burst"]["throughput"]
        else 0
    )
    p50, throughput = desk["paced"]["p50"], desk["burst"]["throughput"]
    print()
    verdict(f"p50 latency (paced)      {p50:.3f} s", f"< {TARGET_P50_S} s", p50 < TARGET_P50_S)
    verdict(
        f"throughput (burst)       {throughput:.1f} req/s",
        f"≥ {TARGET_THROUGHPUT:g}",
        throughput >= TARGET_THROUGHPUT,
    )
    verdict(f"vs bare relay            {ratio:.2f}×", "≥ 0.5×", ratio >= 0.5)
    verdict(f"peak RSS (this process)  {rss_mb:.0f} MB", "< 150 MB", rss_mb < 150)
    lost = desk["burst"]["missing"] + desk["paced"]["missing"]
    print(f"acknowledgements missing {int(lost)}")
    emails_off = sum(int(r["emails"] - r["emails_expected"]) for r in desk.values())
    print(f"emails missing (-) or extra (+) {emails_off:+d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
