"""Raw WebSocket clients that misbehave on purpose: they read only when told to.

Framing comes from the `websockets` library's sans-I/O protocol; the socket is ours, so a test
decides when (and whether) anything is read or a close is answered.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycrdt import Doc, XmlElement, XmlFragment, XmlText, create_sync_message, create_update_message
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.interop.live import LiveServer

# SyncStep1 with an empty state vector: "send me the whole document".
EMPTY_STEP1 = create_sync_message(Doc())


@dataclass
class Received:
    """What a raw client has read so far."""

    frames: list[bytes]
    texts: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    eof: bool = False


class RawClient:
    """One WebSocket connection that does nothing unless asked."""

    def __init__(self, url: str, *, receive_buffer: int | None = None) -> None:
        uri = parse_uri(url)
        self.protocol = ClientProtocol(uri, max_size=None)
        host, port = uri.host, uri.port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # Small, so a client that never reads fills its window quickly.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect((host, port))
        self.received = Received(frames=[])
        self.status: int | None = None
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        deadline = time.monotonic() + 10
        while self.protocol.state is State.CONNECTING and not self.received.eof:
            assert time.monotonic() < deadline, "no handshake answer in 10 s"
            self._read_some(10)

    @property
    def open(self) -> bool:
        """Whether the handshake succeeded and no close was read."""
        return self.status == 101 and self.received.close_code is None and not self.received.eof

    def _flush(self) -> None:
        """Send what the protocol has queued; a reset connection counts as closed."""
        for chunk in self.protocol.data_to_send():
            if chunk:
                try:
                    self.sock.sendall(chunk)
                except OSError:
                    self.received.eof = True
                    return

    def _read_some(self, timeout: float, max_bytes: int = 1 << 20) -> bool:
        """Read once; False on timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(max_bytes)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self.received.eof = True
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.status = event.status_code
            elif isinstance(event, Frame):
                if event.opcode is Opcode.BINARY:
                    self.received.frames.append(bytes(event.data))
                elif event.opcode is Opcode.TEXT:
                    self.received.texts.append(bytes(event.data).decode("utf-8"))
                elif event.opcode is Opcode.CLOSE:
                    close = Close.parse(bytes(event.data))
                    self.received.close_code, self.received.close_reason = close.code, close.reason
        self._flush()  # pongs and close replies, as a client that does read would send
        return True

    def send(self, payload: bytes) -> None:
        """Send one binary message."""
        self.protocol.send_binary(payload)
        self._flush()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (a frame header alone, say)."""
        self.sock.sendall(data)

    def encode(self, payload: bytes) -> bytes:
        """One binary message as it would go on the wire, not sent."""
        self.protocol.send_binary(payload)
        return b"".join(self.protocol.data_to_send())

    def read_a_little(self, max_bytes: int = 4096, timeout: float = 0.05) -> Received:
        """One read of at most `max_bytes`: a reader far slower than what it is sent."""
        if not self.received.eof:
            self._read_some(timeout, max_bytes)
        return self.received

    def read_until_closed(self, timeout: float) -> Received:
        """Read (answering the close) until the server closes or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not self.received.eof and time.monotonic() < deadline:
            self._read_some(max(0.05, min(1.0, deadline - time.monotonic())))
            if self.received.close_code is not None and self.protocol.state is State.CLOSED:
                break
        return self.received

    def read_until(self, done: Callable[[Received], bool], timeout: float) -> Received:
        """Read until `done(received)` holds, the connection ends, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not done(self.received) and not self.received.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._read_some(min(1.0, left))
        return self.received

    def read_frames(self, count: int, timeout: float) -> list[bytes]:
        """Read until `count` binary frames have arrived (or the timeout); all read so far."""
        deadline = time.monotonic() + timeout
        while len(self.received.frames) < count and time.monotonic() < deadline:
            if self.received.eof:
                break
            self._read_some(max(0.05, min(1.0, deadline - time.monotonic())))
        return self.received.frames

    def close(self) -> None:
        """Drop the socket without a handshake."""
        self.sock.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def ws_url(server: LiveServer, doc_id: str, token: str) -> str:
    return f"{server.ws_url}/{doc_id}?token={token}"


def paragraph_doc() -> tuple[Doc[Any], XmlText, list[bytes]]:
    """A pycrdt client in the editor's layout, and the updates it makes."""
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    paragraph = doc.get("default", type=XmlFragment).children.append(XmlElement("paragraph"))
    return doc, paragraph.children.append(XmlText()), updates


def write_document(server: LiveServer, doc_id: str, token: str, chars: int) -> None:
    """Give a document `chars` characters through a well-behaved raw writer."""
    writer = RawClient(ws_url(server, doc_id, token))
    _, text, updates = paragraph_doc()
    text.insert(0, "x" * chars)
    for update in updates:
        writer.send(create_update_message(update))
    writer.send(EMPTY_STEP1)
    writer.read_frames(3, 30)  # the server's SyncStep1, then the answer: all is durable
    writer.close()


class LatencyProbe:
    """Another document's writer and reader: how long each small edit takes to arrive."""

    def __init__(self, server: LiveServer, token: str, period: float = 0.02) -> None:
        doc_id = server.document(token)
        self._writer = RawClient(ws_url(server, doc_id, token))
        self._reader = RawClient(ws_url(server, doc_id, token))
        for client in (self._writer, self._reader):
            client.read_frames(1, 10)
        self._doc, self._text, self._updates = paragraph_doc()
        for update in self._updates:
            self._writer.send(create_update_message(update))
        self._period = period
        self.samples: list[float] = []
        self.lost = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LatencyProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._writer.close()
        self._reader.close()

    def _run(self) -> None:
        self._reader.read_frames(len(self._reader.received.frames) + len(self._updates), 10)
        deadline = time.monotonic() + 120  # bounded even if the test forgets to stop it
        while not self._stop.is_set() and time.monotonic() < deadline:
            seen = len(self._reader.received.frames)
            self._updates.clear()
            self._text.insert(0, "k")
            started = time.monotonic()
            self._writer.send(create_update_message(self._updates[-1]))
            if len(self._reader.read_frames(seen + 1, 5)) > seen:
                self.samples.append(time.monotonic() - started)
            else:
                self.lost += 1
            time.sleep(self._period)

    def p99_ms(self) -> float:
        """The 99th percentile latency so far, in ms."""
        assert len(self.samples) >= 20, f"only {len(self.samples)} samples"
        return statistics.quantiles(self.samples, n=100)[98] * 1000


def ask_and_never_read(url: str, pid: int, seconds: float) -> tuple[float | None, float]:
    """A viewer asking for the whole document 3,000 times at once, then ten times a second,
    reading a few KiB a tenth of a second; when the server closed it (None: not within
    `seconds`), and the server's peak RSS in MB meanwhile."""
    asker = RawClient(url, receive_buffer=4096)
    peak = rss_mb(pid)
    for _ in range(3000):
        asker.send(EMPTY_STEP1)
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            asker.send(EMPTY_STEP1)  # keeps asking: answers pile up unread
            peak = max(peak, rss_mb(pid))
            if asker.read_a_little().eof:
                return time.monotonic() - started, peak
            time.sleep(0.1)
        return None, peak
    finally:
        asker.close()
