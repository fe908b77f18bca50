// Fan-out load: every client of every room types single characters; measure keystroke-to-peer
// latency, losses and convergence, all in this one process.
//   node fanout.mjs --url ws://HOST:PORT/ws/docs --rooms rooms.json --rate 5 --duration 15
//        [--drain 5] [--seed 1] [--sync-timeout 60]
// rooms.json: [{"room": "id", "tokens": ["t1", ...]}, ...] — one client per token.
// --url may list several servers, comma-separated: a room's clients take them in turn, so
// every room has members on each (several processes behind one log).
import { readFileSync } from 'node:fs'
import { emit, now, openProvider, parseOptions, requireOptions, seededRandom, sleep, waitSynced, Y } from './common.mjs'

const TEXT_NAME = 'text'
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz '

/**
 * @typedef {{ room: string, ydoc: Y.Doc, provider: import('y-websocket').WebsocketProvider,
 *             closes: number }} Client
 */

/** Send times of keystrokes, keyed by the inserted character's id (clientID, clock). */
class SendLog {
  constructor () {
    /** @type {Map<number, Map<number, number>>} */
    this.byClient = new Map()
    this.count = 0
  }

  /**
   * Record that `clientID` inserted the character with `clock` at `time`.
   * @param {number} clientID
   * @param {number} clock
   * @param {number} time
   */
  record (clientID, clock, time) {
    let clocks = this.byClient.get(clientID)
    if (clocks === undefined) {
      clocks = new Map()
      this.byClient.set(clientID, clocks)
    }
    clocks.set(clock, time)
    this.count++
  }

  /**
   * The send time of character (clientID, clock), or undefined if it was not a keystroke.
   * @param {number} clientID
   * @param {number} clock
   * @returns {number | undefined}
   */
  sentAt (clientID, clock) {
    return this.byClient.get(clientID)?.get(clock)
  }
}

/**
 * Record a latency for every keystroke character a remote transaction integrated into `ydoc`:
 * the clock ranges between the transaction's before and after state vectors, so characters
 * merged into one item are still counted one by one.
 * @param {Y.Doc} ydoc
 * @param {SendLog} sends
 * @param {number[]} latencies
 */
function observeArrivals (ydoc, sends, latencies) {
  ydoc.on('afterTransaction', (transaction) => {
    if (transaction.local) return
    const arrived = now()
    transaction.afterState.forEach((after, clientID) => {
      for (let clock = transaction.beforeState.get(clientID) ?? 0; clock < after; clock++) {
        const sent = sends.sentAt(clientID, clock)
        if (sent !== undefined) latencies.push(arrived - sent)
      }
    })
  })
}

/**
 * Insert one random character at a random position, in its own transaction, logging its id.
 * @param {Client} client
 * @param {() => number} random
 * @param {SendLog} sends
 */
function typeKey (client, random, sends) {
  const ytext = client.ydoc.getText(TEXT_NAME)
  const pos = Math.floor(random() * (ytext.length + 1))
  const char = ALPHABET[Math.floor(random() * ALPHABET.length)]
  const clock = Y.getState(client.ydoc.store, client.ydoc.clientID)
  sends.record(client.ydoc.clientID, clock, now())
  client.ydoc.transact(() => ytext.insert(pos, char))
}

/**
 * Type `count` keystrokes, one every `intervalMs`, starting after `offsetMs`; the schedule
 * is kept against the clock so timer lateness does not accumulate.
 * @param {Client} client
 * @param {{ count: number, intervalMs: number, offsetMs: number }} schedule
 * @param {() => number} random
 * @param {SendLog} sends
 * @returns {Promise<void>}
 */
async function typeLoop (client, schedule, random, sends) {
  const start = now() + schedule.offsetMs
  for (let k = 0; k < schedule.count; k++) {
    const wait = start + k * schedule.intervalMs - now()
    if (wait > 0) await sleep(wait)
    typeKey(client, random, sends)
  }
}

/**
 * Open one client per token of every room, each observing arrivals and counting closes; the
 * clients of a room take the servers in `urls` in turn.
 * @param {string[]} urls
 * @param {{ room: string, tokens: string[] }[]} rooms
 * @param {SendLog} sends
 * @param {number[]} latencies
 * @returns {Client[]}
 */
function openClients (urls, rooms, sends, latencies) {
  process.setMaxListeners(0) // each stock provider adds an 'exit' listener
  const clients = []
  for (const { room, tokens } of rooms) {
    for (const [i, token] of tokens.entries()) {
      const ydoc = new Y.Doc()
      observeArrivals(ydoc, sends, latencies)
      const url = urls[i % urls.length]
      const client = { room, ydoc, provider: openProvider(url, room, ydoc, token), closes: 0 }
      client.provider.on('connection-close', () => { client.closes++ })
      clients.push(client)
    }
  }
  return clients
}

/**
 * The value at quantile `q` of ascending `sorted`, or null when empty.
 * @param {number[]} sorted
 * @param {number} q
 * @returns {number | null}
 */
function quantile (sorted, q) {
  if (sorted.length === 0) return null
  const index = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)
  return Number(sorted[Math.max(0, index)].toFixed(2))
}

/**
 * Whether every replica of each room holds the same text.
 * @param {Client[]} clients
 * @returns {boolean}
 */
function converged (clients) {
  const texts = new Map()
  for (const client of clients) {
    const text = client.ydoc.getText(TEXT_NAME).toString()
    if (!texts.has(client.room)) texts.set(client.room, text)
    else if (texts.get(client.room) !== text) return false
  }
  return true
}

/** Run the load and print the result line. */
async function main () {
  const args = parseOptions(['url', 'rooms', 'rate', 'duration', 'drain', 'seed', 'sync-timeout'])
  requireOptions(args, ['url', 'rooms'])
  const rooms = JSON.parse(readFileSync(args.rooms, 'utf8'))
  const rate = Number(args.rate ?? 5)
  const duration = Number(args.duration ?? 15)
  const random = seededRandom(Number(args.seed ?? 1))
  const sends = new SendLog()
  const latencies = []
  const clients = openClients(args.url.split(','), rooms, sends, latencies)
  const syncTimeoutMs = Number(args['sync-timeout'] ?? 60) * 1000
  const synced = await Promise.all(clients.map((c) => waitSynced(c.provider, syncTimeoutMs)))
  const unsynced = synced.filter((ok) => !ok).length
  if (unsynced > 0) throw new Error(`${unsynced} of ${clients.length} clients did not sync`)
  const intervalMs = 1000 / rate
  await Promise.all(clients.map((client) => typeLoop(client, {
    count: Math.round(rate * duration),
    intervalMs,
    offsetMs: random() * intervalMs
  }, random, sends)))
  await sleep(Number(args.drain ?? 5) * 1000)
  const expected = rooms.reduce((sum, r) => sum + r.tokens.length * (r.tokens.length - 1), 0) * Math.round(rate * duration)
  latencies.sort((a, b) => a - b)
  emit({
    docs: rooms.length,
    clients: clients.length,
    sent: sends.count,
    expected_deliveries: expected,
    delivered: latencies.length,
    lost: expected - latencies.length,
    p50_ms: quantile(latencies, 0.5),
    p95_ms: quantile(latencies, 0.95),
    p99_ms: quantile(latencies, 0.99),
    max_ms: quantile(latencies, 1),
    converged: converged(clients),
    disconnects: clients.reduce((sum, client) => sum + client.closes, 0)
  })
  for (const client of clients) client.provider.destroy()
  process.exit(0)
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`)
  process.exit(1)
})
