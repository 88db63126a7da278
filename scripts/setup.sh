#!/usr/bin/env bash
# Create .venv (if missing) and install mentordesk into it, editable.
# Safe to run again: it does nothing when the install is up to date with pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
STAMP=.venv/.mentordesk-installed

if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "setup.sh: mentordesk needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    echo "setup.sh: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi

# Up to date when the stamp is newer than pyproject.toml and the package imports.
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] \
    && .venv/bin/python -c 'import mentordesk' 2>/dev/null; then
    exit 0
fi

echo "setup.sh: installing mentordesk into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
touch "$STAMP"
