"""The load-generating process: ``python -m bench.loadrun '<config JSON>'``, driven line by line.

The benchmark process starts this one pinned to its own core and sends it one JSON command per line
on stdin; each command's result comes back as one JSON line on stdout (progress goes to stderr).
Commands rather than one-shot arguments let the benchmark read the server's CPU time and memory, or
start a profiler, exactly around the part being measured.

Commands:
  ``open``  connect ``count`` more sockets (socket ``i`` to ``ports[i % len(ports)]``, player ``i``,
            clan ``i // clan_size`` when ``clan_size`` is set) and wait for every ``ready``;
  ``flood`` send ``messages`` frames from ``senders`` as fast as the window allows and time the
            deliveries (every socket of the room must get every frame);
  ``load``  send at a fixed ``rate`` for ``seconds``, each frame carrying its send time, and report
            send-to-receive latency percentiles;
  ``quit``  close every socket and exit.

With ``"protocol": "socketio"`` in the config the sockets speak Socket.IO to the python-socketio
peer (``bench/socketio_peer.py``): the same commands, each chat frame sent as the event
``42["<event>",<data>]`` instead of ``{"event","data"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from array import array
from collections import Counter
from typing import Any

import jwt

from bench.loadclient import ENGINE_IO_PATH, CountingListener, RawSocket, client_frame, open_sockets, run_load

PLAYER_BASE = 0xBE0000000000000000000000  # 24-hex player ids, so a MongoDB store can hold them as ObjectIds


def player_id(index: int) -> str:
    return f"{PLAYER_BASE + index:024x}"


def percentiles(values: list[float], points: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[str, float]:
    """Nearest-rank percentiles plus the maximum; empty input gives an empty dict."""
    if not values:
        return {}
    ordered = sorted(values)
    last = len(ordered) - 1
    found = {f"p{round(p * 100)}": ordered[min(last, int(p * len(ordered)))] for p in points}
    found["max"] = ordered[last]
    return found


class Flood(CountingListener):
    """Keeps at most ``window`` messages in flight and notes when the last expected frame arrives.

    In flight means sent but not yet delivered to every member of the room, counted over all sockets
    together, so the sender never runs further ahead than the server's per-socket queues can hold.
    """

    def __init__(self) -> None:
        super().__init__()
        self.senders: list[RawSocket] = []
        self.frame = b""
        self.messages = 0
        self.expect_per_message = 1
        self.window = 1
        self.sent = 0
        self.finished_at = 0.0
        self.done: asyncio.Future[None] | None = None

    def start(self, senders: list[RawSocket], payload: bytes, messages: int, expect: int, window: int) -> None:
        self.frames, self.sent, self.finished_at = 0, 0, 0.0
        self.senders, self.frame, self.messages = senders, client_frame(payload), messages
        self.expect_per_message, self.window = expect, window
        self.done = asyncio.get_running_loop().create_future()
        self.pump()

    def on_frames(self, socket: RawSocket, count: int) -> None:
        self.frames += count
        if self.done is None:
            return
        if self.frames >= self.messages * self.expect_per_message:
            self.finished_at = time.perf_counter()
            if not self.done.done():
                self.done.set_result(None)
        elif self.sent < self.messages:
            self.pump()

    def pump(self) -> None:
        allowed = min(self.window - (self.sent - self.frames // self.expect_per_message), self.messages - self.sent)
        if allowed <= 0:
            return
        share, extra = divmod(allowed, len(self.senders))
        for position, sender in enumerate(self.senders):
            burst = share + (1 if position < extra else 0)
            if burst:
                sender.write(self.frame * burst)
        self.sent += allowed


class Latency(CountingListener):
    """Reads the send time each frame carries (``"content":"t=<monotonic ns>|``) and keeps the delay.

    Copies of global-room messages are kept apart from clan copies: one global message is thousands
    of copies written in one burst, so its tail is a different quantity from a clan message's.
    """

    wants_payloads = True
    MARK = b'"content":"t='
    GLOBAL = b'{"chat":"global"'
    HEAD = 48  # the room is named within a frame's first bytes

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.samples, self.global_samples = array("q"), array("q")
        self.frames = self.other = 0
        self.closed.clear()

    def on_text(self, socket: RawSocket, data: bytes, start: int, stop: int, now_ns: int) -> None:
        self.frames += 1
        found = data.find(self.MARK, start, stop)
        if found < 0:
            self.other += 1
            return
        begin = found + len(self.MARK)
        delay = now_ns - int(data[begin : data.find(b"|", begin, stop)])
        # ours opens with the room, the peer's event with its name first: ``42["newMessage",{"chat":...``
        to_global = data.find(self.GLOBAL, start, start + self.HEAD) >= 0
        (self.global_samples if to_global else self.samples).append(delay)


class LoadProcess:
    """This process's sockets and the commands that act on them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.host: str = config.get("host", "127.0.0.1")
        self.ports: list[int] = config["ports"]
        self.socketio = config.get("protocol") == "socketio"
        self.path: str = config.get("path", ENGINE_IO_PATH if self.socketio else "/ws/chat")
        self.secret: str = config["secret"]
        self.first_index: int = config.get("first_index", 0)
        self.flood = Flood()
        self.latency = Latency()
        self.sockets: list[RawSocket] = []
        self.clan_of: dict[int, str | None] = {}

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
        for socket in self.sockets:
            socket.close()
        await asyncio.sleep(0.2)  # let the closes reach the server before the process exits

    def _frame(self, event: bytes, data: bytes) -> bytes:
        """One chat frame: ours is ``{"event","data"}``, the Socket.IO peer's the event packet."""
        if self.socketio:
            return b'42["%s",%s]' % (event, data)
        return b'{"event":"%s","data":%s}' % (event, data)

    def _token(self, index: int, clan_id: str | None) -> str:
        claims: dict[str, Any] = {"player_id": player_id(index), "name": f"bench-{index}", "exp": time.time() + 86400}
        if clan_id is not None:
            claims["clan_id"] = clan_id
        return jwt.encode(claims, self.secret, algorithm="HS256")

    async def cmd_open(
        self,
        count: int,
        clan_size: int | None = None,
        concurrency: int = 100,
        listener: str = "flood",
        game_every: int = 0,
    ) -> dict[str, Any]:
        first = self.first_index + len(self.sockets)
        targets = []
        for index in range(first, first + count):
            clan = None if clan_size is None else f"clan-{index // clan_size}"
            self.clan_of[index] = clan
            query = "&" if "?" in self.path else "?"
            targets.append((self.ports[index % len(self.ports)], f"{self.path}{query}token={self._token(index, clan)}"))
        chosen = self.latency if listener == "latency" else self.flood
        cpu = time.process_time()
        result = await open_sockets(
            self.host,
            targets,
            chosen,
            first_index=first,
            concurrency=concurrency,
            game_every=game_every,
            engine_io=self.socketio,
        )
        self.sockets.extend(result.sockets)
        log(f"opened {len(result.sockets)}/{count} sockets in {result.seconds:.2f}s ({len(self.sockets)} open)")
        return {
            "open": len(self.sockets),
            "opened": len(result.sockets),
            "failed": len(result.failures),
            "failures": result.failures[:5],
            "seconds": result.seconds,
            "client_cpu_seconds": time.process_time() - cpu,
            "connect_ms": {k: v * 1000 for k, v in percentiles(result.connect_seconds).items()},
        }

    async def cmd_flood(
        self,
        messages: int,
        senders: list[int],
        expect_per_message: int,
        window: int,
        event: str = "globalMessage",
        content: str = "fan-out benchmark message",
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        payload = self._frame(event.encode(), json.dumps({"content": content}).encode())
        flood = self.flood
        flood.closed.clear()
        cpu = time.process_time()
        started = time.perf_counter()
        flood.start([self.sockets[i] for i in senders], payload, messages, expect_per_message, window)
        assert flood.done is not None
        try:
            await asyncio.wait_for(asyncio.shield(flood.done), timeout)
            complete = True
        except TimeoutError:
            complete = False
        ended = flood.finished_at if complete else time.perf_counter()
        flood.done = None
        seconds = ended - started
        log(f"flood: {flood.frames} deliveries in {seconds:.2f}s ({flood.frames / seconds:,.0f}/s)")
        return {
            "complete": complete,
            "sent": flood.sent,
            "delivered": flood.frames,
            "expected": messages * expect_per_message,
            "seconds": seconds,
            "deliveries_per_second": flood.frames / seconds,
            "messages_per_second": flood.frames / expect_per_message / seconds,
            "closed": len(flood.closed),
            "closed_reasons": sorted(set(flood.closed))[:5],
            "frame_bytes": self.sockets[senders[0]].last_payload_bytes,
            "client_cpu_seconds": time.process_time() - cpu,
        }

    async def cmd_load(
        self, rate: float, seconds: float, global_every: int = 0, drain_timeout: float = 5.0, pad: int = 40
    ) -> dict[str, Any]:
        """Open-loop load: the schedule never waits for answers, so a slow server shows as latency."""
        listener = self.latency
        listener.reset()
        members = Counter(self.clan_of[s.index] for s in self.sockets)
        firsts: dict[str, RawSocket] = {}
        for socket in self.sockets:
            clan = self.clan_of[socket.index]
            if clan is not None:
                firsts.setdefault(clan, socket)
        senders = list(firsts.values())
        filler = b"x" * pad
        total = int(rate * seconds)
        lags: list[float] = []
        expected = sent = 0
        cpu = time.process_time()
        start = time.monotonic_ns()
        period_ns = 1e9 / rate
        while sent < total:
            due = min(total, int((time.monotonic_ns() - start) / period_ns) + 1)
            while sent < due:
                sender = senders[sent % len(senders)]
                to_global = global_every > 0 and sent % global_every == global_every - 1
                now = time.monotonic_ns()
                event = b"globalMessage" if to_global else b"clanMessage"
                sender.send_text(self._frame(event, b'{"content":"t=%d|%s"}' % (now, filler)))
                lags.append((now - start - sent * period_ns) / 1e6)
                expected += len(self.sockets) if to_global else members[self.clan_of[sender.index]]
                sent += 1
            await asyncio.sleep(0.001)
        sending = (time.monotonic_ns() - start) / 1e9
        deadline = time.monotonic() + drain_timeout
        while listener.frames < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        clan_ms = [v / 1e6 for v in listener.samples]
        everywhere_ms = [v / 1e6 for v in listener.global_samples]
        found = percentiles(clan_ms + everywhere_ms)
        log(
            f"load {rate:g}/s: {sent} sent, {listener.frames}/{expected} delivered, "
            f"p50 {found.get('p50', 0):.1f} ms, p99 {found.get('p99', 0):.1f} ms"
        )
        return {
            "rate": rate,
            "sent": sent,
            "sending_seconds": sending,
            "expected": expected,
            "delivered": listener.frames,
            "other_frames": listener.other,
            "closed": len(listener.closed),
            "latency_ms": found,
            "clan_latency_ms": percentiles(clan_ms),
            "global_latency_ms": percentiles(everywhere_ms),
            "send_lag_ms": percentiles(lags),
            "client_cpu_seconds": time.process_time() - cpu,
        }


def log(text: str) -> None:
    print(f"    [load] {text}", file=sys.stderr, flush=True)


def main() -> None:
    run_load(LoadProcess(json.loads(sys.argv[1])).run())


if __name__ == "__main__":
    main()
