"""``encoding``: JSON cost of the chat path, as it is (pydantic-core, ``json``) against orjson, side by side.

The issue asks for orjson "if it measurably helps". This answers it with the server's own objects:
an embedded ``Services`` (memory store, in-process broker, no sockets) is filled through the real use
cases, then each JSON step of the data path is timed both ways in this one process, interleaved, best
of several repeats:

- a broadcast frame: ``outbound.broadcast_text`` (pydantic-core's ``model_dump_json``, once per change)
  against ``orjson.dumps`` of the same frame model's ``model_dump``;
- a history body of 50 messages: ``HistoryPage.model_dump_json`` against ``orjson.dumps`` of its
  ``model_dump``;
- an inbound ``globalMessage`` frame: ``json.loads`` against ``orjson.loads``.

Beside each, the whole step it sits in, as the denominator that says whether a saving can show at
all: ``ChatService.history`` (store read and page models), and the receive path (``read_envelope``,
``command_of``, ``ChatService.execute``: validation, storing, publishing, delivery to the hub). No
sockets and no HTTP: those costs come on top, so the shares printed are upper bounds of what a
faster codec could save.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench import report
from bench.processes import LIMITS_OFF
from chatserver.chat import HistoryRequest
from chatserver.frames import message_view, sender_of
from chatserver.players import Player
from chatserver.protocol import BroadcastEvent, BroadcastFrame, ChatType, Message, RoomKey
from chatserver.protocol.inbound import PostMessage, React, command_of, read_envelope
from chatserver.protocol.outbound import broadcast_text
from chatserver.services import Services
from chatserver.settings import Settings

PAGE = 50
PLAYERS = 20
SEND_FRAME = json.dumps(
    {
        "event": "globalMessage",
        "ref": "r-1",
        "data": {"content": "Anyone up for a clan battle tonight?", "feeling": "happy"},
    }
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, help="timed repeats per step, best kept (default 7, quick 3)")


def run(args: argparse.Namespace) -> report.Report:
    repeats = args.repeats or (3 if args.quick else 7)
    print(f"encoding: each JSON step timed both ways, best of {repeats} interleaved repeats", flush=True)
    steps = asyncio.run(_measure(repeats))
    return _report(steps, repeats)


async def _measure(repeats: int) -> dict[str, dict[str, float]]:
    """Microseconds per call of each variant, keyed by step."""
    services = Services.build(Settings.from_env(LIMITS_OFF))
    await services.start()
    try:
        players = [
            Player(f"player-{i}", f"Player {i}", {"head": i % 5, "hair": i % 7}, "clan-1") for i in range(PLAYERS)
        ]
        await _fill(services, players)
        stored = (await services.store.page(RoomKey.global_room(), PAGE, 0)).messages
        request = HistoryRequest(ChatType.GLOBAL, PAGE, 1, None)
        page = await services.chat.history(players[0], request)
        message = message_view(stored[0], sender_of(stored[0], {}))

        def handled() -> Awaitable[None]:
            rules = services.settings.inbound_rules
            return services.chat.execute(players[1], command_of(read_envelope(SEND_FRAME, rules), rules))

        return {
            "broadcast frame": _interleaved(
                repeats,
                20_000,
                {
                    "pydantic-core": lambda: broadcast_text(BroadcastEvent.NEW_MESSAGE, message),
                    "orjson": lambda: _orjson_broadcast(message),
                },
            ),
            "history body (50 messages)": _interleaved(
                repeats,
                500,
                {
                    "pydantic-core": lambda: page.model_dump_json(by_alias=True),
                    "orjson": lambda: orjson.dumps(page.model_dump(by_alias=True, mode="json")),
                },
            ),
            "inbound frame": _interleaved(
                repeats, 100_000, {"json": lambda: json.loads(SEND_FRAME), "orjson": lambda: orjson.loads(SEND_FRAME)}
            ),
            "history use case (store read + page models)": {
                "whole": await _timed_async(repeats, 500, lambda: services.chat.history(players[0], request))
            },
            "inbound message (parse, validate, store, publish, deliver)": {
                "whole": await _timed_async(repeats, 5_000, handled)
            },
        }
    finally:
        await services.stop()


async def _fill(services: Services, players: list[Player]) -> None:
    """A room as the game has it: messages from many players, some of them with reactions."""
    for i in range(PAGE * 2):
        await services.chat.post(
            players[i % PLAYERS], PostMessage(ChatType.GLOBAL, f"message {i} of the evening", None)
        )
    stored = (await services.store.page(RoomKey.global_room(), PAGE * 2, 0)).messages
    for i, message in enumerate(stored[::3]):
        react = React(ChatType.GLOBAL, message.id, "👍" if i % 2 else "😂")
        await services.chat.react(players[(i + 1) % PLAYERS], react)


def _orjson_broadcast(message: Message) -> bytes:
    """What ``broadcast_text`` would be with orjson: the same frame model, dumped to a dict, then encoded."""
    frame = BroadcastFrame(chat=ChatType(message.type), event=BroadcastEvent.NEW_MESSAGE, message=message)
    return orjson.dumps(frame.model_dump(by_alias=True, mode="json"))


def _interleaved(repeats: int, calls: int, variants: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Best microseconds per call of each variant, the variants taking turns within every repeat."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, variant in variants.items():
            started = time.perf_counter()
            for _ in range(calls):
                variant()
            best[name] = min(best[name], (time.perf_counter() - started) / calls * 1e6)
    return best


async def _timed_async(repeats: int, calls: int, step: Callable[[], Awaitable[Any]]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            await step()
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


def _report(steps: dict[str, dict[str, float]], repeats: int) -> report.Report:
    result = report.Report(
        scenario="encoding",
        title="Encoding: the chat path's JSON, pydantic-core and json against orjson",
        options={"repeats": repeats, "page": PAGE},
    )
    codec_rows = []
    for step, (current, alternative) in (
        ("broadcast frame", ("pydantic-core", "orjson")),
        ("history body (50 messages)", ("pydantic-core", "orjson")),
        ("inbound frame", ("json", "orjson")),
    ):
        times = steps[step]
        codec_rows.append([step, current, times[current], times[alternative], times[current] / times[alternative]])
    result.tables.append(
        report.Table(
            "JSON steps: microseconds per call (best of the repeats)",
            ["step", "as it is", "µs as it is", "µs with orjson", "speed-up with orjson"],
            codec_rows,
        )
    )
    history = steps["history use case (store read + page models)"]["whole"]
    body = steps["history body (50 messages)"]
    inbound = steps["inbound message (parse, validate, store, publish, deliver)"]["whole"]
    decode = steps["inbound frame"]
    history_saving = (body["pydantic-core"] - body["orjson"]) / (history + body["pydantic-core"])
    inbound_saving = (decode["json"] - decode["orjson"]) / inbound
    result.tables.append(
        report.Table(
            "What orjson would save of the whole step (in process, before sockets and HTTP)",
            ["step", "µs in process", "orjson would save"],
            [
                ["history request: use case + body", history + body["pydantic-core"], f"{history_saving:+.1%}"],
                ["inbound message: parse + handle", inbound, f"{inbound_saving:+.1%}"],
            ],
        )
    )
    frame = steps["broadcast frame"]
    encodes_slower = body["orjson"] >= body["pydantic-core"] and frame["orjson"] >= frame["pydantic-core"]
    result.targets.append(
        report.Target(
            "orjson, if it measurably helps",
            "a saving that shows in a whole step",
            f"history request {history_saving:+.1%}, inbound message {inbound_saving:+.1%}",
            None,
        )
    )
    result.notes += [
        "Outbound frames are already encoded by pydantic-core (Rust), once per broadcast and once per history page; "
        "orjson would first need the model as a dict (`model_dump`), which costs more than pydantic-core's whole "
        "encoding" + (", so it is slower on both outbound steps." if encodes_slower else "."),
        "Decoding an inbound frame is faster with orjson, but it is a small part of handling a message.",
        "No sockets and no HTTP here: the shares are upper bounds. The `fanout` profile has JSON at 0.3% or less "
        "of the flood's time.",
    ]
    result.raw = steps
    return result
