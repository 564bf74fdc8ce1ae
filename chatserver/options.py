"""The command line's option types and parser: each bad value is refused on one line naming the option."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, NoReturn


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it has none or its help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with the defaults in every option's help and a mistake reported on one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpWithDefaults)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, not {raw!r}")
    return int(raw)


def positive_int(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {raw!r}")
    return int(raw)


def positive_seconds(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds, not {raw!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"a number of seconds above 0 (the token would be born expired), not {raw!r}")
    return seconds


def non_blank(raw: str) -> str:
    if not raw.strip():
        raise argparse.ArgumentTypeError("must not be blank")
    return raw.strip()


def json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error.msg}): {raw!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object such as '{{\"hat\": 2}}', not {raw!r}")
    return value


def http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"an http:// or https:// URL, not {raw!r}")
    return raw


def ws_url(raw: str) -> str:
    if not raw.startswith(("ws://", "wss://")):
        raise argparse.ArgumentTypeError(f"a ws:// or wss:// URL, not {raw!r}")
    return raw


def timestamp(raw: str) -> str:
    try:
        datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an ISO 8601 time such as 2026-11-25T18:15:33.925Z, not {raw!r}") from None
    return raw
