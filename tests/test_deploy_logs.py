"""The log's formatter: secrets cut out of every line (tracebacks and JSON included)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mentordesk.logs import hide_secrets, log_handler

SECRET = 'pa"ss\\word-42'  # quotes and a backslash: JSON escapes them


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_never_reach_the_log(log_format: str) -> None:
    stream = io.StringIO()
    handler = log_handler(log_format, stream)
    logger = logging.getLogger(f"test.secrets.{log_format}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        hide_secrets([SECRET, "", "ab"], [handler])  # empty and tiny values are ignored
        logger.warning("login with %s failed", SECRET)
        try:
            raise RuntimeError(f"server echoed {SECRET}")
        except RuntimeError:
            logger.exception("trouble")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "word-42" not in text
    assert text.count("***") == 2  # in the message and in the traceback
    if log_format == "json":
        records = [json.loads(line) for line in text.splitlines()]
        assert records[0]["message"] == "login with *** failed"
        assert records[0]["level"] == "WARNING" and "time" in records[0]
        assert "RuntimeError: server echoed ***" in records[1]["exc_info"]
    else:
        assert "WARNING test.secrets.text: login with *** failed" in text
        assert "RuntimeError: server echoed ***" in text


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        log_handler("xml", io.StringIO())
