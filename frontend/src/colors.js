// A collaborator's colour: the same for a name on every screen, and dark enough for white
// caret labels (each has at least 4.5:1 contrast with white).
const PALETTE = [
  '#b42318', '#1d4ed8', '#047857', '#7c3aed', '#b45309',
  '#be185d', '#0e7490', '#4d7c0f', '#475569', '#a21caf',
]

/** The colour for `name`: FNV-1a of its UTF-16 code units picks a palette entry. */
export function userColor (name) {
  let hash = 0x811c9dc5
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return PALETTE[hash % PALETTE.length]
}

export { PALETTE }
