"""Logs: query tokens redacted by their decoded name, and the JSON set-up in every process (``--workers`` too)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chatserver.logs import logging_config, redact_query_tokens
from chatserver.server import uvicorn_config
from chatserver.settings import Settings
from tests.support.harness import ROOT


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


WORKER = """
import logging, logging.config, sys
from chatserver.logs import logging_config
logging.config.dictConfig(logging_config("info", "host:8080"))
logging.getLogger("chatserver.services").warning("from a worker: %s", "/ws/chat?token=abc.def.ghi")
"""


def test_uvicorn_hands_each_worker_the_json_log_config() -> None:
    config = uvicorn_config(
        "chatserver.app:app_from_env",
        Settings(),
        host="127.0.0.1",
        port=8080,
        workers=2,
        log_level="info",
        replica="host:8080",
    )
    assert config.log_config == logging_config("info", "host:8080")


def test_a_process_with_the_config_writes_json_lines_with_tokens_redacted() -> None:
    result = subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, capture_output=True, text=True, timeout=30)

    assert (result.returncode, result.stdout) == (0, "")
    entry = json.loads(result.stderr)
    assert {k: entry[k] for k in ("level", "logger", "message", "replica")} == {
        "level": "WARNING",
        "logger": "chatserver.services",
        "message": "from a worker: /ws/chat?token=[redacted]",
        "replica": "host:8080",
    }
