"""Edit history (time travel, restore, attribution, authored diff) against stock Yjs clients.

The clients type into the browser editor's layout (`--shape paragraph`: the XmlText of the
first `paragraph` of XmlFragment("default")), which the server's rendering and attribution read.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import pytest

from tests.interop.live import TRACES, LiveServer, NodeClient, converged, replay

StartClient = Callable[..., NodeClient]

PARAGRAPH = ("--shape", "paragraph")
TRACE = TRACES / "seph-blog1.json.gz"
SEED = 20261122
# The replay's writer creates the paragraph in a transaction of its own before the trace's
# first one: event 1 is that (an empty paragraph), so seq s is the state after s - 1 of the
# trace's transactions.
PARAGRAPH_EVENTS = 1
# Disjoint alphabets, so each surviving character names its typist; a non-BMP character each,
# so UTF-16 (clients) and code points (server) must agree on positions.
ALPHABETS = {"ann": "abcdefghijklmé😀", "ben": "nopqrstuvwxyzΩ🎉"}


def _synced(client: NodeClient) -> NodeClient:
    reply = client.call("wait_synced", timeout=30000)
    assert reply["ok"], reply
    return client


def _trace_texts(counts: set[int]) -> tuple[int, dict[int, str]]:
    """The number of transactions in the trace and its text after each of `counts` of them
    (trace positions are code points, as Python's string indexes)."""
    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    text: str = trace.get("startContent", "")
    texts = {0: text} if 0 in counts else {}
    for done, txn in enumerate(trace["txns"], start=1):
        for pos, delete, insert in txn["patches"]:
            text = text[:pos] + insert + text[pos + delete :]
        if done in counts:
            texts[done] = text
    assert text == trace["endContent"]
    return len(trace["txns"]), texts


@pytest.mark.timeout(600)
def test_seph_blog1_time_travel_and_restore_with_stock_clients(
    daphne_server: LiveServer, node_client: StartClient
) -> None:
    server = daphne_server
    token = server.token("seph")
    doc = server.document(token)

    started = time.monotonic()
    result = replay(server, doc, token, "--trace", str(TRACE), *PARAGRAPH)
    replay_s = time.monotonic() - started
    print(f"seph-blog1 in paragraph shape: {result}, {replay_s:.1f} s with node start-up")
    assert result["reader_matches"] is True, result
    assert result["setup_txns"] == PARAGRAPH_EVENTS
    txns = result["txns"]
    head = txns + PARAGRAPH_EVENTS

    # The log kept every event: one per transaction, plus the paragraph's.
    events, reported_head = server.history(doc, token)
    assert reported_head == head
    assert [e["seq"] for e in events] == list(range(1, head + 1))
    assert {(e["actor"], e["kind"]) for e in events} == {("seph", "update")}

    rng = random.Random(SEED)
    seqs = sorted(rng.sample(range(PARAGRAPH_EVENTS, head + 1), 10))
    print(f"seed {SEED}: seqs {seqs}")
    trace_txns, texts = _trace_texts({seq - PARAGRAPH_EVENTS for seq in seqs} | {txns})
    assert trace_txns == txns
    for seq in seqs:
        at, content = server.content_text(doc, token, at=seq)
        assert at == seq
        assert content == texts[seq - PARAGRAPH_EVENTS], f"content at seq {seq}"

    # Two more stock clients stay connected through the restore (the replay's have left).
    watchers = [_synced(node_client(server.ws_url, doc, token, *PARAGRAPH)) for _ in range(2)]
    final = texts[txns]
    for watcher in watchers:
        assert watcher.call("wait_text", equals=final, timeout=30000)["ok"]

    target = rng.choice(seqs)
    wanted = texts[target - PARAGRAPH_EVENTS]
    status, restored = server.api_status("POST", f"/docs/{doc}/restore", token, {"seq": target})
    assert (status, restored) == (201, {"seq": head + 1, "restored_to": target})
    print(f"restored to seq {target} ({len(wanted)} characters)")
    for watcher in watchers:
        reply = watcher.call("wait_text", equals=wanted, timeout=30000)
        assert reply["ok"], f"a client shows {len(reply['text'])} characters"

    # One restore event more; nothing before it changed; both versions still readable.
    after, after_head = server.history(doc, token)
    assert after_head == head + 1
    assert after[:head] == events
    assert (after[head]["seq"], after[head]["actor"], after[head]["kind"]) == (
        head + 1,
        "seph",
        "restore",
    )
    assert server.content_text(doc, token) == (head + 1, wanted)
    assert server.content_text(doc, token, at=head) == (head, final)


def _together(calls: list[tuple[NodeClient, dict[str, Any]]]) -> None:
    """Run random_edits on several clients at the same time."""
    with ThreadPoolExecutor(len(calls)) as pool:
        replies = [pool.submit(client.call, "random_edits", **args) for client, args in calls]
        assert all(reply.result()["ok"] for reply in replies)


def _typist(text: str) -> str:
    """Whose alphabet `text` is written in (all of it), or fail."""
    for user, alphabet in ALPHABETS.items():
        if set(text) <= set(alphabet):
            return user
    raise AssertionError(f"{text!r} mixes alphabets")


def _check_attribution(server: LiveServer, doc: str, token: str, seq: int, text: str) -> None:
    """Attribution at `seq` credits each user with exactly the characters of their alphabet."""
    reply = server.api("GET", f"/docs/{doc}/attribution?at={seq}", token)
    assert (reply["seq"], reply["text"]) == (seq, text)
    assert "".join(run["text"] for run in reply["runs"]) == text
    for run in reply["runs"]:
        assert run["author"] == _typist(run["text"]), run
    typed = Counter(_typist(char) for char in text)
    assert {a["author"]: a["chars"] for a in reply["authors"]} == dict(typed)


def _diff(server: LiveServer, doc: str, token: str, start: int, end: int) -> list[dict[str, Any]]:
    """The authored diff from `start` to `end`, checked to rebuild both versions."""
    reply = server.api("GET", f"/docs/{doc}/diff?from={start}&to={end}", token)
    assert (reply["from"], reply["to"]) == (start, end)
    changes: list[dict[str, Any]] = reply["changes"]
    old = "".join(c["text"] for c in changes if c["op"] in ("equal", "delete"))
    new = "".join(c["text"] for c in changes if c["op"] in ("equal", "insert"))
    assert old == server.content_text(doc, token, at=start)[1]
    assert new == server.content_text(doc, token, at=end)[1]
    for change in changes:
        if change["op"] == "equal":
            assert (change["author"], change["seq"]) == (None, None), change
        else:
            assert start < change["seq"] <= end, change
        if change["op"] == "insert":
            assert change["author"] == _typist(change["text"]), change
    return changes


@pytest.mark.timeout(300)
def test_two_users_typing_at_once_attribution_and_diff(
    daphne_server: LiveServer, node_client: StartClient
) -> None:
    server = daphne_server
    tokens = {user: server.token(user) for user in ALPHABETS}
    doc = server.document(tokens["ann"], ben="editor")
    ann = _synced(node_client(server.ws_url, doc, tokens["ann"], *PARAGRAPH))
    # Only one client makes the paragraph; the other starts once it has it.
    assert ann.call("make_paragraph") == {"ok": True, "created": True}
    ben = _synced(node_client(server.ws_url, doc, tokens["ben"], *PARAGRAPH))
    assert ben.call("wait_paragraph", timeout=10000)["ok"]
    token = tokens["ann"]
    assert server.logged(doc, token, "") == 1

    def edits(user: str, phase: int, count: int, insert_ratio: float) -> dict[str, Any]:
        seed = SEED + 10 * phase + list(ALPHABETS).index(user)
        return {
            "count": count,
            "seed": seed,
            "delay_ms": 2,
            "alphabet": ALPHABETS[user],
            "insert_ratio": insert_ratio,
        }

    # Phase 1: both insert and delete anywhere. Phase 2: ann only deletes (either's text),
    # ben only inserts. Phase 3: the other way round. So every delete of phases 2 and 3 has a
    # known author, and every insert's author is its alphabet's.
    phases = [
        [(ann, edits("ann", 1, 300, 0.7)), (ben, edits("ben", 1, 300, 0.7))],
        [(ann, edits("ann", 2, 120, 0.0)), (ben, edits("ben", 2, 200, 1.0))],
        [(ann, edits("ann", 3, 200, 1.0)), (ben, edits("ben", 3, 120, 0.0))],
    ]
    ends = [1]
    texts = {1: ""}
    for calls in phases:
        _together(calls)
        text = converged([ann, ben])
        ends.append(server.logged(doc, token, text))
        texts[ends[-1]] = text
    print(f"seed {SEED}: phase ends at seqs {ends}, final {len(texts[ends[-1]])} characters")
    start, p1, p2, head = ends
    events, logged_head = server.history(doc, token)
    assert logged_head == head
    # At the same time: the two users' events interleave in the log.
    phase1 = [e["actor"] for e in events[start:p1]]
    assert sum(a != b for a, b in pairwise(phase1)) >= 20, phase1

    for seq in (p1, p2, head):
        _check_attribution(server, doc, token, seq, texts[seq])

    # Phase 1 from an empty paragraph: only inserts, of what survived.
    assert {c["op"] for c in _diff(server, doc, token, start, p1)} == {"insert"}
    for first, last, deleter, inserter in ((p1, p2, "ann", "ben"), (p2, head, "ben", "ann")):
        authors = {(c["op"], c["author"]) for c in _diff(server, doc, token, first, last)}
        assert authors == {("equal", None), ("delete", deleter), ("insert", inserter)}
    # Across phases 2 and 3, a change's seq tells whose it is.
    across = _diff(server, doc, token, p1, head)
    for change in across:
        if change["op"] == "delete":
            assert change["author"] == ("ann" if change["seq"] <= p2 else "ben"), change
        elif change["op"] == "insert":
            assert change["author"] == ("ben" if change["seq"] <= p2 else "ann"), change
    assert {c["author"] for c in across if c["op"] != "equal"} == {"ann", "ben"}
