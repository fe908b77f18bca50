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
 * Resolve true once the text of `ydoc.getText(name)` equals `expected`, false after `timeoutMs`.
 * @param {Y.Doc} ydoc
 * @param {string} name
 * @param {string} expected
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
export function waitText (ydoc, name, expected, timeoutMs) {
  const ytext = ydoc.getText(name)
  const matches = () => ytext.length === expected.length && ytext.toString() === expected
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
