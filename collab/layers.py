"""The project's layers, bottom up. A module may import modules of its own layer and of the
layers below, never above (and in a sealed layer, not its own either); nothing may import in
a circle. tests/unit/test_layers.py walks the
import graph (imports inside functions included) against this table.

Patterns are fnmatch patterns over dotted module names; a module belongs to the first layer,
from the top, with a matching pattern.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # CRDT, protocol, replica, compaction, restore, attribution, content as text and HTML.
    # Pure Python over pycrdt: no Django.
    ("pure core", ("collab.sync", "collab.sync.*", "collab.realtime.codes", "collab.limits")),
    # Documents, members, tokens, who may do what, the one notification publisher, and the
    # process's metrics.
    (
        "documents",
        (
            "collab.metrics",
            "collab.models",
            "collab.permissions",
            "collab.selectors",
            "collab.services",
            "collab.notify",
            "collab.signals",
            "collab.text",
        ),
    ),
    # The append-only log: append, read, replay, checkpoints, heads, history, integrity.
    ("log", ("events", "events.*")),
    # Background work (Celery) and the realtime rooms that relay edits.
    ("work", ("tasks", "tasks.*", "collab.realtime", "collab.realtime.*")),
    # What the entry points share: errors, the caller and readable-document lookups (every
    # router and page), socket authentication, forms, admin base classes.
    (
        "entry plumbing",
        ("collab.http", "collab.adminkit", "collab.realtime.auth", "*.forms"),
    ),
    # What requests and commands enter through: routers, pages, admin, consumers, commands.
    # They never import one another (see SEALED).
    (
        "entry points",
        (
            "*.api",
            "*.admin",
            "*.views",
            "*.management",
            "*.management.*",
            "collab.realtime.consumer",
            "collab.realtime.notifications",
            "collab.realtime.transport",
        ),
    ),
    # What puts the rest together: settings, URLs and routing, the ASGI and Celery apps, the
    # server, the stack, the embedded worker, app configs.
    (
        "composition root",
        (
            "collab",
            "collab.settings",
            "collab.urls",
            "collab.asgi",
            "collab.celery",
            "collab.server",
            "collab.stack",
            "collab.embedded",
            "collab.layers",
            "collab.realtime.routing",
            "*.apps",
            "*.urls",
            "frontend",
        ),
    ),
)

# Layers whose modules may not import one another: only the composition root imports an
# entry point.
SEALED: frozenset[str] = frozenset({"entry points"})
