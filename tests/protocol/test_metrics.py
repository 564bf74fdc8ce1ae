"""What an operator sees of a worker: ``GET /metrics`` in Prometheus format and the JSON log lines."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerFactory
from tests.support.harness import Client, log_entries, token, wait_for_log


async def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` as ``{(name, sorted labels): value}``, parsed by Prometheus' own parser."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{base_url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


async def test_metrics_count_sockets_rooms_frames_errors_limits_and_latencies(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory(CHAT_MESSAGE_RATE="0.1", CHAT_MESSAGE_BURST="4")
    clan = new_id()
    sender = await Client.connect(server, token(new_id(), clan_id=clan))
    reader = await Client.connect(server, token(new_id(), clan_id=clan))
    await sender.post("clan", "one")
    await sender.send({"event": "clanMessage", "data": {"content": " "}})
    assert (await sender.recv())["error"][0]["reason"] == "REQUIRED"
    await sender.send("not json")  # an unreadable frame costs a message too
    assert await sender.recv() == {"error": "Invalid JSON"}
    await sender.post("clan", "two")
    await sender.send({"event": "clanMessage", "data": {"content": "three"}})
    assert (await sender.recv())["error"][0]["reason"] == "TOO_MANY_REQUESTS"
    for content in ("one", "two"):
        assert (await reader.recv())["message"]["content"] == content

    samples = await scrape(server.http_url)
    assert samples[("chat_open_sockets", ())] == 2
    assert samples[("chat_rooms", ())] == 2  # global and the clan's
    assert samples[("chat_frames_in_total", (("event", "clanMessage"),))] == 4
    assert samples[("chat_frames_out_total", (("kind", "broadcast"),))] == 4  # two messages, two sockets
    assert samples[("chat_errors_total", (("reason", "REQUIRED"),))] == 1
    assert samples[("chat_errors_total", (("reason", "TOO_MANY_REQUESTS"),))] == 1
    assert samples[("chat_errors_total", (("reason", "INVALID_FRAME"),))] == 1
    assert samples[("chat_rate_limited_total", (("kind", "messages"),))] == 1
    assert samples[("chat_store_seconds_count", (("operation", "add"),))] == 2
    assert samples[("chat_broker_publish_seconds_count", ())] == 2
    assert samples[("chat_broadcast_seconds_count", ())] == 2
    assert samples[("chat_slow_consumer_disconnects_total", ())] == 0
    assert samples[("chat_gc_pause_seconds_count", (("generation", "0"),))] > 0  # the collector is timed

    await reader.close()
    await sender.close()
    for _ in range(250):  # the server notices the closes a moment after the clients: poll, no fixed sleep
        if (await scrape(server.http_url))[("chat_open_sockets", ())] == 0:
            break
    assert (await scrape(server.http_url))[("chat_open_sockets", ())] == 0


async def test_log_lines_are_json_with_player_and_replica_for_opens_refusals_and_closes(
    server_factory: ServerFactory, new_id: Callable[[], str]
) -> None:
    server = server_factory()
    player = new_id()
    client = await Client.connect(server, token(player))
    await client.send({"event": "globalMessage", "data": {}})
    assert (await client.recv())["error"][0]["reason"] == "REQUIRED"
    await client.close()
    await wait_for_log(server, lambda e: e["message"] == "connection closed" and e.get("player_id") == player)

    entries = log_entries(server)
    mine = [entry for entry in entries if entry.get("player_id") == player]
    assert [e["message"] for e in mine] == ["connection opened", "request refused", "connection closed"]
    assert {e["replica"] for e in mine} == {entries[0]["replica"]} and entries[0]["replica"]
    assert mine[1]["reason"] == "REQUIRED" and mine[1]["event"] == "globalMessage"
    assert all(e["time"].endswith("Z") and e["level"] == "INFO" for e in mine)
