#!/usr/bin/env bash
# Everything the test suite needs: the Python test extras in .venv, and the Debian
# packages dovecot-imapd (tests run private Dovecot instances), chromium (browser
# tests), python3 (Debian's own interpreter, a second Python the header-injection tests
# run on) and systemd (for `systemd-analyze verify` of contrib/mentordesk.service; it
# installs in a container without being booted, and nothing here starts it). Safe to
# run again: fast when everything is there.
#
#   scripts/setup-tests.sh                 everything
#   scripts/setup-tests.sh --python-only   skip the Debian packages (enough for `make lint`)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

STAMP=.venv/.mentordesk-test-installed
if ! { [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] \
    && .venv/bin/python -c 'import pytest, pytest_asyncio, aiosmtpd, playwright, vobject, hypothesis, trustme
import prometheus_client, pythonjsonlogger.json' \
        2>/dev/null; }; then
    echo "setup-tests.sh: installing the test extras into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    touch "$STAMP"
fi

if [ "${1:-}" = "--python-only" ]; then
    exit 0
fi

# Mozilla's ical.js (Thunderbird's parser) reads every invitation the tests build;
# Deque's axe-core checks the desk's pages for accessibility in Chromium.
install_icaljs() {
    if [ ! -f tests/js/node_modules/ical.js/package.json ] \
        || [ ! -f tests/js/node_modules/axe-core/axe.min.js ] \
        || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
        echo "setup-tests.sh: installing ical.js and axe-core from tests/js/package-lock.json"
        npm ci --no-audit --no-fund --prefix tests/js
    fi
}

missing=()
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
# Debian's own Python: the header-injection guard is tested on it too (its patch
# release differs from the venv's; see tests/test_second_python.py).
[ -x /usr/bin/python3 ] || missing+=(python3)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v openssl >/dev/null || missing+=(openssl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -eq 0 ]; then
    install_icaljs
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "setup-tests.sh: please install ${missing[*]} (Debian package names);" \
        "this script only knows apt-get" >&2
    exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

echo "setup-tests.sh: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"

# The dovecot-core package starts and enables a system-wide Dovecot listening on ports
# 143 and 993 of every interface (where an init system lets it: in Docker images
# /usr/sbin/policy-rc.d usually forbids it). The tests start their own private
# instances on loopback and need none of that, so stop and disable it.
if [[ " ${missing[*]} " == *" dovecot-imapd "* ]]; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        "${SUDO[@]}" systemctl disable --now dovecot.service dovecot.socket 2>/dev/null || true
    elif [ -x /etc/init.d/dovecot ]; then
        "${SUDO[@]}" /etc/init.d/dovecot stop >/dev/null 2>&1 || true
        if command -v update-rc.d >/dev/null; then
            "${SUDO[@]}" update-rc.d dovecot disable >/dev/null 2>&1 || true
        fi
    fi
fi

install_icaljs
