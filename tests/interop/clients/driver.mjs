// A long-lived stock client driven by JSON lines: commands on stdin, one reply per command on
// stdout, plus unsolicited {"event": ...} lines for connection changes.
//   node driver.mjs --url ws://HOST:PORT/ws/docs --room ID [--token T] [--name text] [--no-reconnect]
// Positions and lengths are Y.Text indexes (UTF-16 code units). A command's "id", if any, is
// echoed in its reply.
import { createInterface } from 'node:readline'
import { emit, openProvider, parseOptions, requireOptions, seededRandom, sleep, waitFor, waitText, Y } from './common.mjs'

const DEFAULT_TIMEOUT_MS = 10000
const ALPHABET = ['a', 'b', 'c', 'x', 'y', 'z', ' ', 'Ä', 'é', 'Ω', '😀']

/**
 * @typedef {{ ydoc: Y.Doc, ytext: Y.Text, provider: import('y-websocket').WebsocketProvider,
 *             name: string, closed: boolean, exiting: boolean }} Session
 */

/**
 * Report the provider's connection events as {"event": ...} lines; with `noReconnect`,
 * destroy the provider after its first close.
 * @param {Session} session
 * @param {boolean} noReconnect
 */
function reportEvents (session, noReconnect) {
  const { provider } = session
  provider.on('status', ({ status }) => emit({ event: 'status', status }))
  provider.on('sync', (synced) => emit({ event: 'sync', synced }))
  provider.on('connection-error', (event) => emit({ event: 'error', message: String(event?.message ?? event?.error ?? 'error') }))
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
 * splitting a surrogate pair.
 * @param {Session} session
 * @param {number} count
 * @param {number} seed
 * @param {number} delayMs
 */
async function randomEdits (session, count, seed, delayMs) {
  const random = seededRandom(seed)
  const pick = (n) => Math.floor(random() * n)
  for (let i = 0; i < count; i++) {
    const current = session.ytext.toString()
    const length = current.length
    session.ydoc.transact(() => {
      if (length === 0 || random() < 0.7) {
        const text = Array.from({ length: 1 + pick(4) }, () => ALPHABET[pick(ALPHABET.length)]).join('')
        session.ytext.insert(codePointBoundary(current, pick(length + 1)), text)
      } else {
        const pos = codePointBoundary(current, pick(length))
        const end = codePointBoundary(current, Math.min(pos + 1 + pick(4), length))
        if (end > pos) session.ytext.delete(pos, end - pos)
      }
    })
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
    session.ydoc.transact(() => session.ytext.insert(command.pos, command.text))
    return { ok: true }
  },
  delete (session, command) {
    session.ydoc.transact(() => session.ytext.delete(command.pos, command.len))
    return { ok: true }
  },
  text (session) {
    return { ok: true, text: session.ytext.toString() }
  },
  async wait_text (session, command) {
    const ok = await waitText(session.ydoc, session.name, command.equals, command.timeout ?? DEFAULT_TIMEOUT_MS)
    return { ok, text: session.ytext.toString() }
  },
  async random_edits (session, command) {
    await randomEdits(session, command.count, command.seed ?? 1, command.delay_ms ?? 0)
    return { ok: true, text: session.ytext.toString() }
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
  const args = parseOptions(['url', 'room', 'token', 'name'], ['no-reconnect'])
  requireOptions(args, ['url', 'room'])
  const name = args.name ?? 'text'
  const ydoc = new Y.Doc()
  const provider = openProvider(args.url, args.room, ydoc, args.token, { connect: false })
  const session = { ydoc, ytext: ydoc.getText(name), name, provider, closed: false, exiting: false }
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
