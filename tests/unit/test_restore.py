"""Restore: one update brings the content back to an earlier version, whatever came after."""

from __future__ import annotations

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from collab.sync.restore import CONTENT, content_doc, restore_update


def _edits() -> tuple[list[bytes], Doc]:
    """Three versions of a document as a list of updates, and the live doc."""
    doc: Doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    fragment = doc.get(CONTENT, type=XmlFragment)
    heading = fragment.children.append(XmlElement("heading", {"level": 2}))
    title = heading.children.append(XmlText())
    title.insert(0, "Plan", {"bold": {}})
    paragraph = fragment.children.append(XmlElement("paragraph"))
    body = paragraph.children.append(XmlText())
    body.insert(0, "first draft")
    return updates, doc


def test_restoring_brings_back_the_earlier_content_exactly() -> None:
    updates, doc = _edits()
    version = len(updates)
    earlier = str(content_doc(updates).get(CONTENT, type=XmlFragment))
    fragment = doc.get(CONTENT, type=XmlFragment)
    body = fragment.children[1].children[0]
    body.insert(len(str(body)), " and more", {"italic": {}})
    fragment.children.append(XmlElement("paragraph", {}, [XmlText("later")]))
    del fragment.children[0]

    restore = restore_update(updates, updates[:version])
    assert restore
    after = content_doc([*updates, restore]).get(CONTENT, type=XmlFragment)
    assert (
        str(after)
        == earlier
        == '<heading level="2"><bold>Plan</bold></heading>' + ("<paragraph>first draft</paragraph>")
    )


def test_a_collaborator_replaying_the_restore_sees_the_same() -> None:
    updates, _ = _edits()
    restore = restore_update(updates, updates[:2])
    other = content_doc(updates)
    other.apply_update(restore)
    assert str(other.get(CONTENT, type=XmlFragment)) == str(
        content_doc(updates[:2]).get(CONTENT, type=XmlFragment)
    )


def test_restoring_the_current_version_changes_nothing() -> None:
    updates, _ = _edits()
    assert restore_update(updates, updates) == b""


def test_restoring_to_the_empty_document_clears_it() -> None:
    updates, _ = _edits()
    restore = restore_update(updates, [])
    assert str(content_doc([*updates, restore]).get(CONTENT, type=XmlFragment)) == ""
