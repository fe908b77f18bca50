"""What an operator can scrape from a web process (Prometheus): its own registry, so only
these and the process's CPU, memory and file figures are exposed.

Counters and histograms are updated where things happen; gauges of current state (rooms,
sockets, queues, exports) are set when a scrape asks (collab/views.py).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Latencies on this path run from tens of microseconds (an idle SQLite append) to seconds
# (a database that went away), so the buckets span both.
_SECONDS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
)

ROOMS = Gauge("palimpsest_rooms_open", "Documents open in this process", registry=REGISTRY)
SOCKETS = Gauge(
    "palimpsest_sockets_open",
    "Document sockets joined to a room in this process",
    registry=REGISTRY,
)
APPEND_BATCH = Histogram(
    "palimpsest_append_batch_events",
    "Events per group-committed append batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
APPEND_SECONDS = Histogram(
    "palimpsest_append_seconds",
    "Time to write and commit one append batch",
    buckets=_SECONDS,
    registry=REGISTRY,
)
RELAY_SECONDS = Histogram(
    "palimpsest_relay_seconds",
    "From an update's acceptance to its relay to the room's local members (durable first)",
    buckets=_SECONDS,
    registry=REGISTRY,
)
APPEND_QUEUE = Gauge(
    "palimpsest_append_queue_events", "Accepted updates waiting for the log", registry=REGISTRY
)
BUS_OUTBOX = Gauge(
    "palimpsest_bus_outbox_messages",
    "Messages waiting to be published to other processes",
    registry=REGISTRY,
)
CATCHUP_BEHIND = Gauge(
    "palimpsest_catchup_behind_events",
    "At the last catch-up, logged events this process's rooms had not seen",
    registry=REGISTRY,
)
CATCHUP_EVENTS = Counter(
    "palimpsest_catchup_events",
    "Logged events rooms read back from the log (the bus missed them, or they were appended "
    "outside the rooms, as a restore is)",
    registry=REGISTRY,
)
CLOSES = Counter(
    "palimpsest_socket_closes",
    "WebSocket close codes this process sent",
    ["code"],
    registry=REGISTRY,
)
EXPORTS = Gauge("palimpsest_exports", "PDF exports by status", ["status"], registry=REGISTRY)
