"""Log redaction in-process: query tokens are found by their decoded name, everything else is left as written."""

from __future__ import annotations

import pytest

from chatserver.logs import redact_query_tokens


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        ('"WebSocket /ws/chat?token=a.b.c" [accepted]', '"WebSocket /ws/chat?token=[redacted]" [accepted]'),
        ("/ws/chat?%74oken=a.b.c&since=2026-01-01", "/ws/chat?%74oken=[redacted]&since=2026-01-01"),
        ("/ws/chat?since=1&TOKEN=a.b.c", "/ws/chat?since=1&TOKEN=[redacted]"),
        ("/ws/chat?+token+=a.b.c", "/ws/chat?+token+=[redacted]"),
        ("/ws/chat?tokens=kept&token", "/ws/chat?tokens=kept&token"),
        ("is this a question? yes=no", "is this a question? yes=no"),
    ],
)
def test_query_tokens_are_redacted_by_their_decoded_name(line: str, redacted: str) -> None:
    assert redact_query_tokens(line) == redacted
