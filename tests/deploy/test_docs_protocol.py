"""docs/protocol.md says what the code does: its event names, fields, reasons, dialects and close codes."""

from __future__ import annotations

import re

from chatserver.protocol.errors import ChatError
from chatserver.protocol.models import Message, ReadyFrame
from chatserver.protocol.vocabulary import BroadcastEvent, CloseCode, Dialect, ErrorReason, InboundEvent
from tests.support.harness import ROOT

DOC = (ROOT / "docs" / "protocol.md").read_text()


def section(number: int) -> str:
    """The text of ``## <number>.`` up to the next section."""
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", DOC, re.MULTILINE | re.DOTALL)
    assert match is not None, f"docs/protocol.md has no section {number}"
    return match.group(0)


def first_cells(text: str) -> list[str]:
    """The first column of every table row (header and rule rows left out), backticks removed."""
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    return [row.split(" | ")[0].removeprefix("| ").strip("` ") for row in rows[1:]]


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_client_events_are_exactly_the_inbound_events() -> None:
    assert first_cells(section(2)) == [event.value for event in InboundEvent]


def test_the_broadcast_events_and_the_message_fields_are_the_models() -> None:
    cells = first_cells(section(3))
    broadcast = [cell for cell in cells if cell in {event.value for event in BroadcastEvent}]
    assert broadcast == [event.value for event in BroadcastEvent]
    fields = cells[len(broadcast) + 1 :]  # the second table, after its header row
    assert fields == [field.alias or name for name, field in Message.model_fields.items()]
    assert all(f'"{key}"' in section(3) for key in ReadyFrame.model_fields)


def test_the_dialects_and_their_subprotocols_are_the_codes() -> None:
    rows = table_rows(section(4))[1:]
    assert [(row[0], row[1]) for row in rows] == [(dialect.value, dialect.subprotocol) for dialect in Dialect]


def test_the_error_reasons_and_their_statuses_are_the_codes() -> None:
    rows = table_rows(section(7))[1:]
    assert [row[0] for row in rows] == [reason.value for reason in ErrorReason]
    for reason, status in ((row[0], int(row[1])) for row in rows):
        assert ChatError.of(ErrorReason(reason), None, "x").status_code == status, reason


def test_the_close_codes_are_every_close_the_server_starts() -> None:
    rows = table_rows(section(8))[1:]
    documented = {(int(row[0]), row[1]) for row in rows if not row[1].startswith("(")}
    assert documented == {(close.code, close.reason) for close in CloseCode}
