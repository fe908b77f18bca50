// Time a fresh client's initial sync of an existing document.
//   node fresh_sync.mjs --url ws://HOST:PORT/ws/docs --room ID --token T [--expect-len N]
//        [--name text] [--timeout 120]
import { emit, now, openProvider, parseOptions, requireOptions, waitFor, Y } from './common.mjs'

/** Connect, wait for sync (and the expected length, when given), print the result line. */
async function main () {
  const args = parseOptions(['url', 'room', 'token', 'expect-len', 'name', 'timeout'])
  requireOptions(args, ['url', 'room'])
  const expectLen = args['expect-len'] === undefined ? null : Number(args['expect-len'])
  const timeoutMs = Number(args.timeout ?? 120) * 1000
  const started = now()
  const ydoc = new Y.Doc()
  const ytext = ydoc.getText(args.name ?? 'text')
  const provider = openProvider(args.url, args.room, ydoc, args.token)
  const done = () => provider.synced && (expectLen === null || ytext.length === expectLen)
  const ok = await waitFor(done, (wake) => {
    provider.on('sync', wake)
    ydoc.on('afterTransaction', wake)
    return () => {
      provider.off('sync', wake)
      ydoc.off('afterTransaction', wake)
    }
  }, timeoutMs)
  const seconds = (now() - started) / 1000
  emit({ seconds: Number(seconds.toFixed(4)), len: ytext.length, ok })
  provider.destroy()
  process.exit(ok ? 0 : 1)
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`)
  process.exit(1)
})
