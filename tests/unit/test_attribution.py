"""Attribution and authored diffs from the event log, against independently tracked truth."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from collab.sync.attribution import Change, attribute, authored_diff
from collab.sync.html import document_text

Event = tuple[int, int | None, bytes]

# Every typed character is unique, so the test knows who typed and who deleted each one
# without looking at Yjs at all. Latin-1/Latin Extended (2 UTF-8 bytes) and CJK (3 bytes)
# exercise pycrdt's byte offsets; ASCII letters are left to fixed texts.
_POOL = [chr(c) for c in range(0xC0, 0x250)] + [chr(c) for c in range(0x4E00, 0x9FFF)]


class User:
    """A stock-client stand-in: its own Doc and client id, edits queued for the server."""

    def __init__(self, actor: int, client_id: int | None = None) -> None:
        self.actor = actor
        self.doc: Doc[Any] = Doc(client_id=client_id)
        self.root = self.doc.get("default", type=XmlFragment)
        self.outbox: list[tuple[bytes, set[str], set[str]]] = []
        self._local = False
        self._updates: list[bytes] = []
        self.doc.observe(lambda event: self._local and self._updates.append(event.update))

    def edit(self, typed: set[str], deleted: set[str], change: Any) -> None:
        """Run `change(self)` as one local transaction and queue its update."""
        self._local = True
        with self.doc.transaction():
            change(self)
        self._local = False
        for update in self._updates:
            self.outbox.append((update, typed, deleted))
        self._updates.clear()

    def pull(self, server: Doc[Any]) -> None:
        """Receive everything the server has."""
        self.doc.apply_update(server.get_update(self.doc.get_state()))


def _texts(root: XmlFragment) -> list[XmlText]:
    """Every paragraph's XmlText, in document order."""
    return [p.children[0] for p in root.children if isinstance(p, XmlElement)]  # type: ignore[misc]


def _offset(text: str, index: int) -> int:
    """pycrdt's offset (UTF-8 bytes) of character `index`."""
    return len(text[:index].encode())


def _random_session(seed: int, steps: int) -> tuple[list[Event], dict[int, tuple[set, set]], Doc]:
    """Three users editing concurrently at random; the log and what each event typed/deleted."""
    rng = random.Random(seed)
    server: Doc[Any] = Doc()
    pool = iter(_POOL)
    users = [User(actor) for actor in (101, 202, 303)]
    events: list[Event] = []
    truth: dict[int, tuple[set, set]] = {}

    def deliver(user: User) -> None:
        update, typed, deleted = user.outbox.pop(0)
        server.apply_update(update)
        seq = len(events) + 1
        events.append((seq, user.actor, update))
        truth[seq] = (typed, deleted)

    first = users[0]
    first.edit(set(), set(), _new_paragraph(0))
    deliver(first)
    for user in users:
        user.pull(server)
    for _ in range(steps):
        user = rng.choice(users)
        roll = rng.random()
        if roll < 0.15 and user.outbox:
            deliver(user)
        elif roll < 0.25:
            user.pull(server)
        else:
            _random_edit(rng, user, pool)
    for user in users:
        while user.outbox:
            deliver(user)
    for user in users:
        user.pull(server)
    return events, truth, server


def _new_paragraph(index: int) -> Any:
    """A change adding an empty paragraph (TipTap's shape: paragraph > XmlText) at `index`."""

    def change(user: User) -> None:
        paragraph = user.root.children.insert(index, XmlElement("paragraph"))
        paragraph.children.append(XmlText())

    return change


def _random_edit(rng: random.Random, user: User, pool: Any) -> None:
    """Type, delete or add an empty paragraph at a random place."""
    texts = _texts(user.root)
    if rng.random() < 0.05 or not texts:
        user.edit(set(), set(), _new_paragraph(rng.randint(0, len(user.root.children))))
        return
    target = rng.choice(texts)
    current = str(target)
    if current and rng.random() < 0.35:
        start = rng.randrange(len(current))
        end = min(len(current), start + rng.randint(1, 4))
        gone = set(current[start:end])

        def delete(_: User) -> None:
            del target[_offset(current, start) : _offset(current, end)]

        user.edit(set(), gone, delete)
        return
    at = rng.randint(0, len(current))
    typed = "".join(next(pool) for _ in range(rng.randint(1, 5)))
    user.edit(set(typed), set(), lambda _: target.insert(_offset(current, at), typed))


def _doc_at(events: list[Event], seq: int) -> Doc[Any]:
    """A document with the events up to `seq` applied."""
    doc: Doc[Any] = Doc()
    for s, _, update in events:
        if s <= seq:
            doc.apply_update(update)
    return doc


def _typist(truth: dict[int, tuple[set, set]], events: list[Event]) -> dict[str, int]:
    """Who typed each character."""
    actor = {seq: a for seq, a, _ in events}
    return {c: actor[seq] for seq, (typed, _) in truth.items() for c in typed}  # type: ignore[misc]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_each_surviving_character_is_credited_to_its_typist(seed: int) -> None:
    events, truth, server = _random_session(seed, 600)
    typist = _typist(truth, events)
    result = attribute(events)
    assert result.text == document_text(server)
    assert "".join(text for _, text in result.runs) == result.text
    counts: dict[int | None, int] = {}
    for author, text in result.runs:
        if author is None:
            assert set(text) <= {"\n"}
            continue
        for char in text:
            assert typist[char] == author
        counts[author] = counts.get(author, 0) + len(text)
    assert result.counts == counts
    expected: dict[int | None, int] = {}
    for char in result.text.replace("\n", ""):
        expected[typist[char]] = expected.get(typist[char], 0) + 1
    assert result.counts == expected
    assert len(expected) == 3


@pytest.mark.parametrize("seed", [5, 6])
def test_attribution_at_any_seq_matches_the_document_then(seed: int) -> None:
    events, truth, _ = _random_session(seed, 200)
    typist = _typist(truth, events)
    for seq in range(1, len(events) + 1, 17):
        result = attribute(events, upto_seq=seq)
        assert result.seq == seq
        assert result.text == document_text(_doc_at(events, seq))
        for author, text in result.runs:
            assert author is None or all(typist[c] == author for c in text)


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_diff_names_the_author_of_every_insert_and_delete(seed: int) -> None:
    events, truth, _ = _random_session(seed, 500)
    typist = _typist(truth, events)
    # A character's deleter is the first logged event that removed it.
    deleter: dict[str, int] = {}
    actor = {seq: a for seq, a, _ in events}
    for seq in sorted(truth):
        for char in truth[seq][1]:
            deleter.setdefault(char, actor[seq])  # type: ignore[arg-type]
    rng = random.Random(seed)
    for _ in range(4):
        low, high = sorted(rng.sample(range(1, len(events) + 1), 2))
        before = document_text(_doc_at(events, low))
        after = document_text(_doc_at(events, high))
        changes = authored_diff(events, low, high)
        _check_diff(changes, before, after, typist, deleter)
        # Typed and deleted again inside the window: never in the diff.
        shown = "".join(c.text for c in changes)
        transient = {c for s in range(low + 1, high + 1) for c in truth[s][0]} - set(after)
        assert not transient & set(shown)
        assert all(c.seq is None or low < c.seq <= high for c in changes if c.op != "equal")


def _check_diff(
    changes: list[Change], before: str, after: str, typist: dict[str, int], deleter: dict
) -> None:
    """The diff rebuilds both texts and every changed character names its author."""
    assert "".join(c.text for c in changes if c.op != "insert") == before
    assert "".join(c.text for c in changes if c.op != "delete") == after
    for change in changes:
        if change.op == "equal":
            assert change.author is None and change.seq is None
            continue
        for char in change.text:
            if char == "\n":
                continue  # a block separator
            who = typist[char] if change.op == "insert" else deleter[char]
            assert who == change.author, (change, char)
    for first, second in itertools.pairwise(changes):
        assert (first.op, first.author) != (second.op, second.author)


def _events(*pairs: tuple[int | None, bytes]) -> list[Event]:
    """Log entries numbered from 1."""
    return [(seq, actor, update) for seq, (actor, update) in enumerate(pairs, start=1)]


def _updates(doc: Doc[Any]) -> list[bytes]:
    """Collects the updates of `doc`'s transactions from now on."""
    out: list[bytes] = []
    doc.observe(lambda event: out.append(event.update))
    return out


def test_out_of_order_updates_are_credited_to_their_sender() -> None:
    alice, bob = Doc(client_id=1), Doc(client_id=2)
    a_updates, b_updates = _updates(alice), _updates(bob)
    a_root = alice.get("default", type=XmlFragment)
    with alice.transaction():
        a_text = a_root.children.append(XmlText())
        a_text.insert(0, "alpha ")
    bob.apply_update(a_updates[0])
    b_updates.clear()
    b_text = bob.get("default", type=XmlFragment).children[0]
    assert isinstance(b_text, XmlText)
    b_text.insert(6, "BRAVO ")
    alice.apply_update(b_updates[0])
    a_text.insert(12, "charlie ")  # needs bob's "BRAVO " (its left neighbour)
    a_text.insert(0, "delta ")  # needs the line above (alice's previous clock)
    del a_text[12:14]  # "BR": bob's, which the server has not seen yet
    a0, _, a1, a2, a3 = a_updates  # the second is bob's, applied
    # The server logs alice's last three before bob's: each waits, then integrates at seq 5.
    log = _events((1, a0), (1, a3), (1, a2), (1, a1), (2, b_updates[0]))
    result = attribute(log)
    assert result.text == str(a_text) == "delta alpha AVO charlie "
    assert result.runs == [(1, "delta alpha "), (2, "AVO "), (1, "charlie ")]
    assert result.counts == {1: 20, 2: 4}
    # yrs integrates "delta " at seq 3 (its neighbours are known); "charlie " waits for bob.
    assert attribute(log, upto_seq=4).runs == [(1, "delta alpha ")]
    # "BR" was never visible after any seq, so the diff does not show it.
    assert authored_diff(log, 1, 5) == [
        Change("insert", "delta ", 1, 3, 3),
        Change("equal", "alpha ", None, None, None),
        Change("insert", "AVO ", 2, 5, 5),
        Change("insert", "charlie ", 1, 4, 4),
    ]
    assert authored_diff(log, 4, 5) == [
        Change("equal", "delta alpha ", None, None, None),
        Change("insert", "AVO ", 2, 5, 5),
        Change("insert", "charlie ", 1, 4, 4),
    ]


def test_reusing_a_client_id_claims_nothing() -> None:
    alice = Doc(client_id=7)
    a_updates = _updates(alice)
    text = alice.get("default", type=XmlFragment).children.append(XmlText())
    text.insert(0, "mine")
    bob = Doc(client_id=7)  # bob picks alice's client id
    b_updates = _updates(bob)
    bob.apply_update(alice.get_update())
    b_updates.clear()
    b_text = bob.get("default", type=XmlFragment).children[0]
    assert isinstance(b_text, XmlText)
    b_text.insert(4, " yours")
    forger = Doc(client_id=7)  # claims alice's clocks with text of its own
    f_updates = _updates(forger)
    forger.get("default", type=XmlFragment).children.append(XmlText("FAKE"))
    log = _events(
        *[(1, u) for u in a_updates],
        *[(2, u) for u in a_updates],  # alice's updates sent again by bob
        *[(2, u) for u in b_updates],
        *[(2, u) for u in f_updates],
    )
    result = attribute(log)
    assert result.text == "mine yours"
    assert result.runs == [(1, "mine"), (2, " yours")]
    assert result.counts == {1: 4, 2: 6}


def _build_structured(doc: Doc[Any]) -> None:
    """TipTap-shaped content touching every branch of `document_text`, in many transactions."""
    root = doc.get("default", type=XmlFragment)
    heading = root.children.append(XmlElement("heading", {"level": "2"}))
    heading.children.append(XmlText("Title"))
    para = root.children.append(XmlElement("paragraph"))
    first = para.children.append(XmlText("line one"))
    para.children.append(XmlElement("hardBreak"))
    para.children.append(XmlText("line two"))
    first.insert_embed(4, {"image": "x"})
    bullets = root.children.append(XmlElement("bulletList"))
    for word in ("apple", "pear", "plum"):
        item = bullets.children.append(XmlElement("listItem"))
        item.children.append(XmlElement("paragraph")).children.append(XmlText(word))
    nested = bullets.children[1].children.append(XmlElement("orderedList"))  # type: ignore[union-attr]
    inner = nested.children.append(XmlElement("listItem"))
    inner.children.append(XmlElement("paragraph")).children.append(XmlText("inner"))
    quote = root.children.append(XmlElement("blockquote"))
    for word in ("quoted", "twice"):
        quote.children.append(XmlElement("paragraph")).children.append(XmlText(word))
    root.children.append(XmlElement("horizontalRule"))
    code = root.children.append(XmlElement("codeBlock", {"language": "py"}))
    code.children.append(XmlText("x = 1\ny = 2"))
    root.children.append(XmlElement("orderedList"))
    root.children.append(XmlText("bare text at the root"))
    root.children.append(XmlElement("paragraph"))
    del bullets.children[0]
    quote.children[1].children[0].insert(0, "said ")  # type: ignore[union-attr]
    del root.children[0]
    first.insert(0, "Ünïcødé 😀 ")
    del first[0:3]


def test_text_matches_document_text_at_every_seq() -> None:
    doc: Doc[Any] = Doc()
    updates = _updates(doc)
    _build_structured(doc)
    log = _events(*[((1, 2, None)[n % 3], u) for n, u in enumerate(updates)])
    for seq in range(1, len(log) + 1):
        result = attribute(log, upto_seq=seq)
        assert result.text == document_text(_doc_at(log, seq)), seq
        assert "".join(text for _, text in result.runs) == result.text
    assert attribute(log).text == document_text(doc)
    for low in range(1, len(log), 3):
        for high in range(low, len(log) + 1, 4):
            changes = authored_diff(log, low, high)
            before = document_text(_doc_at(log, low))
            after = document_text(_doc_at(log, high))
            assert "".join(c.text for c in changes if c.op != "insert") == before
            assert "".join(c.text for c in changes if c.op != "delete") == after


def test_authors_of_a_paragraph_typed_by_two_people() -> None:
    doc: Doc[Any] = Doc()
    updates = _updates(doc)
    root = doc.get("default", type=XmlFragment)
    text = root.children.append(XmlElement("paragraph")).children.append(XmlText())
    text.insert(0, "hello")
    text.insert(5, " world")
    del text[0:1]
    text.insert(0, "J")
    actors = (1, 1, 2, 3, 1, 3)  # paragraph, its text, "hello", " world", -"h", "J"
    log = _events(*zip(actors, updates, strict=True))
    assert attribute(log).runs == [(3, "J"), (2, "ello"), (3, " world")]
    assert attribute(log).counts == {2: 4, 3: 7}
    assert authored_diff(log, 3, 6) == [
        Change("delete", "h", 1, 5, 5),
        Change("insert", "J", 3, 6, 6),
        Change("equal", "ello", None, None, None),
        Change("insert", " world", 3, 4, 4),
    ]
    assert authored_diff(log, 2, 2) == []
    assert attribute([]).text == ""
