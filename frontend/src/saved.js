// "Saved" means the server has stored every local edit. y-websocket has no acknowledgement,
// but the server answers a SyncStep1 only after every update that came before it on the same
// socket is durable (see the README, "How an edit flows"). So each SyncStep2 the server sends
// back confirms the edits sent before the SyncStep1 it answers; answers come in order.
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as authProtocol from 'y-protocols/auth'
import * as syncProtocol from 'y-protocols/sync'

const MESSAGE_SYNC = 0
const MESSAGE_AUTH = 2
export const STEP1 = syncProtocol.messageYjsSyncStep1
export const STEP2 = syncProtocol.messageYjsSyncStep2

/** The sync message type (STEP1, STEP2, update) of a y-websocket frame, or null. */
export function syncMessageType (data) {
  try {
    const decoder = decoding.createDecoder(data instanceof Uint8Array ? data : new Uint8Array(data))
    if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return null
    return decoding.readVarUint(decoder)
  } catch {
    return null
  }
}

/** Counts local edits and the server's confirmations of them. */
export class SaveTracker {
  constructor (onChange = () => {}) {
    this.edits = 0 // local document updates so far
    this.confirmed = 0 // the server stored every local update up to this count
    this.sentAll = false // this socket has been sent every local update (its SyncStep2 went out)
    this.waiting = [] // per SyncStep1 sent on this socket, not yet answered: edits it confirms
    this.onChange = onChange
  }

  /** Whether some local edit is not yet confirmed by the server. */
  get unsaved () {
    return this.edits > this.confirmed
  }

  /** A local update happened (typing, undo, or edits loaded from this browser's store). */
  edited () {
    this.edits++
    this.onChange()
  }

  /** A new socket opened: nothing has been sent on it yet. */
  opened () {
    this.sentAll = false
    this.waiting = []
  }

  /** The socket closed: its unanswered questions will never be answered. */
  closed () {
    this.sentAll = false
    this.waiting = []
    this.onChange()
  }

  /** A frame is going out. */
  sent (data) {
    const type = syncMessageType(data)
    if (type === STEP1) {
      // Before our SyncStep2, edits made offline have not gone out: the answer confirms nothing new.
      this.waiting.push(this.sentAll ? this.edits : this.confirmed)
    } else if (type === STEP2) {
      // The answer to the server's SyncStep1 carries every local update it lacked; later local
      // updates go out one by one on this socket as they happen.
      this.sentAll = true
    }
    return type
  }

  /** A frame came in; its sync message type. */
  received (data) {
    const type = syncMessageType(data)
    if (type === STEP2) {
      const covered = this.waiting.shift()
      if (covered !== undefined && covered > this.confirmed) {
        this.confirmed = covered
        this.onChange()
      }
    }
    return type
  }
}

/** The reason of y-protocols' "permission denied" message, or null for any other frame. */
export function permissionDenied (data) {
  try {
    const decoder = decoding.createDecoder(data instanceof Uint8Array ? data : new Uint8Array(data))
    if (decoding.readVarUint(decoder) !== MESSAGE_AUTH) return null
    let reason = null
    authProtocol.readAuthMessage(decoder, null, (_doc, why) => { reason = why })
    return reason
  } catch {
    return null
  }
}

/**
 * A WebSocket class for the provider's `WebSocketPolyfill` option that reports frames to
 * `tracker`, can ask the server for a confirmation (`confirm()`), and tells `onDenied` why the
 * server refused an edit (the user was made a viewer, say).
 */
export function trackingWebSocket (tracker, doc, Base = globalThis.WebSocket, onDenied = () => {}) {
  return class TrackingWebSocket extends Base {
    constructor (url, protocols) {
      super(url, protocols)
      // Listeners added here run before the provider's on* handlers, which it sets later.
      this.addEventListener('open', () => tracker.opened())
      this.addEventListener('message', (event) => {
        const denied = permissionDenied(event.data)
        if (denied !== null) onDenied(denied)
        if (tracker.received(event.data) === STEP1) {
          // The provider answers the server's SyncStep1 with our missing updates; ask right
          // after it, so the answer confirms those too.
          setTimeout(() => this.confirm(), 0)
        }
      })
      this.addEventListener('close', () => tracker.closed())
    }

    send (data) {
      tracker.sent(data)
      super.send(data)
    }

    /** Send a SyncStep1; the server's answer confirms every local edit sent before it. */
    confirm () {
      if (this.readyState !== 1) return
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, MESSAGE_SYNC)
      syncProtocol.writeSyncStep1(encoder, doc)
      this.send(encoding.toUint8Array(encoder))
    }
  }
}
