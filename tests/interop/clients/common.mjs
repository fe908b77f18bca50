// Shared helpers for the stock-client scripts: arguments, providers, output, randomness.
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

/**
 * Parse `--name value` options; every option is a string unless listed in `booleans`.
 * @param {string[]} names
 * @param {string[]} [booleans]
 * @returns {Record<string, any>}
 */
export function parseOptions (names, booleans = []) {
  const options = {}
  for (const name of names) options[name] = { type: 'string' }
  for (const name of booleans) options[name] = { type: 'boolean', default: false }
  return parseArgs({ options, strict: true }).values
}

/**
 * Fail with a message on stderr unless every listed option was given.
 * @param {Record<string, any>} args
 * @param {string[]} required
 */
export function requireOptions (args, required) {
  const missing = required.filter((name) => args[name] === undefined)
  if (missing.length > 0) {
    process.stderr.write(`missing option(s): ${missing.map((n) => '--' + n).join(', ')}\n`)
    process.exit(2)
  }
}

/**
 * Write one JSON object as one line on stdout.
 * @param {object} value
 */
export function emit (value) {
  process.stdout.write(JSON.stringify(value) + '\n')
}

/**
 * Open a stock WebsocketProvider on `room`, with the token as `?token=`.
 * BroadcastChannel is disabled: in Node it would connect same-process peers directly,
 * bypassing the server under test.
 * @param {string} url
 * @param {string} room
 * @param {Y.Doc} ydoc
 * @param {string | undefined} token
 * @param {{ connect?: boolean }} [options]
 * @returns {WebsocketProvider}
 */
export function openProvider (url, room, ydoc, token, { connect = true } = {}) {
  const params = token ? { token } : {}
  return new WebsocketProvider(url, room, ydoc, {
    WebSocketPolyfill: WebSocket,
    params,
    disableBc: true,
    connect
  })
}

/**
 * Resolve true once the provider is synced, false after `timeoutMs`.
 * @param {WebsocketProvider} provider
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
export function waitSynced (provider, timeoutMs) {
  return waitFor(() => provider.synced, (wake) => {
    provider.on('sync', wake)
    return () => provider.off('sync', wake)
  }, timeoutMs)
}

/**
 * Resolve true when `check()` holds, re-checking whenever `subscribe`'s callback fires,
 * or false after `timeoutMs`. `subscribe(wake)` returns its own unsubscribe function.
 * @param {() => boolean} check
 * @param {(wake: () => void) => () => void} subscribe
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
export function waitFor (check, subscribe, timeoutMs) {
  if (check()) return Promise.resolve(true)
  return new Promise((resolve) => {
    const finish = (result) => {
      clearTimeout(timer)
      unsubscribe()
      resolve(result)
    }
    const unsubscribe = subscribe(() => { if (check()) finish(true) })
    const timer = setTimeout(() => finish(check()), timeoutMs)
  })
}

/**
 * What a script edits. "text": `ydoc.getText(name)`. "paragraph": the browser editor's layout
 * (TipTap / y-prosemirror), the XmlText inside the first `paragraph` XmlElement of
 * `ydoc.getXmlFragment("default")`, which the server's history, rendering and attribution read.
 */
export const SHAPES = ['text', 'paragraph']
// The fragment TipTap's Collaboration extension edits.
const FRAGMENT = 'default'

/**
 * The `--shape` option, checked ("text" when absent).
 * @param {Record<string, any>} args
 * @returns {'text' | 'paragraph'}
 */
export function shapeOption (args) {
  const shape = args.shape ?? 'text'
  if (!SHAPES.includes(shape)) {
    process.stderr.write(`--shape must be one of ${SHAPES.join(', ')}\n`)
    process.exit(2)
  }
  return shape
}

/**
 * The XmlText of the first `paragraph` of the content fragment, or null if there is none yet.
 * Looked up on every call: a restore replaces the paragraphs.
 * @param {Y.Doc} ydoc
 * @returns {Y.XmlText | null}
 */
export function paragraphText (ydoc) {
  for (const child of ydoc.getXmlFragment(FRAGMENT).toArray()) {
    if (child instanceof Y.XmlElement && child.nodeName === 'paragraph') {
      const text = child.toArray().find((node) => node instanceof Y.XmlText)
      return text ?? null
    }
  }
  return null
}

/**
 * Append a `paragraph` holding an empty XmlText to the content fragment (inside the caller's
 * transaction, if any); its XmlText. Two clients doing this concurrently make two paragraphs.
 * @param {Y.Doc} ydoc
 * @returns {Y.XmlText}
 */
export function createParagraph (ydoc) {
  const fragment = ydoc.getXmlFragment(FRAGMENT)
  const paragraph = new Y.XmlElement('paragraph')
  const text = new Y.XmlText()
  ydoc.transact(() => {
    fragment.insert(fragment.length, [paragraph])
    paragraph.insert(0, [text])
  })
  return text
}

/**
 * The text a script edits in `shape`, creating the paragraph first if `create` and missing.
 * @param {Y.Doc} ydoc
 * @param {string} name
 * @param {string} shape
 * @param {{ create?: boolean }} [options]
 * @returns {Y.Text | null}
 */
export function editedText (ydoc, name, shape, { create = false } = {}) {
  if (shape === 'text') return ydoc.getText(name)
  return paragraphText(ydoc) ?? (create ? createParagraph(ydoc) : null)
}

/**
 * The characters of an XmlText (embeds left out, marks ignored).
 * @param {Y.XmlText} text
 * @returns {string}
 */
function plainText (text) {
  return text.toDelta().map((op) => (typeof op.insert === 'string' ? op.insert : '')).join('')
}

/**
 * The document's text in `shape`: the Y.Text's, or (paragraph) every top-level block's text
 * joined by a blank line, as the server's plain-text rendering of flat paragraphs is.
 * @param {Y.Doc} ydoc
 * @param {string} name
 * @param {string} shape
 * @returns {string}
 */
export function documentText (ydoc, name, shape) {
  if (shape === 'text') return ydoc.getText(name).toString()
  return ydoc.getXmlFragment(FRAGMENT).toArray().map((block) => {
    if (block instanceof Y.XmlText) return plainText(block)
    return block.toArray().map((node) => (node instanceof Y.XmlText ? plainText(node) : '')).join('')
  }).join('\n\n')
}

/**
 * An upper bound of `documentText(...).length`, cheap enough to test on every transaction.
 * @param {Y.Doc} ydoc
 * @param {string} name
 * @param {string} shape
 * @returns {number}
 */
function documentLength (ydoc, name, shape) {
  if (shape === 'text') return ydoc.getText(name).length
  const blocks = ydoc.getXmlFragment(FRAGMENT).toArray()
  let length = 2 * Math.max(0, blocks.length - 1)
  for (const block of blocks) {
    if (block instanceof Y.XmlText) length += block.length
    else for (const node of block.toArray()) if (node instanceof Y.XmlText) length += node.length
  }
  return length
}

/**
 * Resolve true once the document's text (in `shape`, default "text": `ydoc.getText(name)`)
 * equals `expected`, false after `timeoutMs`.
 * @param {Y.Doc} ydoc
 * @param {string} name
 * @param {string} expected
 * @param {number} timeoutMs
 * @param {string} [shape]
 * @returns {Promise<boolean>}
 */
export function waitText (ydoc, name, expected, timeoutMs, shape = 'text') {
  const matches = () =>
    documentLength(ydoc, name, shape) >= expected.length && documentText(ydoc, name, shape) === expected
  return waitFor(matches, (wake) => {
    ydoc.on('afterTransaction', wake)
    return () => ydoc.off('afterTransaction', wake)
  }, timeoutMs)
}

/**
 * A small seeded PRNG (mulberry32) returning floats in [0, 1).
 * @param {number} seed
 * @returns {() => number}
 */
export function seededRandom (seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Sleep for `ms` milliseconds.
 * @param {number} ms
 * @returns {Promise<void>}
 */
export function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Milliseconds since an arbitrary origin, monotonic.
 * @returns {number}
 */
export function now () {
  return performance.now()
}

export { Y }
