"""Structured logs: one JSON object a line, with the ``extra`` fields (player id, connection) kept."""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
from typing import Any
from urllib.parse import unquote_plus

_STANDARD_ATTRIBUTES = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    """Renders a record as JSON so log pipelines can filter by ``player_id`` without parsing text."""

    def __init__(self, replica: str) -> None:
        super().__init__()
        self._replica = replica

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "replica": self._replica,
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRIBUTES})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_QUERY = re.compile(r"\?([^\s\"#]+)")


def redact_query_tokens(text: str) -> str:
    """Blank every query value whose decoded name is ``token``: ``?%74oken=`` authenticates as well as ``?token=``."""
    return _QUERY.sub(lambda query: "?" + "&".join(map(_redacted_pair, query.group(1).split("&"))), text)


def _redacted_pair(pair: str) -> str:
    name, equals, _ = pair.partition("=")
    if equals and unquote_plus(name).strip().lower() == "token":
        return f"{name}=[redacted]"
    return pair


class RedactTokens(logging.Filter):
    """Blank query tokens in every line, such as uvicorn's "WebSocket /ws/chat?token=..." lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_query_tokens(record.msg)
        return True


_UVICORN_NOISE = {
    # websockets-sansio logs this at ERROR after a denial response (it never marks a denied handshake
    # complete): every refused token would page an operator. Our endpoint always accepts or denies.
    "ASGI callable returned without completing handshake.",
    # httptools logs this at WARNING for every unparsable request, before request_head.py answers it:
    # one line per garbage connection is a log flood; chat_request_heads_refused_total counts them.
    "Invalid HTTP request received.",
    # And this for every request asking to upgrade to anything but a WebSocket (curl's h2c, say),
    # which it then serves as plain HTTP/1.1: nothing for an operator to act on.
    "Unsupported upgrade request.",
}


class DropUvicornNoise(logging.Filter):
    """Drop uvicorn's lines that an anonymous client can make it write at will (each said why above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in _UVICORN_NOISE


def logging_config(level: str, replica: str) -> dict[str, Any]:
    """The JSON set-up as a ``dictConfig``: uvicorn applies it in every worker process it starts too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "replica": replica}},
        "filters": {"redact": {"()": RedactTokens}, "uvicorn_noise": {"()": DropUvicornNoise}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["redact", "uvicorn_noise"]}
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


def configure_logging(level: str, replica: str) -> None:
    logging.config.dictConfig(logging_config(level, replica))
    logging.captureWarnings(True)  # a library's warning becomes a JSON line too, not raw text in the log
