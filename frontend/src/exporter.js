// A PDF export as the page shows it: started over HTTP, followed through /ws/notifications,
// with polling as a fallback for events missed while that socket was down.

const TERMINAL = new Set(['done', 'failed', 'expired'])

function capitalised (text) {
  return text.charAt(0).toUpperCase() + text.slice(1)
}

/** Whether an export's status is final. */
export function isFinal (exp) {
  return Boolean(exp) && TERMINAL.has(exp.status)
}

/** The newer of two views of one export: a final status wins, then more progress. */
export function newer (current, incoming) {
  if (!current || current.id !== incoming.id) return incoming
  if (isFinal(current)) return current
  if (isFinal(incoming)) return incoming
  return (incoming.progress ?? 0) >= (current.progress ?? 0) ? incoming : current
}

/** What the page shows for an export: state, progress 0-100, a sentence, the download link. */
export function exportView (exp) {
  const progress = Math.max(0, Math.min(100, Number(exp.progress) || 0))
  switch (exp.status) {
    case 'pending':
      return { state: 'pending', progress, text: 'Export queued…', downloadUrl: null }
    case 'running':
      return { state: 'running', progress, text: `${capitalised(exp.stage || 'working')}… ${progress}%`, downloadUrl: null }
    case 'done':
      return { state: 'done', progress: 100, text: 'Your PDF is ready.', downloadUrl: exp.download_url }
    case 'failed':
      return { state: 'failed', progress, text: `Export failed: ${exp.error || 'unknown error'}`, downloadUrl: null }
    case 'expired':
      return { state: 'failed', progress, text: 'This export has expired; export again.', downloadUrl: null }
    default:
      return { state: 'pending', progress, text: 'Export queued…', downloadUrl: null }
  }
}

/** Why an HTTP error response failed, from its JSON `detail` when it has one. */
export async function errorReason (response) {
  try {
    const body = await response.json()
    if (typeof body.detail === 'string') return body.detail
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg || JSON.stringify(d)).join('; ')
  } catch {}
  return `the server answered ${response.status}`
}

/** Starts exports and follows the latest one. */
export class ExportFlow {
  constructor ({ startUrl, statusUrl, csrfToken, onChange, fetchImpl = globalThis.fetch.bind(globalThis), pollMs = 2000 }) {
    Object.assign(this, { startUrl, statusUrl, csrfToken, onChange, fetchImpl, pollMs })
    this.current = null
    this.timer = null
  }

  /** Ask for a PDF of the document as it is now. */
  async start () {
    this._set({ id: null, status: 'pending', progress: 0 })
    let response
    try {
      response = await this.fetchImpl(this.startUrl, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': this.csrfToken },
        body: JSON.stringify({ format: 'pdf' }),
      })
    } catch {
      this._set({ id: null, status: 'failed', progress: 0, error: 'the server could not be reached' })
      return
    }
    if (response.status !== 202) {
      this._set({ id: null, status: 'failed', progress: 0, error: await errorReason(response) })
      return
    }
    this._set(await response.json())
    this._poll()
  }

  /** A notification from /ws/notifications. */
  handle (event) {
    if (!event.export || !this.current || event.export.id !== this.current.id) return
    this._set(newer(this.current, event.export))
  }

  _set (exp) {
    const before = this.current
    this.current = exp.id === null ? exp : newer(before, exp)
    if (this.current !== before) this.onChange(this.current)
  }

  _poll () {
    clearTimeout(this.timer)
    if (!this.current || this.current.id === null || isFinal(this.current)) return
    this.timer = setTimeout(async () => {
      const id = this.current.id
      try {
        const response = await this.fetchImpl(this.statusUrl + id, { credentials: 'same-origin' })
        if (response.ok && this.current && this.current.id === id) this._set(await response.json())
      } catch {}
      this._poll()
    }, this.pollMs)
  }
}
