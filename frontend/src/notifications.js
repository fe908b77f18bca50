// /ws/notifications: the user's own events (exports) and, once watched, the document's
// (compaction, purged sessions, renames). Reconnects with backoff; re-watches after each reconnect.

/**
 * The toast an event deserves on this document's page, or null.
 * @param {any} event
 * @param {{ documentId: string, namesOf: (clientIds: number[]) => string[] }} context
 * @returns {{ text: string, kind: 'info' | 'success' | 'error' } | null}
 */
export function toastFor (event, { documentId, namesOf }) {
  switch (event.type) {
    case 'export.done':
      if (event.export?.document !== documentId) return null
      return { text: 'Your PDF export is ready to download.', kind: 'success' }
    case 'export.failed':
      if (event.export?.document !== documentId) return null
      return { text: `The PDF export failed: ${event.export.error || 'unknown error'}`, kind: 'error' }
    case 'snapshot.compacted':
      if (event.document !== documentId) return null
      return {
        text: `History compacted: ${event.events_folded} edits up to #${event.upto_seq} folded into a snapshot.`,
        kind: 'info',
      }
    case 'document.renamed':
      if (event.document !== documentId || typeof event.title !== 'string') return null
      return { text: `${event.by || 'Someone'} renamed the document to “${event.title}”.`, kind: 'info' }
    case 'session.purged': {
      if (event.document !== documentId) return null
      const names = namesOf(event.clients || [])
      const who = names.length ? names.join(', ') : 'a collaborator'
      return { text: `Removed a stale session of ${who} (their connection was lost).`, kind: 'info' }
    }
    default:
      return null
  }
}

/**
 * The document's new title if the event renames this document, else null.
 * @param {any} event
 * @param {string} documentId
 * @returns {string | null}
 */
export function renamedTitle (event, documentId) {
  if (event?.type !== 'document.renamed' || event.document !== documentId) return null
  return typeof event.title === 'string' ? event.title : null
}

/** A JSON WebSocket that reconnects and watches one document after every (re)connect. */
export class NotificationSocket {
  constructor (url, { documentId, onEvent, WebSocketImpl = globalThis.WebSocket, maxBackoffMs = 10000 }) {
    Object.assign(this, { url, documentId, onEvent, WebSocketImpl, maxBackoffMs })
    this.failures = 0
    this.socket = null
    this.stopped = false
  }

  connect () {
    if (this.stopped || this.socket) return
    const socket = new this.WebSocketImpl(this.url)
    this.socket = socket
    socket.addEventListener('open', () => {
      this.failures = 0
      socket.send(JSON.stringify({ type: 'watch', document: this.documentId }))
    })
    socket.addEventListener('message', (message) => {
      let event
      try {
        event = JSON.parse(message.data)
      } catch {
        return
      }
      if (event && typeof event.type === 'string') this.onEvent(event)
    })
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return
      this.socket = null
      if (this.stopped) return
      this.failures++
      setTimeout(() => this.connect(), Math.min(200 * 2 ** this.failures, this.maxBackoffMs))
    })
  }

  /** Close for good (the browser went offline; `connect()` starts again). */
  close () {
    const socket = this.socket
    this.socket = null
    if (socket) socket.close()
  }
}
