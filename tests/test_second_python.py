"""The header-injection guard holds on Debian's own Python too (issue 14, item 1).

Whether the email package decodes an RFC 2047 word back into CR/LF differs between patch
releases (3.11.7 and 3.12.1 injected; others did not), so the guard in
``mailer/compose.py`` and the address reading in ``inbox/`` are tested on both
interpreters this machine has: the one running this suite, and Debian's ``python3``
(``scripts/setup-tests.sh`` installs it). There the same tests run in a subprocess with
this project and this environment's packages on its path; a missing interpreter fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import mentordesk

DEBIAN_PYTHON = Path("/usr/bin/python3")
CODE = Path(mentordesk.__file__).resolve().parent.parent
# The tests of compose.py (the encoder, the last guard, what ships), and the inbox's
# reading of hostile From, Reply-To and recipient headers.
TESTS = [
    "tests/test_compose.py",
    "tests/test_hostile_parse.py::test_the_sender_comes_only_from_a_valid_addr_spec",
    "tests/test_hostile_parse.py::test_reply_to_and_recipients_are_validated_the_same_way",
    "tests/test_hostile_parse.py::test_mail_without_a_readable_sender_has_no_sender_and_says_why",
    "tests/test_hostile_parse.py::test_clean_address_accepts_only_plain_addresses",
]
# Not these: a thousand messages each, to show the fast path writes what the email
# package would — about speed, not safety, and the slowest tests of the file.
SKIP = "not (serialises_to or as_the_email_package_does)"


def version_of(python: Path | str) -> str:
    done = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_header_guard_holds_on_debians_python() -> None:
    assert DEBIAN_PYTHON.exists(), f"{DEBIAN_PYTHON} is missing: run scripts/setup-tests.sh"
    version = version_of(DEBIAN_PYTHON)
    # The packages here are built for this minor version: the same must run them.
    assert version.rsplit(".", 1)[0] == "{}.{}".format(*sys.version_info[:2]), version
    packages = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(CODE), *sorted(packages)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [DEBIAN_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-k", SKIP, *TESTS],
        cwd=CODE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = done.stdout[:600] + "\n...\n" + done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, f"on Python {version}:\n{report}"
    # Debian's interpreter ran them (pytest's header names it), all of them.
    assert f"-- Python {version}," in done.stdout, report
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary
