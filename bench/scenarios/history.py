"""``history``: ``GET /chat/history`` latency with 100,000 stored messages, by page depth, offset against cursor.

The store is filled through the real server: the load process posts the messages over one WebSocket
(rate limits off), 90% to the global room and 10% to one clan's room. Then this process asks for
pages over one keep-alive HTTP connection (``limit=50``): page 1, deeper pages by ``page=`` (an
offset: the store skips that many messages), and the same depths by ``before=<id>`` (a keyset
cursor: the store seeks to that message). Each query is repeated and its percentiles reported; the
time includes the HTTP round trip on the loopback and the JSON encoding of 50 messages.

With ``MONGODB_URL`` set, the same runs against MongoDB (a throw-away database, dropped afterwards)
and each query shape is ``explain()``-ed to prove it walks an index (an ``IXSCAN``, no ``COLLSCAN``).
Without it, the report says plainly that the MongoDB part was not run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import time
import uuid
from typing import Any

import jwt

from bench import processes, report
from bench.loadrun import percentiles, player_id
from bench.processes import LoadClient

LIMIT = 50
CLAN = "clan-0"
TARGET_MS = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=100_000, help="messages stored (default 100000)")
    parser.add_argument("--repeat", type=int, help="requests per query (default 300, quick 100)")


def run(args: argparse.Namespace) -> report.Report:
    repeat = args.repeat or (100 if args.quick else 300)
    workdir = processes.workdir("history")
    backends: dict[str, dict[str, str]] = {"embedded": {}}
    mongodb_url = os.environ.get("MONGODB_URL", "").strip()
    if mongodb_url:
        backends["mongodb"] = {
            "MONGODB_URL": mongodb_url,
            "MONGODB_DB": f"chat_bench_{uuid.uuid4().hex[:8]}",
            "CHAT_PLAYERS_FROM_DB": "false",  # the load's players are in their tokens, not in a Player collection
        }
    results = {name: _measure(name, env, args.messages, repeat, workdir) for name, env in backends.items()}
    return _report(args.messages, repeat, results, bool(mongodb_url))


def _measure(backend: str, env: dict[str, str], messages: int, repeat: int, workdir: Any) -> dict[str, Any]:
    print(f"history on {backend}: filling {messages:,} messages; logs in {workdir}", flush=True)
    server = processes.chat_server(workdir, env)
    load: LoadClient | None = None
    try:
        server.start(timeout=60)
        load = LoadClient({"ports": [server.port]}).start()
        load.call("open", count=1, clan_size=1)
        clan = messages // 10
        fill = []
        for event, count in (("globalMessage", messages - clan), ("clanMessage", clan)):
            answer = load.call(
                "flood",
                messages=count,
                senders=[0],
                expect_per_message=1,
                window=64,
                event=event,
                content="history benchmark message",
                timeout=600,
            )
            fill.append({"event": event, **answer})
            print(f"    {count:,} {event} stored at {fill[-1]['messages_per_second']:,.0f}/s", flush=True)
        queries = _queries(server.port, messages - clan, repeat)
        explained = _explain(env) if "MONGODB_URL" in env else None
        return {"fill": fill, "queries": queries, "explain": explained}
    finally:
        if load is not None:
            load.stop()
        server.stop(timeout=30)
        if "MONGODB_URL" in env:
            _drop(env)


def _queries(port: int, stored: int, repeat: int) -> list[dict[str, Any]]:
    """Offset and cursor pages of the global room at growing depths, each timed ``repeat`` times."""
    token = jwt.encode(
        {"player_id": player_id(0), "name": "bench-0", "clan_id": CLAN, "exp": time.time() + 3600},
        processes.SECRET,
        algorithm="HS256",
    )
    connection = http.client.HTTPConnection(processes.HOST, port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}

    def get(query: str) -> dict[str, Any]:
        connection.request("GET", f"/chat/history?{query}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET /chat/history?{query}: {response.status} {body[:200]!r}")
        return dict(json.loads(body))

    def timed(query: str) -> dict[str, float]:
        get(query)  # warm
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            get(query)
            samples.append((time.perf_counter() - started) * 1000)
        return percentiles(samples) | {"mean": sum(samples) / len(samples)}

    rows: list[dict[str, Any]] = []
    last_page = stored // LIMIT
    depths = sorted({1, 10, 100, 1_000, last_page // 2, last_page - 1} - {0})
    try:
        for page in depths:
            offset = f"type=global&limit={LIMIT}&page={page}"
            rows.append({"query": "page", "depth": (page - 1) * LIMIT, "ms": timed(offset)})
            first_id = get(offset)["data"]["ChatMessage"][0]["_id"]
            cursor = f"type=global&limit={LIMIT}&before={first_id}"
            rows.append({"query": "before", "depth": (page - 1) * LIMIT + 1, "ms": timed(cursor)})
            print(
                f"    depth {(page - 1) * LIMIT:,}: page p50 {rows[-2]['ms']['p50']:.2f} ms, "
                f"before p50 {rows[-1]['ms']['p50']:.2f} ms",
                flush=True,
            )
        rows.append({"query": "clan page 1", "depth": 0, "ms": timed(f"type=clan&limit={LIMIT}")})
    finally:
        connection.close()
    return rows


def _explain(env: dict[str, str]) -> list[dict[str, Any]]:
    """``explain()`` of each query shape the Mongo store sends (see ``chatserver/store/mongo.py``)."""
    from bson import ObjectId
    from pymongo import DESCENDING, MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(env["MONGODB_URL"], serverSelectionTimeoutMS=5000)
    try:
        collection = client[env["MONGODB_DB"]]["ChatMessage"]
        newest = [("createdAt", DESCENDING), ("_id", DESCENDING)]
        middle = collection.find({"type": "global"}).sort(newest).skip(1000).limit(1).next()
        older = {
            "type": "global",
            "$or": [
                {"createdAt": {"$lt": middle["createdAt"]}},
                {"createdAt": middle["createdAt"], "_id": {"$lt": middle["_id"]}},
            ],
        }
        shapes = {
            "page 1": collection.find({"type": "global"}).sort(newest).limit(LIMIT),
            "deep page": collection.find({"type": "global"}).sort(newest).skip(50_000).limit(LIMIT),
            "before cursor lookup": collection.find({"_id": ObjectId(middle["_id"]), "type": "global"}).limit(1),
            "before cursor page": collection.find(older).sort(newest).limit(LIMIT),
            "clan page 1": collection.find({"type": "clan", "clan_id": CLAN}).sort(newest).limit(LIMIT),
            "resume changes since": collection.find({"type": "global", "updatedAt": {"$gt": middle["updatedAt"]}})
            .sort([("updatedAt", DESCENDING), ("_id", DESCENDING)])
            .limit(301),
        }
        found = []
        for name, cursor in shapes.items():
            plan = cursor.explain()
            stages = sorted(_stages(plan.get("queryPlanner", {}).get("winningPlan", {})))
            found.append(
                {
                    "query": name,
                    "stages": stages,
                    "index_only": "COLLSCAN" not in stages,
                    "docs_examined": plan.get("executionStats", {}).get("totalDocsExamined"),
                }
            )
        count = client[env["MONGODB_DB"]].command("explain", {"count": "ChatMessage", "query": {"type": "global"}})
        stages = sorted(_stages(count.get("queryPlanner", {}).get("winningPlan", {})))
        found.append(
            {
                "query": "count (itemCount)",
                "stages": stages,
                "index_only": "COLLSCAN" not in stages,
                "docs_examined": None,
            }
        )
        return found
    finally:
        client.close()


def _stages(plan: dict[str, Any]) -> set[str]:
    """Every ``stage`` name in a winning plan, whatever its nesting (``inputStage``, ``inputStages``...)."""
    found = {plan["stage"]} if "stage" in plan else set()
    for value in plan.values():
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, dict):
                found |= _stages(child)
    return found


def _drop(env: dict[str, str]) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(env["MONGODB_URL"], serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(env["MONGODB_DB"])
    finally:
        client.close()


def _report(messages: int, repeat: int, results: dict[str, dict[str, Any]], mongo: bool) -> report.Report:
    result = report.Report(
        scenario="history",
        title=f"History: GET /chat/history latency with {messages:,} stored messages",
        options={"messages": messages, "repeat": repeat, "limit": LIMIT},
    )
    for backend, measured in results.items():
        rows = [
            [q["query"], q["depth"], q["ms"]["p50"], q["ms"]["p95"], q["ms"]["p99"], q["ms"]["max"]]
            for q in measured["queries"]
        ]
        result.tables.append(
            report.Table(
                f"{backend}: latency in ms (one keep-alive HTTP client, {repeat} requests per query)",
                ["query", "messages skipped", "p50", "p95", "p99", "max"],
                rows,
            )
        )
        fill = measured["fill"]
        result.tables.append(
            report.Table(
                f"{backend}: filling the store through the WebSocket",
                ["event", "messages", "seconds", "messages/s"],
                [[f["event"], f["sent"], f["seconds"], f["messages_per_second"]] for f in fill],
            )
        )
        cursors = [q for q in measured["queries"] if q["query"] == "before"]
        deepest = max(cursors, key=lambda q: q["depth"])
        result.targets.append(
            report.Target(
                f"cursor page on {backend} store",
                f"< {TARGET_MS:g} ms with {messages:,} messages",
                f"p99 {deepest['ms']['p99']:.2f} ms, p50 {deepest['ms']['p50']:.2f} ms "
                f"(before= at depth {deepest['depth']:,})",
                deepest["ms"]["p99"] < TARGET_MS if backend == "embedded" else None,
            )
        )
        if measured["explain"] is not None:
            result.tables.append(
                report.Table(
                    "MongoDB explain(): stages of each winning plan",
                    ["query", "stages", "no COLLSCAN", "docs examined"],
                    [
                        [e["query"], ", ".join(e["stages"]), "yes" if e["index_only"] else "**no**", e["docs_examined"]]
                        for e in measured["explain"]
                    ],
                )
            )
            result.targets.append(
                report.Target(
                    "MongoDB queries walk an index",
                    "no COLLSCAN in any winning plan",
                    ", ".join(
                        f"{e['query']}: {'IXSCAN' if e['index_only'] else 'COLLSCAN'}" for e in measured["explain"]
                    ),
                    all(e["index_only"] for e in measured["explain"]),
                )
            )
    if not mongo:
        result.notes.append(
            "**MongoDB was not run**: MONGODB_URL was not set, so neither the MongoDB latencies nor the explain() "
            "index check were measured. Run `MONGODB_URL=mongodb://... python -m bench history` for them."
        )
        result.targets.append(report.Target("MongoDB queries walk an index", "no COLLSCAN", "not run", None))
    result.notes += [
        "The embedded store keeps one list per room: an offset page slices it, a cursor page first finds the "
        "message's position; both are read newest first.",
    ]
    result.raw = results
    series: dict[str, list[tuple[float, float]]] = {}
    for backend, measured in results.items():
        for kind in ("page", "before"):
            for point in ("p50", "p99"):
                series[f"{backend} {kind}= {point}"] = [
                    (max(q["depth"], 1), q["ms"][point]) for q in measured["queries"] if q["query"] == kind
                ]
    result.plot = "history.png"
    report.plot(
        report.RESULTS / result.plot,
        [
            report.Panel(
                "History latency against page depth",
                "messages skipped (newest first)",
                "ms per request",
                series,
                logx=True,
                hline=(TARGET_MS, f"target {TARGET_MS:g} ms"),
            ),
        ],
    )
    return result
