"""The event hash chain's encoding: every field counts, None is not 0, order matters."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from events.chain import GENESIS, epoch_micros, event_hash

ROOT = Path(__file__).resolve().parents[2]
DOC = uuid.UUID("0b5c1a4e-6f3d-4c2a-9e1f-2d7b8a9c0e11")
WHEN = datetime(2026, 11, 22, 3, 49, 0, 120000, tzinfo=UTC)
FIELDS: dict[str, Any] = {
    "document_id": DOC,
    "seq": 3,
    "kind": "update",
    "actor_id": 7,
    "yjs_client_id": 2_718_281_828,
    "created_at": WHEN,
    "update": b"\x01\x02\x03",
}


def _hash(prev: bytes = GENESIS, **changes: Any) -> bytes:
    return event_hash(prev, **{**FIELDS, **changes})


def test_the_hash_is_sha256_over_the_documented_bytes() -> None:
    body = (
        b"palimpsest.event.v1"
        + DOC.bytes
        + struct.pack(">Q", 3)
        + struct.pack(">I", 6)
        + b"update"
        + b"\x01"
        + struct.pack(">q", 7)
        + b"\x01"
        + struct.pack(">q", 2_718_281_828)
        + struct.pack(">q", 1_795_319_340_120_000)
        + hashlib.sha256(b"\x01\x02\x03").digest()
    )
    prev = bytes(range(32))
    assert _hash(prev) == hashlib.sha256(prev + body).digest()
    assert len(_hash()) == 32
    # A fixed vector, for anyone checking the chain with their own code.
    assert _hash().hex() == "1ea04d5e17faaaf35a3098ea00a07d2459e9b09e2feda8cc24db6d9523ea06a7"


@pytest.mark.parametrize(
    "change",
    [
        {"document_id": uuid.UUID(int=DOC.int + 1)},
        {"seq": 4},
        {"kind": "restore"},
        {"actor_id": 8},
        {"actor_id": None},
        {"yjs_client_id": 2_718_281_829},
        {"yjs_client_id": None},
        {"created_at": WHEN + timedelta(microseconds=1)},
        {"update": b"\x01\x02\x04"},
        {"update": b""},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_field_changes_the_hash(change: dict[str, Any]) -> None:
    assert _hash(**change) != _hash()


def test_a_kind_hashes_as_its_text_whatever_its_type() -> None:
    class Kind(StrEnum):
        RESTORE = "restore"

    assert _hash(kind=Kind.RESTORE) == _hash(kind="restore") != _hash(kind="update")
    assert _hash(kind="restoré") != _hash(kind="restore")


def test_the_previous_hash_changes_the_hash() -> None:
    assert _hash(b"\x00" * 31 + b"\x01") != _hash(GENESIS)


def test_none_and_zero_differ() -> None:
    assert _hash(actor_id=None) != _hash(actor_id=0)
    assert _hash(yjs_client_id=None) != _hash(yjs_client_id=0)


def test_fields_cannot_trade_places() -> None:
    # The same two values in the other order: the encoding keeps their places apart.
    assert _hash(actor_id=None, yjs_client_id=5) != _hash(actor_id=5, yjs_client_id=None)
    assert _hash(actor_id=5, yjs_client_id=6) != _hash(actor_id=6, yjs_client_id=5)


def test_order_matters() -> None:
    first = _hash(GENESIS, seq=1, update=b"a")
    second = _hash(first, seq=2, update=b"b")
    swapped_first = _hash(GENESIS, seq=1, update=b"b")
    swapped_second = _hash(swapped_first, seq=2, update=b"a")
    assert second != swapped_second


def test_the_same_instant_in_any_zone_hashes_alike() -> None:
    east = WHEN.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert _hash(created_at=east) == _hash()
    assert epoch_micros(east) == epoch_micros(WHEN) == 1_795_319_340_120_000
    assert epoch_micros(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _hash(created_at=WHEN.replace(tzinfo=None))


def test_the_chain_module_imports_no_django() -> None:
    code = (
        "import sys, events.chain\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'django')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"events.chain imports Django: {out.stdout}"
