// Join burst: open every client at once and time until all are synced; then hold them open
// for --hold seconds (so the caller can measure the server with them connected) and close.
//   node join.mjs --url ws://HOST:PORT/ws/docs --rooms rooms.json [--hold 3] [--timeout 120]
// rooms.json: [{"room": "id", "tokens": ["t1", ...]}, ...] — one client per token (a token
// may repeat: the same user in several tabs).
import { readFileSync } from 'node:fs'
import { emit, now, openProvider, parseOptions, requireOptions, sleep, waitSynced, Y } from './common.mjs'

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

/** Open, wait, report, hold, close. */
async function main () {
  const args = parseOptions(['url', 'rooms', 'hold', 'timeout'])
  requireOptions(args, ['url', 'rooms'])
  const rooms = JSON.parse(readFileSync(args.rooms, 'utf8'))
  const timeoutMs = Number(args.timeout ?? 120) * 1000
  process.setMaxListeners(0) // each stock provider adds an 'exit' listener
  const started = now()
  const providers = []
  const times = []
  const waits = []
  for (const { room, tokens } of rooms) {
    for (const token of tokens) {
      const provider = openProvider(args.url, room, new Y.Doc(), token)
      providers.push(provider)
      waits.push(waitSynced(provider, timeoutMs).then((ok) => {
        if (ok) times.push(now() - started)
        return ok
      }))
    }
  }
  const synced = (await Promise.all(waits)).filter(Boolean).length
  const seconds = (now() - started) / 1000
  times.sort((a, b) => a - b)
  emit({
    clients: providers.length,
    docs: rooms.length,
    synced,
    seconds: Number(seconds.toFixed(3)),
    p50_ms: quantile(times, 0.5),
    p99_ms: quantile(times, 0.99)
  })
  await sleep(Number(args.hold ?? 3) * 1000)
  for (const provider of providers) provider.destroy()
  process.exit(synced === providers.length ? 0 : 1)
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`)
  process.exit(1)
})
