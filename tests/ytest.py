"""A minimal y-websocket client over pycrdt for tests, and makers of bad frames."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator

from pycrdt import (
    Doc,
    Text,
    XmlElement,
    XmlFragment,
    XmlText,
    YMessageType,
    write_message,
    write_var_uint,
)

from collab.sync.protocol import (
    FrameKind,
    create_sync_message,
    create_update_message,
    encode_sync_step2,
    parse_frame,
)

Send = Callable[[bytes], Awaitable[None]]


class YClient:
    """A Y.Doc with a Text named "text", speaking the y-websocket protocol through `send`."""

    def __init__(self, send: Send) -> None:
        self.doc = Doc()
        self.text = self.doc.get("text", type=Text)
        self._send = send
        self.denied: list[bytes] = []
        self.awareness: list[bytes] = []

    async def handle(self, frame: bytes) -> None:
        """Apply one frame from the server, answering SyncStep1 as a client does."""
        if frame[:1] == b"\x02":
            self.denied.append(frame)
            return
        message = parse_frame(frame)
        if message.kind is FrameKind.SYNC_STEP1:
            await self._send(encode_sync_step2(self.doc.get_update(message.payload)))
        elif message.kind in (FrameKind.SYNC_STEP2, FrameKind.SYNC_UPDATE):
            self.doc.apply_update(message.payload)
        elif message.kind is FrameKind.AWARENESS:
            self.awareness.append(message.payload)

    async def start_sync(self) -> None:
        """Send our SyncStep1."""
        await self._send(create_sync_message(self.doc))

    async def insert(self, index: int, chunk: str) -> bytes:
        """Insert text as one transaction and send the update; returns the update."""
        before = self.doc.get_state()
        with self.doc.transaction():
            self.text.insert(index, chunk)
        update = self.doc.get_update(before)
        await self._send(create_update_message(update))
        return update

    async def delete(self, index: int, length: int) -> bytes:
        """Delete a range as one transaction and send the update."""
        before = self.doc.get_state()
        with self.doc.transaction():
            del self.text[index : index + length]
        # Structs after `before` (none) plus the whole delete set, which carries the deletion.
        update = self.doc.get_update(before)
        await self._send(create_update_message(update))
        return update

    def __str__(self) -> str:
        return str(self.text)


def sample_update(text: str = "hello") -> bytes:
    """A valid update inserting `text` from a fresh client."""
    doc = Doc()
    doc.get("text", type=Text).insert(0, text)
    return doc.get_update()


def bad_frames(count: int, seed: int = 7) -> Iterator[bytes]:
    """Frames each guaranteed to break the protocol, in many shapes."""
    rng = random.Random(seed)
    update_frame = create_update_message(sample_update("bad frames must never land"))
    awareness = write_var_uint(1) + write_var_uint(42) + write_var_uint(1)
    makers: list[Callable[[], bytes]] = [
        # truncated anywhere inside a valid frame
        lambda: update_frame[: rng.randrange(1, len(update_frame))],
        # trailing garbage
        lambda: update_frame + rng.randbytes(rng.randrange(1, 8)),
        # unknown message types
        lambda: write_var_uint(rng.randrange(4, 300)) + rng.randbytes(rng.randrange(0, 20)),
        # unknown sync sub-types
        lambda: bytes([YMessageType.SYNC]) + write_var_uint(rng.randrange(3, 200)) + b"\x01\x00",
        # a length prefix larger than the frame
        lambda: bytes([0, 2]) + write_var_uint(rng.randrange(100, 10_000)) + b"\x01\x02",
        # a well-framed payload that is not a Yjs update
        lambda: bytes([0, 2]) + write_message(b"\x05" + rng.randbytes(rng.randrange(0, 6))),
        # an over-long varint
        lambda: b"\x80" * rng.randrange(10, 30),
        # awareness whose state is not JSON
        lambda: bytes([1]) + write_message(awareness + write_message(b"{not json")),
        # an empty frame
        lambda: b"",
    ]
    for i in range(count):
        yield makers[i % len(makers)]()


def awareness_update(client_id: int, state: dict[str, object]) -> bytes:
    """An awareness update announcing `state` for `client_id`, as its client would send it."""
    from pycrdt import Awareness

    awareness = Awareness(Doc(client_id=client_id))
    awareness.set_local_state(state)
    return awareness.encode_awareness_update([client_id])


def mutate(update: bytes, rng: random.Random) -> bytes:
    """One to three random damages to a real update: bit flips, truncations, splices of
    another part of itself, and inflated varints (long runs of continuation bytes)."""
    data = bytearray(update)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(4)
        if kind == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:
            data = data[: rng.randrange(len(data))]
        elif kind == 2:
            i, j = rng.randrange(len(data) + 1), rng.randrange(len(update) + 1)
            data = data[:i] + bytearray(update[j:])
        else:
            i = rng.randrange(len(data) + 1)
            data[i:i] = bytes([0xFF] * rng.randrange(1, 10) + [rng.randrange(1, 128)])
    return bytes(data)


def rich_updates(count: int = 40, seed: int = 3) -> list[bytes]:
    """Updates of a client editing text, a map and the editor's XML shape, one per change."""
    rng = random.Random(seed)
    doc = Doc(client_id=1_000_000 + seed)  # a fixed id: the same bytes on every run
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("text", type=Text)
    fragment = doc.get("default", type=XmlFragment)
    paragraph = fragment.children.append(XmlElement("paragraph"))
    xml_text = paragraph.children.append(XmlText())
    for i in range(count):
        text.insert(rng.randint(0, len(str(text))), "hé!"[: rng.randint(1, 3)])
        xml_text.insert(0, "ab")
        if i % 5 == 0:
            xml_text.format(0, 1, {"bold": True})
            del text[0:1]
    return updates


def find_panicking_update(base: list[bytes], seed: int = 1, tries: int = 200_000) -> bytes:
    """A mutation of one of `base` that makes yrs panic when applied after all of `base`."""
    from collab.sync.replica import is_yrs_panic

    rng = random.Random(seed)
    for _ in range(tries):
        candidate = mutate(rng.choice(base), rng)
        doc = Doc()
        for update in base:
            doc.apply_update(update)
        try:
            doc.apply_update(candidate)
        except (ValueError, RuntimeError):
            continue
        except BaseException as exc:
            if is_yrs_panic(exc):
                return candidate
            raise
    raise AssertionError(f"no panicking update in {tries} tries")


def same_document(a: bytes, b: bytes) -> bool:
    """Whether two encoded states hold the same document (struct order may differ)."""
    x = Doc()
    y = Doc()
    x.apply_update(a)
    y.apply_update(b)
    return x.get_state() == y.get_state() and x.get_update(y.get_state()) == y.get_update(
        x.get_state()
    )
