"""Which Yjs client ids an update writes under: the clients whose items it creates.

Yjs lets a client pick its own id, so a client could create items under an id another
account writes with, and tools that map ids to people would credit them wrongly. The server
holds every client id to the first account that wrote under it (events.authors); these
helpers say which ids an update writes under, beyond what a document already holds.

Only the update's group headers are read (lib0 numbers, bounds-checked): each group of
structs names its client, and yrs's own diff drops one client's group after another, so no
struct is decoded here.
"""

from __future__ import annotations

from collections.abc import Callable

from pycrdt import get_update as diff_update

from collab.sync.protocol import ProtocolError, encode_state_vector, update_groups
from collab.sync.replica import is_yrs_panic

# More clients than this in one update is refused (a client's own edit holds one).
MAX_WRITERS_PER_UPDATE = 1024
# A clock past any real one: a state vector entry that leaves none of a client's structs.
_PAST_ALL = 2**53


def writers_beyond(update: bytes, vector: bytes) -> list[int]:
    """The client ids `update` has items of beyond the state vector `vector`.

    ProtocolError if the update does not decode, or names over MAX_WRITERS_PER_UPDATE ids.
    """
    try:
        rest = diff_update(update, vector)
    except BaseException as exc:
        if isinstance(exc, (ValueError, RuntimeError)) or is_yrs_panic(exc):
            raise ProtocolError("invalid Yjs update: it does not decode") from None
        raise
    clients: list[int] = []
    for _ in range(MAX_WRITERS_PER_UPDATE):
        groups, client = update_groups(rest)
        if client is None:
            return clients
        clients.append(client)
        if groups == 1:
            return clients
        rest = diff_update(rest, encode_state_vector({client: _PAST_ALL}))
    raise ProtocolError(f"an update writes under more than {MAX_WRITERS_PER_UPDATE} client ids")


def update_clients(update: bytes) -> list[int]:
    """Every client id `update` has items of."""
    return writers_beyond(update, encode_state_vector({}))


def new_writers(
    update: bytes, known: Callable[[int], bool], vector: Callable[[], bytes]
) -> list[int]:
    """The client ids `update` creates items under beyond the document's state `vector()`,
    unless its only group is of a client `known` to be the sender's (the common case: no
    state vector is read)."""
    groups, client = update_groups(update)
    if client is None or (groups == 1 and known(client)):
        return []
    return writers_beyond(update, vector())
