// A long-lived stock client driven by JSON lines: commands on stdin, one reply per command on
// stdout, plus unsolicited {"event": ...} lines for connection changes.
//   node driver.mjs --url ws://HOST:PORT/ws/docs --room ID [--token T] [--name text]
//        [--shape text|paragraph] [--no-reconnect]
// --shape paragraph edits the first paragraph of XmlFragment("default") (the browser editor's
// layout) instead of Y.Text `name`. Positions and lengths are Y.Text indexes (UTF-16 code
// units). A command's "id", if any, is echoed in its reply.
import { createInterface } from 'node:readline'
import {
  createParagraph, documentText, editedText, emit, openProvider, paragraphText, parseOptions,
  requireOptions, seededRandom, shapeOption, sleep, waitFor, waitText, Y
} from './common.mjs'

const DEFAULT_TIMEOUT_MS = 10000
const ALPHABET = ['a', 'b', 'c', 'x', 'y', 'z', ' ', 'Ä', 'é', 'Ω', '😀']

/**
 * @typedef {{ ydoc: Y.Doc, provider: import('y-websocket').WebsocketProvider, name: string,
 *             shape: 'text' | 'paragraph', closed: boolean, exiting: boolean }} Session
 */

/**
 * The text edits go to; in the paragraph shape, created (in the caller's transaction) when
 * the document has no paragraph yet, or null with `create` false.
 * @param {Session} session
 * @param {boolean} [create]
 * @returns {Y.Text | null}
 */
function target (session, create = true) {
  return editedText(session.ydoc, session.name, session.shape, { create })
}

/**
 * The document's text as this client sees it (paragraph shape: blocks joined by a blank line).
 * @param {Session} session
 * @returns {string}
 */
function currentText (session) {
  return documentText(session.ydoc, session.name, session.shape)
}

/**
 * Report the provider's connection events as {"event": ...} lines ('gave_up' when it will not
 * reconnect); with `noReconnect`, destroy the provider after its first close.
 * @param {Session} session
 * @param {boolean} noReconnect
 */
function reportEvents (session, noReconnect) {
  const { provider } = session
  provider.on('status', ({ status }) => emit({ event: 'status', status }))
  provider.on('sync', (synced) => emit({ event: 'sync', synced }))
  provider.on('connection-error', (event) => emit({ event: 'error', message: String(event?.message ?? event?.error ?? 'error') }))
  // The provider decided not to reconnect (a 44xx close): emitted in the same turn as that
  // close's 'closed', so a test waits for it instead of waiting to see no reconnect.
  provider.on('closed', ({ code, reason }) => emit({ event: 'gave_up', code, reason }))
  provider.on('connection-close', (event) => {
    emit({ event: 'closed', code: event?.code ?? null, reason: event?.reason ?? '' })
    if (noReconnect && !session.closed) {
      session.closed = true
      setImmediate(() => provider.destroy())
    }
  })
}

/**
 * Awareness states of the other clients, as [{clientID, state}].
 * @param {Session} session
 * @returns {{ clientID: number, state: object }[]}
 */
function peers (session) {
  const states = session.provider.awareness.getStates()
  return [...states]
    .filter(([clientID]) => clientID !== session.ydoc.clientID)
    .map(([clientID, state]) => ({ clientID, state }))
}

/**
 * Move `pos` back off the middle of a surrogate pair in `text`.
 * @param {string} text
 * @param {number} pos
 * @returns {number}
 */
function codePointBoundary (text, pos) {
  const low = text.charCodeAt(pos)
  const high = text.charCodeAt(pos - 1)
  return low >= 0xDC00 && low <= 0xDFFF && high >= 0xD800 && high <= 0xDBFF ? pos - 1 : pos
}

/**
 * Make `count` random inserts and deletes on the text, one transaction each, never
 * splitting a surrogate pair. Inserts are 1-4 characters of `alphabet`. An edit is an insert
 * with probability `insertRatio`; an edit of an empty text is an insert, or skipped when
 * `insertRatio` is 0 (deletes only). In the paragraph shape, a missing paragraph is created
 * in the first insert's transaction.
 * @param {Session} session
 * @param {{ count: number, seed: number, delayMs: number, alphabet: string[], insertRatio: number }} options
 */
async function randomEdits (session, { count, seed, delayMs, alphabet, insertRatio }) {
  const random = seededRandom(seed)
  const pick = (n) => Math.floor(random() * n)
  for (let i = 0; i < count; i++) {
    const existing = target(session, false)
    const current = existing === null ? '' : existing.toString()
    const length = current.length
    const insert = length === 0 ? insertRatio > 0 : random() < insertRatio
    if (insert || length > 0) {
      session.ydoc.transact(() => {
        const ytext = existing ?? target(session)
        if (insert) {
          const text = Array.from({ length: 1 + pick(4) }, () => alphabet[pick(alphabet.length)]).join('')
          ytext.insert(codePointBoundary(current, pick(length + 1)), text)
        } else {
          const pos = codePointBoundary(current, pick(length))
          const end = codePointBoundary(current, Math.min(pos + 1 + pick(4), length))
          if (end > pos) ytext.delete(pos, end - pos)
        }
      })
    }
    if (delayMs > 0) await sleep(delayMs)
  }
}

/**
 * Wait until at least `count` other clients have an awareness state.
 * @param {Session} session
 * @param {number} count
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
function waitPeers (session, count, timeoutMs) {
  const { awareness } = session.provider
  return waitFor(() => peers(session).length >= count, (wake) => {
    awareness.on('change', wake)
    return () => awareness.off('change', wake)
  }, timeoutMs)
}

/** @type {Record<string, (session: Session, command: any) => Promise<object> | object>} */
const COMMANDS = {
  async wait_synced (session, command) {
    const { provider } = session
    await waitFor(() => provider.synced || session.closed, (wake) => {
      provider.on('sync', wake)
      provider.on('connection-close', wake)
      return () => {
        provider.off('sync', wake)
        provider.off('connection-close', wake)
      }
    }, command.timeout ?? DEFAULT_TIMEOUT_MS)
    if (provider.synced) return { ok: true }
    return { ok: false, error: session.closed ? 'closed' : 'timeout' }
  },
  insert (session, command) {
    session.ydoc.transact(() => target(session).insert(command.pos, command.text))
    return { ok: true }
  },
  delete (session, command) {
    const ytext = target(session, false)
    if (ytext === null) return { ok: false, error: 'no paragraph' }
    session.ydoc.transact(() => ytext.delete(command.pos, command.len))
    return { ok: true }
  },
  text (session) {
    return { ok: true, text: currentText(session) }
  },
  async wait_text (session, command) {
    const timeout = command.timeout ?? DEFAULT_TIMEOUT_MS
    const ok = await waitText(session.ydoc, session.name, command.equals, timeout, session.shape)
    return { ok, text: currentText(session) }
  },
  async random_edits (session, command) {
    await randomEdits(session, {
      count: command.count,
      seed: command.seed ?? 1,
      delayMs: command.delay_ms ?? 0,
      alphabet: command.alphabet === undefined ? ALPHABET : Array.from(command.alphabet),
      insertRatio: command.insert_ratio ?? 0.7
    })
    return { ok: true, text: currentText(session) }
  },
  make_paragraph (session) {
    if (session.shape !== 'paragraph') return { ok: false, error: 'not in the paragraph shape' }
    const created = paragraphText(session.ydoc) === null
    if (created) createParagraph(session.ydoc)
    return { ok: true, created }
  },
  async wait_paragraph (session, command) {
    const { ydoc } = session
    const ok = await waitFor(() => paragraphText(ydoc) !== null, (wake) => {
      ydoc.on('afterTransaction', wake)
      return () => ydoc.off('afterTransaction', wake)
    }, command.timeout ?? DEFAULT_TIMEOUT_MS)
    return { ok }
  },
  awareness (session, command) {
    session.provider.awareness.setLocalState(command.state)
    return { ok: true }
  },
  peers (session) {
    return { ok: true, peers: peers(session) }
  },
  async wait_peers (session, command) {
    const ok = await waitPeers(session, command.count ?? 1, command.timeout ?? DEFAULT_TIMEOUT_MS)
    return { ok, peers: peers(session) }
  },
  status (session) {
    const { provider } = session
    return { ok: true, connected: provider.wsconnected, synced: provider.synced, closed: session.closed }
  },
  close (session) {
    session.closed = true
    session.exiting = true
    session.provider.destroy()
    return { ok: true }
  }
}

/**
 * Run one command line and return its reply.
 * @param {Session} session
 * @param {string} line
 * @returns {Promise<object>}
 */
async function runLine (session, line) {
  let command
  try {
    command = JSON.parse(line)
    const handler = Object.hasOwn(COMMANDS, command.cmd) ? COMMANDS[command.cmd] : null
    if (handler === null) throw new Error(`unknown command: ${command.cmd}`)
    return withId(command, await handler(session, command))
  } catch (error) {
    return withId(command, { ok: false, error: String(error?.message ?? error) })
  }
}

/**
 * Add the command's "id" to its reply, when it had one.
 * @param {any} command
 * @param {object} reply
 * @returns {object}
 */
function withId (command, reply) {
  return command?.id === undefined ? reply : { id: command.id, ...reply }
}

/** Open the client and serve commands until "close" or end of input. */
async function main () {
  const args = parseOptions(['url', 'room', 'token', 'name', 'shape'], ['no-reconnect'])
  requireOptions(args, ['url', 'room'])
  const name = args.name ?? 'text'
  const shape = shapeOption(args)
  const ydoc = new Y.Doc()
  const provider = openProvider(args.url, args.room, ydoc, args.token, { connect: false })
  const session = { ydoc, name, shape, provider, closed: false, exiting: false }
  reportEvents(session, args['no-reconnect'])
  provider.connect()
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.trim() === '') continue
    emit(await runLine(session, line))
    if (session.exiting) process.exit(0)
  }
  if (!session.closed) session.provider.destroy()
  process.exit(0)
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`)
  process.exit(1)
})
