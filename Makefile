# make demo   set up .venv and run the demo
# make test   set up everything the tests need, then run them (PYTEST_ARGS="-k imap")
# make lint   ruff

PYTEST_ARGS ?=

.PHONY: demo test lint

demo:
	scripts/setup.sh
	.venv/bin/mentordesk demo

test:
	scripts/setup-tests.sh
	.venv/bin/python -m pytest $(PYTEST_ARGS)

lint:
	scripts/setup-tests.sh --python-only
	.venv/bin/ruff check .
