// Replay a sequential editing trace through a stock client and time it until a second
// client (separate Y.Doc) holds the same text.
//   node replay.mjs --url ws://HOST:PORT/ws/docs --room ID --token T --trace t.json.gz
//        [--limit N] [--name text] [--shape text|paragraph] [--reader-token T] [--window N]
//        [--stall 15]
// --window N: keep the writer at most N transactions ahead of the reader (0: unbounded).
// --stall S: give up once the reader has not changed for S seconds (reader_matches false).
// --shape paragraph: type into the first paragraph of XmlFragment("default") (the browser
// editor's layout); the writer first creates that paragraph in a transaction of its own
// (reported as setup_txns), so the log holds one event more than the trace's transactions.
import {
  documentText, editedText, emit, now, openProvider, parseOptions, requireOptions, shapeOption,
  waitSynced, waitText, Y
} from './common.mjs'
import { loadTrace } from './trace.mjs'

const SYNC_TIMEOUT_MS = 30000
// Yield to the event loop every this many transactions, so sockets flush while we type.
const TXNS_PER_TICK = 200
// Pause typing while the writer's socket has more than this many bytes queued.
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024
// How often to check whether the reader stalled while waiting for it.
const STALL_POLL_MS = 1000

/**
 * Resolve on the next turn of the event loop, after pending I/O.
 * @returns {Promise<void>}
 */
function nextTick () {
  return new Promise((resolve) => setImmediate(resolve))
}

/**
 * Wait while the provider's socket has more than MAX_BUFFERED_BYTES queued.
 * @param {import('y-websocket').WebsocketProvider} provider
 */
async function drainSocket (provider) {
  while (provider.ws !== null && provider.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

/**
 * Resolve once the reader has integrated the writer's items up to `clock`, or when
 * `stalled()` says the reader stopped making progress.
 * @param {Y.Doc} reader
 * @param {number} writerID
 * @param {number} clock
 * @param {() => boolean} stalled
 * @returns {Promise<void>}
 */
async function waitReader (reader, writerID, clock, stalled) {
  while (Y.getState(reader.store, writerID) < clock && !stalled()) {
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

/**
 * Apply each transaction's patches to `ytext` (the writer's) in its own `transact` (one
 * update each). With `window` > 0, keep at most that many transactions ahead of the reader.
 * @param {{ provider: import('y-websocket').WebsocketProvider, ydoc: Y.Doc }} writer
 * @param {Y.Text} ytext
 * @param {[number, number, string][][]} txns
 * @param {{ window: number, reader: Y.Doc, stalled: () => boolean }} pacing
 */
async function applyTxns (writer, ytext, txns, pacing) {
  const clocks = new Array(txns.length)
  for (let i = 0; i < txns.length; i++) {
    writer.ydoc.transact(() => {
      for (const [pos, del, ins] of txns[i]) {
        if (del > 0) ytext.delete(pos, del)
        if (ins.length > 0) ytext.insert(pos, ins)
      }
    })
    clocks[i] = Y.getState(writer.ydoc.store, writer.ydoc.clientID)
    if (pacing.window > 0 && i >= pacing.window) {
      await waitReader(pacing.reader, writer.ydoc.clientID, clocks[i - pacing.window], pacing.stalled)
    }
    if (i % TXNS_PER_TICK === TXNS_PER_TICK - 1) {
      await nextTick()
      await drainSocket(writer.provider)
    }
  }
}

/**
 * Track when `ydoc` last changed; `stalled()` is true after `stallMs` without a change
 * (or since the last `touch()`, which marks progress made elsewhere).
 * @param {Y.Doc} ydoc
 * @param {number} stallMs
 * @returns {{ stalled: () => boolean, lastChange: () => number, touch: () => void }}
 */
function progressWatch (ydoc, stallMs) {
  let last = now()
  let touched = last
  ydoc.on('afterTransaction', () => { last = now() })
  return {
    stalled: () => now() - Math.max(last, touched) > stallMs,
    lastChange: () => last,
    touch: () => { touched = now() }
  }
}

/**
 * Resolve true once the reader's text (in `shape`) equals `expected`, false once it stalls.
 * @param {Y.Doc} reader
 * @param {string} name
 * @param {string} shape
 * @param {string} expected
 * @param {() => boolean} stalled
 * @returns {Promise<boolean>}
 */
async function waitMatch (reader, name, shape, expected, stalled) {
  while (!stalled()) {
    if (await waitText(reader, name, expected, STALL_POLL_MS, shape)) return true
  }
  return documentText(reader, name, shape) === expected
}

/**
 * Connect a provider on a fresh Y.Doc and wait until it is synced.
 * @param {Record<string, any>} args
 * @param {string | undefined} token
 * @returns {Promise<{ ydoc: Y.Doc, provider: import('y-websocket').WebsocketProvider }>}
 */
async function connectSynced (args, token) {
  const ydoc = new Y.Doc()
  const provider = openProvider(args.url, args.room, ydoc, token)
  if (!(await waitSynced(provider, SYNC_TIMEOUT_MS))) {
    throw new Error(`client did not sync within ${SYNC_TIMEOUT_MS} ms`)
  }
  return { ydoc, provider }
}

/** Run the replay and print the result line. */
async function main () {
  const args = parseOptions(['url', 'room', 'token', 'trace', 'limit', 'name', 'shape', 'reader-token', 'window', 'stall'])
  requireOptions(args, ['url', 'room', 'trace'])
  const name = args.name ?? 'text'
  const shape = shapeOption(args)
  const { txns, expected } = loadTrace(args.trace, args.limit ? Number(args.limit) : Infinity)
  const writer = await connectSynced(args, args.token)
  const reader = await connectSynced(args, args['reader-token'] ?? args.token)
  // The paragraph, when the document has none, is made in a transaction of its own.
  const setupTxns = shape === 'paragraph' && editedText(writer.ydoc, name, shape) === null ? 1 : 0
  const ytext = editedText(writer.ydoc, name, shape, { create: true })
  const watch = progressWatch(reader.ydoc, Number(args.stall ?? 15) * 1000)
  const started = now()
  const pacing = { window: Number(args.window ?? 0), reader: reader.ydoc, stalled: watch.stalled }
  await applyTxns(writer, ytext, txns, pacing)
  watch.touch()
  const matches = await waitMatch(reader.ydoc, name, shape, expected, watch.stalled)
  const seconds = ((matches ? now() : watch.lastChange()) - started) / 1000
  emit({
    txns: txns.length,
    setup_txns: setupTxns,
    seconds: Number(seconds.toFixed(3)),
    edits_per_s: matches ? Math.round(txns.length / seconds) : null,
    reader_matches: matches,
    final_len: documentText(reader.ydoc, name, shape).length,
    expected_len: expected.length
  })
  writer.provider.destroy()
  reader.provider.destroy()
  process.exit(matches ? 0 : 1)
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`)
  process.exit(1)
})
