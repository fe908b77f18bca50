"""Who wrote each part of a document, and what changed between two seqs, from the event log.

Authorship comes only from the actor the server stamped on each event, never from Yjs client
ids (a client picks its own). The log is replayed into a pycrdt document while a mirror of
its tree keeps, for every character, an identity and the seq of the event that inserted it
(and of the one that deleted it, if any).

Updates that arrive before their dependencies are parked by Yjs and integrated later. If the
document kept them parked, they would integrate inside a later event's transaction and be
credited to that event's actor; so the replay never lets the document hold them: it is
rebuilt from its own state (which leaves parked structs out) and each parked update is
applied again, in its own transaction, once the document has gained items. Every change is
therefore credited to the event whose update carried it.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, compress, count, groupby, islice, pairwise
from operator import itemgetter, ne
from typing import Any, Literal, NamedTuple

from pycrdt import Doc, XmlElement, XmlFragment, XmlText
from pycrdt._base import process_event  # pycrdt's own native-to-wrapper conversion

from collab.sync.compaction import waiting_updates
from collab.sync.html import MAX_DEPTH  # deeper containers read as plain text, as in exports

Event = tuple[int, int | None, bytes]
Op = Literal["insert", "delete", "equal"]

_CONTAINERS = ("bulletList", "orderedList", "listItem", "blockquote")
_LISTS = ("bulletList", "orderedList", "listItem")


class Change(NamedTuple):
    """A run of the diff: inserted, deleted or unchanged text and who did it."""

    op: Op
    text: str
    # Inserter for "insert", deleter for "delete", None for "equal".
    author: int | None
    # The newest event among the run's characters (None for "equal") ...
    seq: int | None
    # ... and the oldest.
    first_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Attribution:
    """The document after `seq`: its text, runs by author and characters per author."""

    seq: int | None
    text: str
    # (author, text) in document order; block separators ("\n\n", "\n") have author None.
    runs: list[tuple[int | None, str]]
    # Characters of `text` each author inserted (separators excluded).
    counts: dict[int | None, int]


class _Piece(NamedTuple):
    """One character of the linear text: its identity, text and the seq that inserted it."""

    key: int  # a character's or element's id; separators: -1 - the following block's id
    text: str
    seq: int | None  # None for separators
    # Separators only: the blocks before and after (they come and go with those blocks).
    between: tuple[int, int] | None = None


@dataclass(slots=True, eq=False)
class _Text:
    """Mirror of an XmlText: one entry per code point (None for an embed)."""

    live: XmlText
    ids: list[int] = field(default_factory=list)
    chars: list[str | None] = field(default_factory=list)
    # Entries whose UTF-8 length is not 1: pycrdt counts text offsets in UTF-8 bytes.
    wide: int = 0


@dataclass(slots=True, eq=False)
class _Element:
    """Mirror of an XmlElement (tag) or XmlFragment (tag None)."""

    live: XmlElement | XmlFragment
    id: int
    tag: str | None
    children: list[_Element | _Text] = field(default_factory=list)


def _wide(chars: list[str | None], value: Any) -> int:
    """How many of `chars` (from one delta or diff value) are not 1 offset unit wide."""
    if isinstance(value, str) and value.isascii():  # the common case, checked in C
        return 0
    return sum(_width(c) != 1 for c in chars)


def _width(char: str | None) -> int:
    """Offset units one mirror entry takes in pycrdt (UTF-8 bytes; an embed is 1)."""
    return 1 if char is None or char < "\x80" else len(char.encode())


class CheckpointMismatch(ValueError):
    """An authorship checkpoint does not fit the document state it was restored onto."""


_CHECKPOINT_TAG = b"PAUTH1"
_CHECKPOINT_HEADER = struct.Struct(">6sQQQQ")


class Replay:
    """Applies events in order and keeps the authorship of every character."""

    def __init__(self) -> None:
        self.actors: dict[int, int | None] = {}
        self.seq: int | None = None
        # origin[id]: seq of the event that inserted character or element `id`.
        self.origin: list[int] = []
        # deleted[id]: seq of the event that deleted it.
        self.deleted: dict[int, int] = {}
        # Updates not fully integrated, with the state vector they were last tried against.
        self._parked: list[tuple[int, bytes, bytes]] = []
        # The document holds a parked update of its own and must be rebuilt before the next
        # apply, or the parked content would integrate under another event's seq.
        self._dirty = False
        # (path, target, delta) of each deep event of the last transaction, as pycrdt's
        # native events give them (see `_observe`).
        self._events: list[tuple[list[int | str], Any, list[dict[str, Any]]]] = []
        self._open(Doc())
        self.tree = _Element(self.root, self._new_id(0), None)

    def _open(self, doc: Doc[Any]) -> None:
        """Observe `doc`'s default fragment."""
        self.doc = doc
        self.root = doc.get("default", type=XmlFragment)
        # The native subscription, not `observe_deep`: pycrdt's wrapper converts every field
        # of every event and costs about 10x the whole apply on a 100k-event log.
        # Kept: dropping the subscription unsubscribes.
        self._subscription = self.root.integrated.observe_deep(self._observe)

    def _observe(self, events: list[Any]) -> None:
        """Keep the fields of the transaction's deep events (read while it is open)."""
        self._events.extend((event.path, event.target, event.delta) for event in events)

    def _new_id(self, seq: int) -> int:
        """A fresh character or element id inserted by `seq`."""
        self.origin.append(seq)
        return len(self.origin) - 1

    def apply(self, seq: int, actor: int | None, update: bytes) -> None:
        """Apply one logged event; its changes are credited to `actor`."""
        self.actors[seq] = actor
        self.seq = seq
        before = self.doc.get_state()
        self._integrate(seq, update)
        after = self.doc.get_state()
        if waiting_updates([update], after):
            self._dirty = True
            self._parked.append((seq, update, after))
        if after != before and self._parked:
            self._retry_parked()

    def apply_run(self, events: list[tuple[int, bytes]], actor: int | None) -> None:
        """Apply consecutive events of one actor in one transaction.

        Who wrote what comes out the same as applying them one by one, but every character
        the run inserted is dated to its last seq. For attribution by author only: Yrs works
        out each transaction's changes by walking the text from its start, so one
        transaction for a run of typing costs one walk instead of one per keystroke.
        """
        if len(events) == 1:
            self.apply(events[0][0], actor, events[0][1])
            return
        for seq, _ in events:
            self.actors[seq] = actor
        last = events[-1][0]
        self.seq = last
        before = self.doc.get_state()
        if self._dirty:
            self._rebuild()
        self._events.clear()
        with self.doc.transaction():
            for _, update in events:
                self.doc.apply_update(update)
        self._mirror_transaction(last)
        after = self.doc.get_state()
        for seq, update in events:
            if waiting_updates([update], after):
                self._dirty = True
                self._parked.append((seq, update, after))
        if after != before and self._parked:
            self._retry_parked()

    def _retry_parked(self) -> None:
        """Apply again each parked update the document gained items for, until none does."""
        progress = True
        while progress:
            progress = False
            for index, (seq, update, tried) in enumerate(self._parked):
                vector = self.doc.get_state()
                if vector == tried:
                    continue  # nothing new arrived: it cannot integrate more
                self._integrate(seq, update)
                after = self.doc.get_state()
                progress = progress or after != vector
                if waiting_updates([update], after):
                    self._dirty = True
                    self._parked[index] = (seq, update, after)
                else:
                    self._parked[index] = (seq, b"", b"")
            self._parked = [p for p in self._parked if p[1]]

    def _integrate(self, seq: int, update: bytes) -> None:
        """Apply `update` in its own transaction and mirror what it changed, credited to seq."""
        if self._dirty:
            self._rebuild()
        self._events.clear()
        self.doc.apply_update(update)
        self._mirror_transaction(seq)

    def _mirror_transaction(self, seq: int) -> None:
        """Mirror what the last transaction changed, credited to `seq`."""
        events, self._events[:] = list(self._events), []
        # Paths are relative to the state after the transaction: parents first.
        events.sort(key=lambda event: len(event[0]))
        for path, target, delta in events:
            node = self._resolve(path, target)
            if isinstance(node, _Text):
                self._text_delta(node, delta, seq)
            elif node is not None:
                self._children_delta(node, process_event(delta, self.doc), seq)

    def _rebuild(self) -> None:
        """Replace the document by a copy without its parked updates; relink the mirror."""
        copy: Doc[Any] = Doc()
        copy.apply_update(self.doc.get_update())
        self._open(copy)
        self.tree.live = self.root
        self._relink(self.tree)
        self._dirty = False

    def _relink(self, node: _Element) -> None:
        """Point the mirror under `node` at the same nodes in the rebuilt document."""
        for mirror, live in zip(node.children, node.live.children, strict=True):
            mirror.live = live
            if isinstance(mirror, _Element):
                self._relink(mirror)

    def _resolve(self, path: list[int | str], target: Any) -> _Element | _Text | None:
        """The mirror node at `path`, or None if it is not `target` (a removed node's event)."""
        node: _Element | _Text = self.tree
        for step in path:
            if not isinstance(node, _Element) or not isinstance(step, int):
                return None
            if not 0 <= step < len(node.children):
                return None
            node = node.children[step]
        return node if node.live.integrated == target else None

    def _text_delta(self, node: _Text, delta: list[dict[str, Any]], seq: int) -> None:
        """Apply a text delta (offsets in UTF-8 bytes) to the mirror."""
        index = 0
        for op in delta:
            if "retain" in op:
                index = self._advance(node, index, op["retain"])
            elif "delete" in op:
                end = self._advance(node, index, op["delete"])
                for key in node.ids[index:end]:
                    self.deleted[key] = seq
                node.wide -= sum(_width(c) != 1 for c in node.chars[index:end]) if node.wide else 0
                del node.ids[index:end], node.chars[index:end]
            elif "insert" in op:
                value = op["insert"]
                chars: list[str | None] = list(value) if isinstance(value, str) else [None]
                node.ids[index:index] = [self._new_id(seq) for _ in chars]
                node.chars[index:index] = chars
                node.wide += _wide(chars, value)
                index += len(chars)

    @staticmethod
    def _advance(node: _Text, index: int, units: int) -> int:
        """The entry index `units` offset units after `index`."""
        if not node.wide:
            return index + units
        chars = node.chars
        while units > 0 and index < len(chars):
            units -= _width(chars[index])
            index += 1
        return index

    def _children_delta(self, node: _Element, delta: list[dict[str, Any]], seq: int) -> None:
        """Apply a children delta to the mirror; new nodes are read whole from the document."""
        index = 0
        for op in delta:
            if "retain" in op:
                index += op["retain"]
            elif "delete" in op:
                end = index + op["delete"]
                for child in node.children[index:end]:
                    for key in _keys(child):
                        self.deleted.setdefault(key, seq)
                del node.children[index:end]
            elif "insert" in op:
                added = [self._mirror(live, seq, 0) for live in op["insert"]]
                node.children[index:index] = added
                index += len(added)

    def _mirror(self, live: Any, seq: int, depth: int) -> _Element | _Text:
        """A mirror of a node just inserted by `seq`, everything in it credited to `seq`."""
        if isinstance(live, XmlText):
            text = _Text(live)
            for value, _ in live.diff():
                chars: list[str | None] = list(value) if isinstance(value, str) else [None]
                text.chars.extend(chars)
                text.wide += _wide(chars, value)
            text.ids = [self._new_id(seq) for _ in text.chars]
            return text
        element = _Element(
            live, self._new_id(seq), live.tag if isinstance(live, XmlElement) else None
        )
        element.children = [self._mirror(child, seq, depth + 1) for child in live.children]
        return element

    def pieces(self, *, plain: bool = False) -> list[_Piece]:
        """The document's text as pieces, linearised like `collab.sync.html.document_text`.

        `plain`: characters as bare (key, text, seq) tuples, not _Piece (indexable alike;
        building a _Piece per character was most of an attribution's time).
        """
        blocks: list[tuple[int, list[_Piece]]] = []
        for child in self.tree.children:
            self._collect(child, blocks, 0, plain)
        return _join(blocks, "\n\n")

    def _collect(
        self,
        node: _Element | _Text,
        blocks: list[tuple[int, list[_Piece]]],
        depth: int,
        plain: bool = False,
    ) -> None:
        """Append (block id, pieces) for each leaf block under `node`, as `_collect_blocks`."""
        if isinstance(node, _Text):
            blocks.append((_first_id(node), self._plain(node, plain)))
            return
        if node.tag in _CONTAINERS and depth < MAX_DEPTH:
            items: list[tuple[int, list[_Piece]]] = []
            for child in node.children:
                self._collect(child, items, depth + 1, plain)
            if node.tag in _LISTS:
                blocks.append((node.id, _join(items, "\n")))
            else:
                blocks.extend(items)
            return
        if node.tag == "horizontalRule":
            return
        blocks.append((node.id, self._plain(node, plain)))

    def _plain(self, node: _Element | _Text, plain: bool = False) -> list[_Piece]:
        """All text under a node without structure; a hardBreak is a newline."""
        out: list[Any] = []
        origin = self.origin
        stack: list[_Element | _Text] = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, _Text) and plain and None not in current.chars:
                # No embeds: the tuples are built in C.
                out.extend(
                    zip(
                        current.ids,
                        current.chars,
                        map(origin.__getitem__, current.ids),
                        strict=True,
                    )
                )
            elif isinstance(current, _Text) and plain:
                out.extend(
                    (key, char, origin[key])
                    for key, char in zip(current.ids, current.chars, strict=True)
                    if char is not None
                )
            elif isinstance(current, _Text):
                out.extend(
                    _Piece(key, char, origin[key])
                    for key, char in zip(current.ids, current.chars, strict=True)
                    if char is not None
                )
            elif current.tag == "hardBreak":
                out.append(_Piece(current.id, "\n", origin[current.id]))
            else:
                stack.extend(reversed(current.children))
        return out

    def checkpoint(self, since: int) -> bytes | None:
        """The replay's authorship as a checkpoint (None while an update is parked).

        It holds, for every node and character of the mirror in tree order, its id, the seq
        that inserted it and that seq's actor; then (id, seq, actor) of each deletion after
        seq `since` (diffs across checkpoints need who deleted what). Ids are handed out in
        the order a replay from the first event meets them, and a restored replay goes on
        counting from the checkpoint's next id, so an id names the same character in every
        replay of the log. Columns as deltas, zlib-compressed: runs of typing are runs of +1.
        """
        if self._parked or self.seq is None:
            return None
        ids: list[int] = []
        _preorder_ids(self.tree, ids)
        origins = [self.origin[key] for key in ids]
        actors = [_opt(self.actors.get(seq)) for seq in origins]
        gone = sorted((key, seq) for key, seq in self.deleted.items() if seq > since)
        gone_ids = [key for key, _ in gone]
        gone_seqs = [seq for _, seq in gone]
        gone_actors = [_opt(self.actors.get(seq)) for seq in gone_seqs]
        gone_part = zlib.compress(_columns(_deltas(gone_ids), gone_seqs, gone_actors), 9)
        chars_part = zlib.compress(_columns(_deltas(ids), _deltas(origins), actors), 9)
        header = _CHECKPOINT_HEADER.pack(
            _CHECKPOINT_TAG, len(self.origin), len(ids), len(gone), len(gone_part)
        )
        # Deletions first, compressed apart: a diff reads only them from the checkpoints
        # between its two seqs.
        return header + gone_part + chars_part

    @classmethod
    def restore(cls, doc: Doc[Any], seq: int, blob: bytes) -> Replay:
        """The replay right after event `seq`, from `doc` (the document then) and its checkpoint.

        CheckpointMismatch if the checkpoint does not describe `doc`'s tree.
        """
        next_id, ids, origins, actors, _ = _decode_checkpoint(blob)
        replay = cls.__new__(cls)
        replay.actors = {}
        replay.seq = seq
        replay.origin = [0] * next_id
        replay.deleted = {}
        replay._parked = []
        replay._dirty = False
        replay._events = []
        replay._open(doc)
        if len(ids) != len(origins) or len(ids) != len(actors):
            raise CheckpointMismatch("the checkpoint's columns differ in length")
        if ids and not (min(ids) >= 0 and max(ids) < next_id):
            raise CheckpointMismatch("an id is beyond the checkpoint's next id")
        # Both loops in C (a checkpoint of a long document holds over 100k characters).
        deque(map(replay.origin.__setitem__, ids, origins), maxlen=0)
        replay.actors = dict(zip(origins, actors, strict=True))
        keys = iter(ids)
        tree = replay._remirror(replay.root, keys, 0)
        if not isinstance(tree, _Element):
            raise CheckpointMismatch("the document's root is not a fragment")
        replay.tree = tree
        if next(keys, None) is not None:
            raise CheckpointMismatch("the checkpoint has more entries than the document")
        return replay

    def _remirror(self, live: Any, keys: Iterator[int], depth: int) -> _Element | _Text:
        """A mirror of `live` whose ids are taken, in tree order, from a checkpoint."""
        try:
            if isinstance(live, XmlText):
                text = _Text(live)
                for value, _ in live.diff():
                    chars: list[str | None] = list(value) if isinstance(value, str) else [None]
                    text.chars.extend(chars)
                    text.wide += _wide(chars, value)
                text.ids = list(islice(keys, len(text.chars)))
                if len(text.ids) < len(text.chars):
                    raise StopIteration
                return text
            element = _Element(live, next(keys), live.tag if isinstance(live, XmlElement) else None)
        except StopIteration:
            raise CheckpointMismatch("the document has more entries than the checkpoint") from None
        element.children = [self._remirror(child, keys, depth + 1) for child in live.children]
        return element

    def attribution(self) -> Attribution:
        """The document as it stands: text, runs by author, characters per author."""
        pieces = self.pieces(plain=True)
        runs: list[tuple[int | None, str]] = []
        counts: dict[int | None, int] = {}
        actors = self.actors
        texts = [piece[1] for piece in pieces]
        # A separator's seq is None: its author is None and it is not counted.
        authors = [None if piece[2] is None else actors.get(piece[2]) for piece in pieces]
        start = 0
        for author, group in groupby(authors):
            length = sum(1 for _ in group)
            runs.append((author, "".join(texts[start : start + length])))
            start += length
        for author, seq in zip(authors, (piece[2] for piece in pieces), strict=True):
            if seq is not None:
                counts[author] = counts.get(author, 0) + 1
        return Attribution(seq=self.seq, text="".join(texts), runs=runs, counts=counts)


def _preorder_ids(node: _Element | _Text, out: list[int]) -> None:
    """Every id under `node`, in the order `Replay._remirror` reads them back."""
    if isinstance(node, _Text):
        out.extend(node.ids)
        return
    out.append(node.id)
    for child in node.children:
        _preorder_ids(child, out)


def _opt(value: int | None) -> int:
    """An optional actor id as a checkpoint stores it (-1: None)."""
    return -1 if value is None else value


def _deltas(values: list[int]) -> list[int]:
    """Each value minus the one before it (the first as it is)."""
    return [b - a for a, b in pairwise([0, *values])]


def _columns(*columns: list[int]) -> bytes:
    """Equal-length integer columns, one after another, as signed 64-bit big-endian."""
    return b"".join(struct.pack(f">{len(c)}q", *c) for c in columns)


def _undeltas(values: Iterable[int]) -> list[int]:
    """The running sums of `values` (undoes `_deltas`)."""
    return list(accumulate(values))


Deletions = list[tuple[int, int, int | None]]


def _decode_checkpoint(
    blob: bytes, *, deletions_only: bool = False
) -> tuple[int, list[int], list[int], list[int | None], Deletions]:
    """next id, ids, origins, actors and (id, seq, actor) deletions of a checkpoint blob."""
    try:
        tag, next_id, count, gone, gone_size = _CHECKPOINT_HEADER.unpack_from(blob)
        if tag != _CHECKPOINT_TAG:
            raise CheckpointMismatch("not an authorship checkpoint")
        at = _CHECKPOINT_HEADER.size
        gone_part = zlib.decompress(blob[at : at + gone_size])
        columns: list[tuple[int, ...]] = [(), (), ()]
        if not deletions_only:
            chars_part = zlib.decompress(blob[at + gone_size :])
            columns = [
                struct.unpack_from(f">{count}q", chars_part, 8 * count * i) for i in range(3)
            ]
        columns += [struct.unpack_from(f">{gone}q", gone_part, 8 * gone * i) for i in range(3)]
    except (zlib.error, struct.error) as exc:
        raise CheckpointMismatch(f"the checkpoint does not decode: {exc}") from exc
    ids, origins = _undeltas(columns[0]), _undeltas(columns[1])
    actors = [None if a < 0 else a for a in columns[2]]
    deletions = [
        (key, seq, None if actor < 0 else actor)
        for key, seq, actor in zip(_undeltas(columns[3]), columns[4], columns[5], strict=True)
    ]
    return next_id, ids, origins, actors, deletions


def checkpoint_deletions(blob: bytes) -> Deletions:
    """(id, seq, actor) of each deletion a checkpoint recorded (since the one before it)."""
    return _decode_checkpoint(blob, deletions_only=True)[4]


def _keys(node: _Element | _Text) -> Iterator[int]:
    """Every id in a mirror subtree."""
    if isinstance(node, _Text):
        yield from node.ids
        return
    yield node.id
    for child in node.children:
        yield from _keys(child)


def _first_id(node: _Text) -> int:
    """A block key for a top-level or list-level XmlText (its first entry's id, or -1)."""
    # A bare XmlText block has no element id; its first character stands in for it.
    return node.ids[0] if node.ids else -1


def _join(blocks: list[tuple[int, list[_Piece]]], separator: str) -> list[_Piece]:
    """Blocks joined by `separator`, each separator keyed by the block after it."""
    out: list[_Piece] = []
    for position, (block, pieces) in enumerate(blocks):
        if position:
            out.append(_Piece(-1 - block, separator, None, (blocks[position - 1][0], block)))
        out.extend(pieces)
    return out


def replay(events: Iterable[Event], upto_seq: int | None = None) -> Replay:
    """The replay of `events` up to and including `upto_seq` (all of them if None)."""
    state = Replay()
    for seq, actor, update in events:
        if upto_seq is not None and seq > upto_seq:
            break
        state.apply(seq, actor, update)
    return state


def attribute(events: Iterable[Event], upto_seq: int | None = None) -> Attribution:
    """Who wrote each part of the document after `upto_seq` (the last event if None)."""
    return replay(events, upto_seq).attribution()


def authored_diff(events: Iterable[Event], from_seq: int, to_seq: int) -> list[Change]:
    """What changed from the document after `from_seq` to the one after `to_seq`, by author."""
    if to_seq < from_seq:
        raise ValueError("to_seq comes before from_seq")
    state = Replay()
    before: list[_Piece] | None = None
    for seq, actor, update in events:
        if seq > from_seq and before is None:
            before = state.pieces()
        if seq > to_seq:
            break
        state.apply(seq, actor, update)
    if before is None:
        before = state.pieces()
    return _merge(before, state.pieces(), state)


def diff_from_pieces(before: Replay, after: Replay, deletions: Deletions) -> list[Change]:
    """What changed from `before`'s document to `after`'s: two replays of one log.

    Ids name the same character in both (see `Replay.checkpoint`). `after` knows who deleted
    what only since it was restored; `deletions` (from the checkpoints in between) says the
    rest.
    """
    for key, seq, actor in deletions:
        after.deleted.setdefault(key, seq)
        after.actors.setdefault(seq, actor)
    return _merge(before.pieces(plain=True), after.pieces(plain=True), after)


def diff_onward(state: Replay, events: Iterable[Event]) -> list[Change]:
    """What `events` (applied to `state`, in order, one by one) changed in its document.

    `state` may have been built with `apply_run`: only the characters these events insert
    or delete are dated, and those exactly.
    """
    before = state.pieces(plain=True)
    for seq, actor, update in events:
        state.apply(seq, actor, update)
    return _merge(before, state.pieces(plain=True), state)


def _merge(before: list[_Piece], after: list[_Piece], state: Replay) -> list[Change]:
    """Both texts woven in document order: deleted, inserted and kept pieces, runs merged."""
    # What both share at the start and the end is kept text: one run each, found without
    # weaving (the diff of one edit in a long document is almost all of it).
    head = _shared(before, after)
    tail = _shared(before[head:], after[head:], reverse=True)
    changes = _runs(
        _weave(before[head : len(before) - tail], after[head : len(after) - tail]), state
    )
    kept = "".join(map(itemgetter(1), after[:head]))
    if kept and changes and changes[0].op == "equal":
        changes[0] = changes[0]._replace(text=kept + changes[0].text)
    elif kept:
        changes.insert(0, Change("equal", kept, None, None, None))
    kept = "".join(map(itemgetter(1), after[len(after) - tail :]))
    if kept and changes and changes[-1].op == "equal":
        changes[-1] = changes[-1]._replace(text=changes[-1].text + kept)
    elif kept:
        changes.append(Change("equal", kept, None, None, None))
    return changes


def _shared(before: list[_Piece], after: list[_Piece], *, reverse: bool = False) -> int:
    """How many leading (or trailing) pieces both lists share (same key, text and seq)."""
    # Compared in C and lazily, up to the first difference: the diff of one edit in a long
    # document shares almost all of it.
    pairs = (reversed(before), reversed(after)) if reverse else (before, after)
    return next(compress(count(), map(ne, *pairs)), min(len(before), len(after)))


def _weave(before: list[_Piece], after: list[_Piece]) -> list[tuple[Op, _Piece]]:
    """Deleted, inserted and kept pieces in document order."""
    # Yjs never moves an item, so pieces present in both appear in the same order in both.
    old = {p[0] for p in before}
    new = {p[0] for p in after}
    woven: list[tuple[Op, _Piece]] = []
    i = j = 0
    while i < len(before) or j < len(after):
        if i < len(before) and before[i][0] not in new:
            woven.append(("delete", before[i]))
            i += 1
        elif j < len(after) and after[j][0] not in old:
            woven.append(("insert", after[j]))
            j += 1
        elif i < len(before) and j < len(after) and before[i][0] == after[j][0]:
            woven.append(("equal", after[j]))
            i += 1
            j += 1
        elif i < len(before):
            # Not expected (see above); show it as a replacement rather than fail.
            new.discard(before[i][0])
            old.discard(before[i][0])
        else:
            old.discard(after[j][0])
    return woven


def _runs(woven: list[tuple[Op, _Piece]], state: Replay) -> list[Change]:
    """Changes from woven pieces, adjacent pieces with the same op and author merged."""
    out: list[Change] = []
    texts: list[str] = []
    seqs: list[int] = []
    run: tuple[Op, int | None] | None = None
    for op, piece in woven:
        seq = _change_seq(op, piece, state)
        author = None if seq is None else state.actors.get(seq)
        if run != (op, author):
            if run is not None:
                out.append(_change(run, texts, seqs))
            run, texts, seqs = (op, author), [], []
        texts.append(piece[1])
        if seq is not None:
            seqs.append(seq)
    if run is not None:
        out.append(_change(run, texts, seqs))
    return out


def _change(run: tuple[Op, int | None], texts: list[str], seqs: list[int]) -> Change:
    """One merged run as a Change."""
    op, author = run
    return Change(op, "".join(texts), author, max(seqs, default=None), min(seqs, default=None))


def _change_seq(op: Op, piece: _Piece, state: Replay) -> int | None:
    """The event that made a piece's change: its inserter or deleter; None if unchanged."""
    if op == "equal":
        return None
    between = piece[3] if len(piece) > 3 else None  # bare (key, text, seq) characters
    if between is None:
        return piece[2] if op == "insert" else state.deleted.get(piece[0])
    # A separator appears with the newer of its two blocks and goes with either of them.
    ids = [block for block in between if block >= 0]
    if op == "insert":
        return max((state.origin[block] for block in ids), default=None)
    return next((state.deleted[block] for block in reversed(ids) if block in state.deleted), None)
