"""What operators see at ``GET /metrics`` (Prometheus text format), on this worker's own registry.

Counting stays off the per-socket path: a fan-out adds its audience size once, not once per socket.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()

OPEN_SOCKETS = Gauge("chat_open_sockets", "WebSockets open on this worker", registry=REGISTRY)
ROOMS = Gauge("chat_rooms", "Rooms with at least one socket on this worker", registry=REGISTRY)
FRAMES_IN = Counter("chat_frames_in_total", "Client frames received, by event", ["event"], registry=REGISTRY)
FRAMES_OUT = Counter("chat_frames_out_total", "Frames queued to sockets, by kind", ["kind"], registry=REGISTRY)
ERRORS = Counter("chat_errors_total", "Error frames and HTTP errors sent, by reason", ["reason"], registry=REGISTRY)
STORE_SECONDS = Histogram("chat_store_seconds", "Message store calls, by operation", ["operation"], registry=REGISTRY)
BROKER_SECONDS = Histogram("chat_broker_publish_seconds", "Broker publish calls", registry=REGISTRY)
BROADCAST_SECONDS = Histogram(
    "chat_broadcast_seconds",
    "From a client frame arriving at its worker to its broadcast being queued to this worker's sockets",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
FRAMES_WITHHELD = Counter(
    "chat_frames_withheld_total",
    "Frames a game-dialect socket is not sent because the shipped client cannot parse them, by kind",
    ["kind"],
    registry=REGISTRY,
)
FRAMES_DROPPED = Counter(
    "chat_frames_dropped_total", "Oldest queued frames dropped for game sockets that read too slowly", registry=REGISTRY
)
GC_PAUSES = Histogram(
    "chat_gc_pause_seconds",
    "Garbage-collector passes on this worker (everything else waits for them), by generation",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    registry=REGISTRY,
)
SOCKETS_REFUSED_BEHIND = Counter(
    "chat_sockets_refused_behind_total",
    "Handshakes refused with 503 because this worker's event loop ran behind CHAT_ADMISSION_MAX_LAG_MS",
    registry=REGISTRY,
)
SLOW_CONSUMERS = Counter("chat_slow_consumer_disconnects_total", "Sockets cut for not reading", registry=REGISTRY)
RATE_LIMITED = Counter(
    "chat_rate_limited_total", "Requests refused by a rate limit, by kind", ["kind"], registry=REGISTRY
)
CATCH_UPS = Counter(
    "chat_catch_ups_total",
    "Rooms repaired from the store after lost pub/sub frames, by outcome (done, failed)",
    ["outcome"],
    registry=REGISTRY,
)
HEADS_REFUSED = Counter(
    "chat_request_heads_refused_total",
    "Connections refused by the HTTP layer (400 unparsable, 408 slow, 414/431 long, 503 too many), by status",
    ["status"],
    registry=REGISTRY,
)
FILTERED = Counter(
    "chat_filtered_messages_total",
    "Messages holding a blocked term, by what the word filter did (mask, refuse)",
    ["action"],
    registry=REGISTRY,
)
REPORTS = Counter("chat_reports_total", "Messages reported by players, by chat", ["chat"], registry=REGISTRY)
EVENTS = Counter(
    "chat_events_total",
    "Events of changes, by outcome: appended with their change, repaired (appended by the sweep), deferred "
    "(the append failed; left in the outbox for the sweep)",
    ["outcome"],
    registry=REGISTRY,
)
BROADCASTS_OUT = FRAMES_OUT.labels("broadcast")


@contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def exposition() -> tuple[bytes, str]:
    """The body and content type of ``/metrics``."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
