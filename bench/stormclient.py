"""The storm's load process: ``python -m bench.stormclient '<config JSON>'``, driven by JSON lines like loadrun.

Every socket is one player following the reference client's rules (``chatserver/client.py``) on a raw
asyncio protocol: on a lost connection it waits ``Backoff.next_delay()`` (full jitter), reconnects to a
live replica picked at random (as a load balancer would) with ``since`` = its newest ``updatedAt``
less ``RESUME_OVERLAP``, and skips any version of a message it already holds. ``loadclient.RawSocket``
does not fit: it takes the first data frame for ``ready``, and a resume's replay comes before it.

Commands (one JSON line each, one JSON answer line each):
  ``open``    connect ``count`` sockets (socket ``i`` to ``ports[i % len(ports)]``, player ``i``, clan
              ``i // clan_size``) and wait for every ``ready``;
  ``start``   begin the open-loop stream: ``rate`` messages/s from the sockets on ``sender_ports`` in turn, one
              in ``global_every`` to the global room, each carrying its send time and sequence number;
  ``down``    a replica's port leaves the live set (the load balancer's view; the benchmark kills it next);
  ``status``  how many clients are ready, lost, reconnecting; connects and failures so far;
  ``stop``    end the stream, wait for the copies still on their way, and report every count;
  ``quit``    close every socket and exit.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from array import array
from collections import Counter
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

import jwt

from bench.loadclient import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_TEXT,
    client_frame,
    run_load,
    upgrade_request,
)
from bench.loadrun import log, percentiles, player_id
from chatserver.client import RESUME_OVERLAP, Backoff

HANDSHAKE_TIMEOUT = 5.0  # the reference client's ``open_timeout``
READY = b'{"event":"ready"'
NOT_RECOVERED = b'"recovered":false'
MESSAGE_ID = b'"message":{"_id":"'
UPDATED_AT = b'"updatedAt":"'
MARK = b'"content":"t='
STAMP_LENGTH = len("2026-12-02T17:52:09.123Z")
GLOBAL = "global"
BUCKET_SECONDS = 0.5  # latency over time, for the plot


class Stats:
    """Counts over every client, read by ``status`` and ``stop``."""

    def __init__(self) -> None:
        self.connects = 0
        self.failures: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.not_recovered = 0
        self.repeats = 0  # one version twice on one connection: the server's replay/live hand-over failed
        self.repeat_kinds: Counter[str] = Counter()
        self.overlap = 0  # a version already held, from the resume's overlap: skipped, as the client does
        self.twice = 0  # a second version of a message held (nothing here edits or reacts: must stay 0)
        self.replayed = 0  # copies that came before a resume's ``ready``
        self.ready = 0
        self.lost = 0  # connections lost since ``down``
        self.reconnected = 0  # of those, clients ready again
        self.ready_times: list[float] = []  # when each lost client was ready again
        self.attempts: list[int] = []  # connect attempts each of them needed
        self.samples = array("q")  # undisturbed clients' live latency, ns
        self.sampled_at = array("q")  # monotonic ns of each sample


class Client:
    """One player: its socket of the moment, the messages it holds and the reconnect rules."""

    __slots__ = (
        "index",
        "clan",
        "token",
        "port",
        "socket",
        "backoff",
        "since",
        "held",
        "seqs",
        "disturbed",
        "is_ready",
        "attempts",
        "versions",
        "run",
        "waiter",
    )

    def __init__(self, index: int, clan: str, token: str, port: int, run: StormRun) -> None:
        self.index, self.clan, self.token, self.port, self.run = index, clan, token, port, run
        self.socket: StormSocket | None = None
        self.backoff = Backoff()
        self.since: str | None = None
        self.held: dict[str, str] = {}  # message id -> newest updatedAt held
        self.seqs: set[int] = set()  # sequence numbers received (any room)
        self.disturbed = False
        self.is_ready = False
        self.attempts = 0
        self.versions: dict[tuple[str, str], bool] = {}  # versions seen on this connection: came in its replay?
        self.waiter: asyncio.Future[None] | None = None  # set while ``open`` waits for this client

    def path(self) -> str:
        address = f"/ws/chat?token={self.token}"
        if self.since is None:
            return address
        resume_from = datetime.fromisoformat(self.since) - RESUME_OVERLAP
        return f"{address}&since={quote(resume_from.isoformat(timespec='milliseconds'))}"

    async def connect(self) -> None:
        """One attempt; on failure, back off and try again (another live replica)."""
        run = self.run
        self.attempts += 1
        loop = asyncio.get_running_loop()
        request = upgrade_request(run.host, self.port, self.path())
        socket = StormSocket(request, self)

        async def handshake() -> None:
            await loop.create_connection(lambda: socket, run.host, self.port)
            await socket.upgraded

        try:
            await asyncio.wait_for(handshake(), HANDSHAKE_TIMEOUT)
        except (OSError, ConnectionError, TimeoutError) as error:
            socket.abort()
            run.stats.failures[_failure_kind(error)] += 1
            self.retry()
            return
        run.stats.connects += 1

    def retry(self) -> None:
        if self.run.closing:
            return
        live = self.run.live
        self.port = random.choice(live)
        asyncio.get_running_loop().call_later(self.backoff.next_delay(), self.run.reconnect, self)

    def on_ready(self, frame: bytes, start: int, stop: int) -> None:
        run = self.run
        self.is_ready = True
        self.backoff.reset()
        run.stats.ready += 1
        if frame.find(NOT_RECOVERED, start, stop) >= 0:
            run.stats.not_recovered += 1
        if self.disturbed:
            run.stats.reconnected += 1
            run.stats.ready_times.append(time.monotonic())
            run.stats.attempts.append(self.attempts)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def on_message(self, data: bytes, start: int, stop: int, now_ns: int) -> None:
        found = data.find(MESSAGE_ID, start, stop)
        if found < 0:
            return
        begin = found + len(MESSAGE_ID)
        message_id = data[begin : begin + 24].decode()
        at = data.rfind(UPDATED_AT, begin, stop) + len(UPDATED_AT)
        updated_at = data[at : at + STAMP_LENGTH].decode()
        stats = self.run.stats
        version = (message_id, updated_at)
        first_in_replay = self.versions.get(version)
        if first_in_replay is not None:
            stats.repeats += 1
            stats.repeat_kinds[
                ("replay" if first_in_replay else "live") + (" then replay" if not self.is_ready else " then live")
            ] += 1
            return
        self.versions[version] = not self.is_ready
        held = self.held.get(message_id)
        if held is not None and held >= updated_at:
            stats.overlap += 1
            return
        if held is not None:
            stats.twice += 1
        self.held[message_id] = updated_at
        if self.since is None or updated_at > self.since:
            self.since = updated_at
        mark = data.find(MARK, begin, stop)
        if mark < 0:
            return
        mark += len(MARK)
        bar = data.find(b"|", mark, stop)
        sent_ns = int(data[mark:bar])
        seq = int(data[bar + 3 : data.find(b"|", bar + 3, stop)])  # "|s=<seq>|"
        self.seqs.add(seq)
        if not self.is_ready:
            stats.replayed += 1
        elif not self.disturbed:
            stats.samples.append(now_ns - sent_ns)
            stats.sampled_at.append(now_ns)

    def on_closed(self, reason: str) -> None:
        run = self.run
        was_ready = self.is_ready
        self.is_ready = False
        self.socket = None
        if was_ready:
            run.stats.ready -= 1
        if run.closing:
            return
        run.stats.closes[reason] += 1
        if was_ready and run.watching:
            if not self.disturbed:
                self.attempts = 0
            self.disturbed = True
            run.stats.lost += 1
        elif not was_ready:
            run.stats.failures[reason] += 1
        self.versions = {}
        self.retry()


def _failure_kind(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "handshake timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return f"{type(error).__name__}: {error}"[:80]


class StormSocket(asyncio.Protocol):
    """One connection of a client: the upgrade, then every server frame read from its header.

    Data frames before ``ready`` are the resume's replay; every one is handed to the client.
    """

    __slots__ = ("client", "transport", "upgraded", "_request", "_buffer", "_handshaking", "_closed")

    def __init__(self, request: bytes, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._request = request
        self._buffer = b""
        self._handshaking = True
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self._closed:  # the attempt timed out while connecting
            self.transport.abort()
            return
        self.transport.write(self._request)

    def write(self, frames: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(frames)

    def abort(self) -> None:
        """Drop a connection that never upgraded; its client retries on its own."""
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end("connection lost")

    def _end(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self.client.socket is not self:  # never upgraded: ``connect`` sees it (or timed out) and retries
            if not self.upgraded.done():
                self.upgraded.set_exception(ConnectionError(reason))
                self.upgraded.exception()
            return
        self.client.on_closed(reason)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if self._handshaking:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = data
                return
            status = data[: data.find(b"\r\n")]
            self._handshaking = False
            if b" 101 " not in status:
                code = status.split(b" ")[1].decode() if status.count(b" ") else "?"
                self._end(f"HTTP {code}")
                self.abort()
                return
            if self.upgraded.done():  # the attempt timed out just before the answer came
                self.abort()
                return
            self.client.socket = self
            self.upgraded.set_result(None)
            data = data[end + 4 :]
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        pos, end = 0, len(data)
        now_ns = time.monotonic_ns()
        client = self.client
        while end - pos >= 2:
            size = data[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if end - pos < 4:
                    break
                size = (data[pos + 2] << 8) | data[pos + 3]
                head = 4
            elif size == 127:
                if end - pos < 10:
                    break
                size = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            stop = pos + head + size
            if stop > end:
                break
            opcode = data[pos] & 0x0F
            start = pos + head
            if opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
                if data.startswith(READY, start):
                    client.on_ready(data, start, stop)
                else:
                    client.on_message(data, start, stop, now_ns)
            elif opcode == OPCODE_PING:
                self.write(client_frame(data[start:stop], 0xA))
            elif opcode == OPCODE_CLOSE:
                code = int.from_bytes(data[start : start + 2], "big") if size >= 2 else 1005
                self._end(f"closed {code}")
                self.close()
                return
            pos = stop
        if pos < end:
            self._buffer = data[pos:]


class StormRun:
    """This process's clients and the stream; the commands act on them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.host: str = config.get("host", "127.0.0.1")
        self.ports: list[int] = config["ports"]
        self.live: list[int] = list(self.ports)
        self.secret: str = config["secret"]
        self.clients: list[Client] = []
        self.stats = Stats()
        self.watching = False  # after ``down``: a lost connection is part of the storm
        self.closing = False
        self.sent: list[tuple[int, str, int]] = []  # (seq, room, sender index)
        self.stream: asyncio.Task[None] | None = None
        self.send_lags: list[float] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.ready_curve: list[tuple[float, int]] = []
        self.sampler: asyncio.Task[None] | None = None

    def reconnect(self, client: Client) -> None:
        if not self.closing:
            task = asyncio.ensure_future(client.connect())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            name = command.pop("cmd")
            if name == "quit":
                break
            answer = await getattr(self, f"cmd_{name}")(**command)
            print(json.dumps(answer), flush=True)
        self.closing = True
        for task in list(self.tasks):
            task.cancel()
        for client in self.clients:
            if client.socket is not None:
                client.socket.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.sleep(0.2)

    def _token(self, index: int, clan: str) -> str:
        claims = {"player_id": player_id(index), "name": f"storm-{index}", "clan_id": clan, "exp": time.time() + 86400}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    async def cmd_open(
        self, count: int, clan_size: int, concurrency: int = 100, timeout: float = 300
    ) -> dict[str, Any]:
        """The first connects, at most ``concurrency`` at a time (the storm later has no such gate)."""
        started = time.monotonic()
        gate = asyncio.Semaphore(concurrency)
        for index in range(count):
            client = Client(index, f"clan-{index // clan_size}", "", self.ports[index % len(self.ports)], self)
            client.token = self._token(index, client.clan)
            self.clients.append(client)

        async def first(client: Client) -> None:
            async with gate:
                client.waiter = asyncio.get_running_loop().create_future()
                await client.connect()
                await client.waiter
                client.waiter = None

        try:
            await asyncio.wait_for(asyncio.gather(*(first(c) for c in self.clients)), timeout)
        except TimeoutError:
            pass
        seconds = time.monotonic() - started
        log(f"opened {self.stats.ready}/{count} sockets in {seconds:.1f}s")
        return {"ready": self.stats.ready, "seconds": seconds, "failures": dict(self.stats.failures)}

    async def cmd_start(self, rate: float, global_every: int, sender_ports: list[int]) -> dict[str, Any]:
        """Every client on ``sender_ports`` sends in turn (players send rarely), to its clan or the global room."""
        senders = [client for client in self.clients if client.port in sender_ports and client.is_ready]
        random.Random(17).shuffle(senders)  # clans in a mixed order, not the sockets' index order
        self.stream = asyncio.create_task(self._stream(senders, rate, global_every))
        return {"senders": len(senders), "clans": len({c.clan for c in self.clients})}

    async def _stream(self, senders: list[Client], rate: float, global_every: int) -> None:
        """Open loop: message ``k`` leaves at ``k / rate`` whatever the answers."""
        start = time.monotonic_ns()
        period_ns = 1e9 / rate
        filler = b"x" * 40
        seq = 0
        while True:
            due = int((time.monotonic_ns() - start) / period_ns) + 1
            while seq < due:
                sender = senders[seq % len(senders)]
                to_global = global_every > 0 and seq % global_every == global_every - 1
                now = time.monotonic_ns()
                event = b"globalMessage" if to_global else b"clanMessage"
                if sender.socket is not None:
                    frame = b'{"event":"%s","data":{"content":"t=%d|s=%d|%s"}}' % (event, now, seq, filler)
                    sender.socket.write(client_frame(frame))
                    self.sent.append((seq, GLOBAL if to_global else sender.clan, sender.index))
                self.send_lags.append((now - start - seq * period_ns) / 1e6)
                seq += 1
            await asyncio.sleep(0.002)

    async def cmd_down(self, port: int) -> dict[str, Any]:
        self.live = [p for p in self.live if p != port]
        self.watching = True
        self.sampler = asyncio.create_task(self._sample_ready())
        return {"live": self.live, "at": time.monotonic()}

    async def _sample_ready(self) -> None:
        while True:
            self.ready_curve.append((time.monotonic(), self.stats.ready))
            await asyncio.sleep(0.1)

    async def cmd_status(self) -> dict[str, Any]:
        s = self.stats
        return {
            "at": time.monotonic(),
            "ready": s.ready,
            "clients": len(self.clients),
            "lost": s.lost,
            "reconnected": s.reconnected,
            "connects": s.connects,
            "failures": dict(s.failures),
            "sent": len(self.sent),
        }

    async def cmd_stop(self, killed_at: float, measure_from: float, drain_timeout: float = 60.0) -> dict[str, Any]:
        """End the stream; ``killed_at`` and ``measure_from`` (monotonic seconds) split the latency samples."""
        assert self.stream is not None
        self.stream.cancel()
        stopped_at = time.monotonic()
        members: dict[str, list[Client]] = {GLOBAL: self.clients}
        for client in self.clients:
            members.setdefault(client.clan, []).append(client)
        expected = sum(len(members[room]) for _, room, _ in self.sent)
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline:  # a backlog in the servers drains; what never comes is missed
            if sum(len(c.seqs) for c in self.clients) >= expected:
                break
            await asyncio.sleep(0.25)
        drained = time.monotonic() - stopped_at
        if self.sampler is not None:
            self.sampler.cancel()
        missed = 0
        missed_by: Counter[str] = Counter()
        unconfirmed = 0
        by_sender = {c.index: c for c in self.clients}
        for seq, room, sender in self.sent:
            if seq not in by_sender[sender].seqs:
                unconfirmed += 1  # its sender never saw it stored and broadcast
            for client in members[room]:
                if seq not in client.seqs:
                    missed += 1
                    missed_by["disturbed" if client.disturbed else "undisturbed"] += 1
        s = self.stats
        return {
            "stopped_at": stopped_at,
            "drain_seconds": drained,
            "sent": len(self.sent),
            "global_sent": sum(1 for _, room, _ in self.sent if room == GLOBAL),
            "expected_copies": expected,
            "received_copies": sum(len(c.seqs) for c in self.clients),
            "missed": missed,
            "missed_by": dict(missed_by),
            "unconfirmed": unconfirmed,
            "repeats": s.repeats,
            "repeat_kinds": dict(s.repeat_kinds),
            "overlap_skipped": s.overlap,
            "seen_twice": s.twice,
            "replayed": s.replayed,
            "not_recovered": s.not_recovered,
            "connects": s.connects,
            "failures": dict(s.failures),
            "closes": dict(s.closes),
            "lost": s.lost,
            "reconnected": s.reconnected,
            "ready": s.ready,
            "clients": len(self.clients),
            "disturbed": sum(1 for c in self.clients if c.disturbed),
            **_storm_times(s, killed_at, stopped_at, measure_from),
            "attempts": {str(k): v for k, v in sorted(Counter(s.attempts).items())},
            "ready_curve": [(at - killed_at, ready) for at, ready in self.ready_curve],
            "send_lag_ms": percentiles(self.send_lags),
        }


def _storm_times(stats: Stats, killed_at: float, stopped_at: float, measure_from: float) -> dict[str, Any]:
    """Time to every client ready again, and undisturbed clients' latency before, during and after the storm."""
    all_ready = max(stats.ready_times) - killed_at if stats.ready_times and stats.reconnected >= stats.lost else None
    storm_end = killed_at + (all_ready or 0.0)
    phases: dict[str, list[float]] = {"before": [], "storm": [], "after": []}
    buckets: dict[int, list[float]] = {}
    for delay, at_ns in zip(stats.samples, stats.sampled_at, strict=True):
        at, ms = at_ns / 1e9, delay / 1e6
        if at < measure_from:
            continue
        phase = "before" if at < killed_at else ("storm" if at <= storm_end else "after")
        phases[phase].append(ms)
        buckets.setdefault(int((at - killed_at) // BUCKET_SECONDS), []).append(ms)
    return {
        "all_ready_seconds": all_ready,
        "ready_after_kill": percentiles([t - killed_at for t in stats.ready_times]),
        "latency_ms": {phase: percentiles(values) for phase, values in phases.items()},
        "samples": {phase: len(values) for phase, values in phases.items()},
        "latency_over_time": [
            (bucket * BUCKET_SECONDS, percentiles(values)) for bucket, values in sorted(buckets.items())
        ],
        "stream_seconds": stopped_at - measure_from,
    }


def main() -> None:
    run_load(StormRun(json.loads(sys.argv[1])).run())


if __name__ == "__main__":
    main()
