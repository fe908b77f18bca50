"""The cross-process bus: publishing never holds up its caller, keeps order, stays bounded,
and a layer that stops answering costs a dropped message (caught up from the log), not a
stalled relay."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from collab.realtime import bus as bus_module
from collab.realtime.bus import Bus
from tests.waiting import eventually


class Layer:
    """A channel layer whose sends can be made to hang, as a silent Redis would."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.silent = asyncio.Event()
        self.groups: set[str] = set()

    async def new_channel(self) -> str:
        return "process-channel"

    async def group_add(self, group: str, channel: str) -> None:
        if self.silent.is_set():
            await asyncio.sleep(3600)
        self.groups.add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        self.groups.discard(group)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if self.silent.is_set():
            await asyncio.sleep(3600)
        self.sent.append(message)

    async def receive(self, channel: str) -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {}


async def _ignore(message: dict[str, Any]) -> None:
    """A handler for messages from other processes (none come here)."""


async def test_messages_go_out_in_order_without_waiting_for_the_layer() -> None:
    layer = Layer()
    bus = Bus(layer, _ignore)
    doc = uuid.uuid4()
    for n in range(50):
        await bus.publish_room(doc, {"type": "doc.updates", "n": n})
    await bus.drain(within=5)
    assert [m["n"] for m in layer.sent] == list(range(50))
    assert {m["doc"] for m in layer.sent} == {doc.hex} and all(m["origin"] for m in layer.sent)
    await bus.close()


async def test_a_silent_layer_neither_blocks_publishers_nor_grows_the_outbox(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(bus_module, "OUTBOX_MAX", 10)
    monkeypatch.setattr(bus_module, "LAYER_TIMEOUT_SECONDS", 0.2)
    layer = Layer()
    bus = Bus(layer, _ignore)
    layer.silent.set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(100):
        await bus.publish("g", {"type": "doc.updates", "n": n})
    assert loop.time() - started < 0.1, "publishing waited for the layer"
    assert bus._outbox.qsize() <= 10
    # Answering again: what is published now goes out.
    layer.silent.clear()
    await eventually(lambda: bus._outbox.empty(), 10, "the outbox emptied")
    await bus.publish("g", {"type": "doc.updates", "n": "after"})
    await eventually(lambda: any(m["n"] == "after" for m in layer.sent), 5, "sent again")
    await bus.close()


async def test_a_subscription_the_layer_did_not_take_is_reported_and_taken_later(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(bus_module, "LAYER_TIMEOUT_SECONDS", 0.2)
    layer = Layer()
    bus = Bus(layer, _ignore)
    doc = uuid.uuid4()
    layer.silent.set()
    assert await bus.follow(doc, lambda: True) is False
    assert not bus.subscribed(doc)
    layer.silent.clear()
    assert await bus.follow(doc, lambda: True) is True
    assert bus.subscribed(doc)
    await bus.close()


class Loopback(Layer):
    """A layer that delivers group messages to the channel subscribed, until it goes deaf."""

    def __init__(self) -> None:
        super().__init__()
        self.deaf = False
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await super().group_send(group, message)
        if group in self.groups and not self.deaf:
            self.inbox.put_nowait(message)

    async def receive(self, channel: str) -> dict[str, Any]:
        return await self.inbox.get()


async def test_a_layer_that_stops_delivering_is_replaced_and_every_group_joined_again() -> None:
    layers = [Loopback(), Loopback()]
    made: list[Loopback] = []

    def remake() -> Loopback:
        made.append(layers[len(made) + 1])
        return made[-1]

    bus = Bus(layers[0], _ignore, remake=remake)
    doc = uuid.uuid4()
    assert await bus.follow(doc, lambda: True)
    await bus.check()  # a probe out...
    await eventually(lambda: bus._probe_back == 1, 5, "the probe back")
    layers[0].deaf = True  # subscriptions dead, as after a Redis restart
    await bus.check()  # ...the first came back: all is well, another goes out
    assert made == [] and bus._probe_sent == 2
    await bus.check()  # the second never came back: start over
    assert made == [layers[1]]
    assert f"doc.{doc.hex}" in layers[1].groups and bus.subscribed(doc)
    await bus.check()
    await eventually(lambda: bus._probe_back == 1, 5, "probes come back on the new layer")
    await bus.close()
