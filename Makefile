# make demo   set up .venv and run the demo
# make test   set up everything the tests need, then run them (PYTEST_ARGS="-k imap")
# make lint   ruff and mypy --strict (the package and the tests)
# make bench  run every benchmark in bench/ (prints figures against the targets)

PYTEST_ARGS ?=

.PHONY: demo test lint bench

demo:
	scripts/setup.sh
	.venv/bin/mentordesk demo

test:
	scripts/setup-tests.sh
	.venv/bin/python -m pytest $(PYTEST_ARGS)

lint:
	scripts/setup-tests.sh --python-only
	.venv/bin/ruff check .
	.venv/bin/mypy

bench:
	scripts/setup-tests.sh
	for script in bench/*.py; do echo "== $$script"; .venv/bin/python $$script || exit 1; done
