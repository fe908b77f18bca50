// The server refuses (4413) a message over its limit, and a refused edit would stay in the
// Y.Doc: everything typed after it would ride in the same refused message on every reconnect.
// So a paste or drop that would go over the limit is refused before it enters the document.

// Yjs spends a few dozen bytes per element or formatting run on ids, names and lengths; this
// rounds up, so the estimate errs on the side of refusing.
const BYTES_PER_NODE = 64
// Room for the message's own framing and the ids around the pasted content.
const HEADROOM_BYTES = 4096

const encoder = new TextEncoder()

/** About how many bytes the update for `text` in `nodes` elements and runs would take. */
export function estimateUpdateBytes (text, nodes) {
  return encoder.encode(text).length + nodes * BYTES_PER_NODE
}

/** Whether content of `bytes` (estimated) would go over a message limit of `limit` bytes. */
export function overLimit (bytes, limit) {
  return bytes + HEADROOM_BYTES > limit
}

/** A size in MB for people, one decimal. */
export function megabytes (bytes) {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`
}

/** The estimate for a ProseMirror slice: its text and how many nodes carry it. */
export function sliceBytes (slice) {
  let nodes = 0
  slice.content.descendants(() => { nodes++ })
  return estimateUpdateBytes(slice.content.textBetween(0, slice.content.size, '\n', '\n'), nodes)
}
