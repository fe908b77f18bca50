// Show authors: text coloured by the account the server stamped on the Yjs client id that
// wrote it (GET /api/docs/{id}/authors), in the live editor and the history view.

import { Extension } from '@tiptap/core'
import { Plugin, PluginKey } from '@tiptap/pm/state'
import { Decoration, DecorationSet } from '@tiptap/pm/view'
import * as Y from 'yjs'

/**
 * Runs of text by Yjs client id, as ProseMirror positions: `[{ from, to, client }]`.
 *
 * Walks the Yjs tree and the ProseMirror document it renders side by side (an element is a
 * node; a Y.XmlText is the text nodes it became), reading each text item's client id. A
 * subtree whose shapes differ (a node the schema dropped) is left uncoloured.
 */
export function authorRuns (fragment, doc) {
  const runs = []
  walk(fragment, doc, 0, runs)
  return merged(runs)
}

function walk (ytype, node, start, runs) {
  let pos = start
  let index = 0
  for (const ychild of ytype.toArray()) {
    if (ychild instanceof Y.XmlText) {
      // Its text nodes (split by marks) must cover exactly its length.
      let covered = 0
      while (covered < ychild.length && index < node.childCount && node.child(index).isText) {
        covered += node.child(index).nodeSize
        index++
      }
      if (covered !== ychild.length) return false
      let offset = pos
      for (let item = ychild._start; item !== null; item = item.right) {
        if (item.deleted || !item.countable) continue
        runs.push({ from: offset, to: offset + item.length, client: item.id.client })
        offset += item.length
      }
      pos += covered
    } else if (ychild instanceof Y.XmlElement) {
      const child = index < node.childCount ? node.child(index) : null
      if (child === null || child.type.name !== ychild.nodeName) return false
      index++
      if (!child.isLeaf && !walk(ychild, child, pos + 1, runs)) return false
      pos += child.nodeSize
    }
  }
  return true
}

function merged (runs) {
  const out = []
  for (const run of runs) {
    const last = out[out.length - 1]
    if (last && last.client === run.client && last.to === run.from) last.to = run.to
    else out.push({ ...run })
  }
  return out
}

/** Inline decorations naming each run's author (runs of one author merged). */
export function authorDecorations (doc, runs, authors) {
  const decorations = []
  let open = null
  const flush = () => {
    if (open) decorations.push(Decoration.inline(open.from, open.to, attributesFor(open.author)))
  }
  for (const run of runs) {
    const author = authors.get(run.client) ?? { author: null, color: '#6b7280' }
    if (open && open.author.author === author.author && open.to === run.from) {
      open.to = run.to
    } else {
      flush()
      open = { from: run.from, to: run.to, author }
    }
  }
  flush()
  return DecorationSet.create(doc, decorations)
}

function attributesFor ({ author, color }) {
  return {
    class: 'authored',
    'data-author': author ?? '',
    style: `--author: ${color}`,
  }
}

export const authorsKey = new PluginKey('authors')

/**
 * The Show authors extension. `options.fragment()` gives the Y.XmlFragment the editor shows;
 * `options.shared()` gives `{ enabled, authors: Map<client id, {author, color}>, unknown(id) }`,
 * one object for every editor of the page (a function: TipTap copies plain option objects).
 */
export const ShowAuthors = Extension.create({
  name: 'showAuthors',
  addOptions () {
    return { fragment: () => null, shared: () => ({ enabled: false, authors: new Map(), unknown: () => {} }) }
  },
  addProseMirrorPlugins () {
    const { fragment } = this.options
    const shared = this.options.shared()
    const compute = (doc) => {
      const yfragment = fragment()
      if (!shared.enabled || !yfragment) return DecorationSet.empty
      const runs = authorRuns(yfragment, doc)
      for (const run of runs) if (!shared.authors.has(run.client)) shared.unknown(run.client)
      return authorDecorations(doc, runs, shared.authors)
    }
    return [
      new Plugin({
        key: authorsKey,
        state: {
          init: (_, state) => compute(state.doc),
          // A local edit reaches the Yjs tree only after this transaction: move the colours
          // with it now, and recompute once the tree has it (the view's update below).
          apply: (tr, old, _, state) =>
            tr.getMeta(authorsKey) ? compute(state.doc) : tr.docChanged ? old.map(tr.mapping, tr.doc) : old,
        },
        props: { decorations: (state) => authorsKey.getState(state) },
        view: (editorView) => {
          let pending = null
          const later = (view) => {
            if (!shared.enabled || pending !== null) return
            pending = setTimeout(() => {
              pending = null
              if (!view.isDestroyed) view.dispatch(view.state.tr.setMeta(authorsKey, true))
            }, 0)
          }
          // The sync plugin may fill the document before this view exists.
          later(editorView)
          return {
            update: (view, previous) => {
              if (view.state.doc !== previous.doc) later(view)
            },
            destroy: () => clearTimeout(pending),
          }
        },
      }),
    ]
  },
})

/** Tell an editor to recompute its colours (the switch moved, or new authors are known). */
export function refreshAuthors (editor) {
  if (!editor || editor.isDestroyed) return
  editor.view.dispatch(editor.state.tr.setMeta(authorsKey, true))
}

/** The legend: each author present, in the order first met, with their colour. */
export function legendEntries (runs, authors) {
  const seen = new Map()
  for (const run of runs) {
    const author = authors.get(run.client)
    if (author && author.author && !seen.has(author.author)) seen.set(author.author, author.color)
  }
  return [...seen].map(([author, color]) => ({ author, color }))
}
