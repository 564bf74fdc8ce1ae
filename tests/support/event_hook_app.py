"""An application embedding the chat with an event hook, as README's "Events" shows: each event a JSON line.

Run by ``test_events.py`` as ``python -m uvicorn tests.support.event_hook_app:app``; ``EVENTS_FILE`` names the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chatserver.app import create_app
from chatserver.settings import Settings

EVENTS_FILE = Path(os.environ["EVENTS_FILE"])


async def write_event(event: dict[str, Any]) -> None:
    with EVENTS_FILE.open("a") as lines:
        lines.write(json.dumps(event) + "\n")


app = create_app(Settings.from_env(), on_event=[write_event])
