"""A delivery or feedback report is read within a size cap (issue 14: "every parser has
size limits applied before the work").

The parts a report returns — our message's headers, the delivery-status fields, the
feedback fields — are small when a mail system writes them. A forged one may carry ten
megabytes in such a part: it is cut before it is decoded and parsed, and what matters
(the first fields) is still read.
"""

from __future__ import annotations

import base64
import email
import tracemalloc

import pytest

from mentordesk.inbox.delivery import delivery_report

MB = 1_000_000
FILLER = b"X-Filler: " + b"a" * 70 + b"\r\n"


def report(returned_type: str, encoding: str) -> bytes:
    returned = (
        b"From: Test Mentors <mentors@program.test>\r\nTo: ana@example.org\r\n"
        b"Message-ID: <ours-1@program.test>\r\n"
    ) + FILLER * (10 * MB // len(FILLER))
    body = base64.encodebytes(returned) if encoding == "base64" else returned
    return b"\r\n".join(
        [
            b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>",
            b"To: mentors@program.test",
            b"Subject: Undelivered Mail Returned to Sender",
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
            b"",
            b"--r",
            b"Content-Type: text/plain",
            b"",
            b"Your message could not be delivered.",
            b"--r",
            b"Content-Type: message/delivery-status",
            b"",
            b"Reporting-MTA: dns; mx.example.org",
            b"",
            b"Final-Recipient: rfc822; ana@example.org",
            b"Action: failed",
            b"Status: 5.1.1",
            b"",
            b"--r",
            f"Content-Type: {returned_type}".encode(),
            f"Content-Transfer-Encoding: {encoding}".encode(),
            b"",
            body,
            b"--r--",
            b"",
        ]
    )


@pytest.mark.parametrize("encoding", ["base64", "7bit"])
def test_ten_megabytes_of_returned_headers_are_cut_before_they_are_decoded(
    encoding: str,
) -> None:
    msg = email.message_from_bytes(report("text/rfc822-headers", encoding))
    tracemalloc.start()
    try:
        found = delivery_report(msg, "Your message could not be delivered.", "", "", {}, ())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found is not None
    assert found.failed_recipients == ("ana@example.org",)
    assert found.original_message_id == "<ours-1@program.test>"  # the first fields still count
    # The email package copies a part's text once to look at it (get_payload); the
    # decoding and parsing after it see 100 KB, not the 10 MB (then: 105 MB at peak).
    assert peak < 16 * MB, f"{peak:,} bytes at peak"
