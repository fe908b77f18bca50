// The History panel: a slider over every edit; the document after the chosen one, read-only,
// in the editor's own styles (a TipTap over the Yjs state the server builds at that seq).

/** How a replay of `head` edits steps so that it takes about `seconds`, a frame every `frameMs`. */
export function replayStep (head, { seconds = 10, frameMs = 100 } = {}) {
  const frames = Math.max(1, Math.round((seconds * 1000) / frameMs))
  return Math.max(1, Math.ceil(head / frames))
}

/** The line under the slider: which edit, by whom, when. */
export function describeEdit (seq, head, edit) {
  if (seq === 0) return `Before the first edit (of ${head})`
  const when = edit?.created_at ? new Date(edit.created_at).toLocaleString() : ''
  const who = edit ? (edit.actor || 'a deleted account') : '…'
  const what = edit?.kind === 'restore' ? 'restored by' : 'by'
  return `Edit ${seq} of ${head}, ${what} ${who}${when ? `, ${when}` : ''}`
}

/**
 * Keeps only the newest of overlapping loads: `start()` gives a ticket, and a result is shown
 * only if its ticket is still the latest.
 */
export class Latest {
  constructor () { this.ticket = 0 }
  start () { return ++this.ticket }
  isLatest (ticket) { return ticket === this.ticket }
}

/**
 * The panel's behaviour, with the DOM and network passed in.
 * `render(update, seq)` shows a state; `fetchState(seq)` resolves to `{ update, seq, head }`;
 * `fetchEdit(seq)` to the history entry of that edit; `fetchHead()` to the latest seq.
 */
export class HistoryPanel {
  constructor ({ slider, info, playButton, render, fetchState, fetchEdit, fetchHead, setTimer = (fn, ms) => setInterval(fn, ms), clearTimer = (id) => clearInterval(id) }) {
    Object.assign(this, { slider, info, playButton, render, fetchState, fetchEdit, fetchHead, setTimer, clearTimer })
    this.latest = new Latest()
    this.head = 0
    this.playing = null
    this.following = null
    this.loading = false
    slider.addEventListener('input', () => this.show(Number(slider.value)).catch((error) => this.fail(error)))
  }

  /** Open at the latest edit and keep the slider's end at the head. */
  async open () {
    const state = await this.fetchState(null)
    this.setHead(state.head)
    this.slider.value = String(state.seq)
    await this.showState(state, this.latest.start())
    this.following = this.setTimer(() => this.followHead(), 2000)
  }

  /** Say what went wrong where the edit is described. */
  fail (error) {
    this.info.textContent = `Could not load that edit: ${error.message || error}`
  }

  close () {
    this.pause()
    if (this.following !== null) this.clearTimer(this.following)
    this.following = null
    this.latest.start() // anything still loading is dropped
  }

  setHead (head) {
    this.head = head
    this.slider.max = String(head)
    this.slider.setAttribute('aria-valuemax', String(head))
  }

  async followHead () {
    const head = await this.fetchHead()
    if (head > this.head) this.setHead(head)
  }

  /** Show the document after `seq` (a newer request supersedes this one). */
  async show (seq) {
    const ticket = this.latest.start()
    this.loading = true
    try {
      const state = await this.fetchState(seq)
      await this.showState(state, ticket)
    } finally {
      if (this.latest.isLatest(ticket)) this.loading = false
    }
  }

  async showState (state, ticket) {
    if (!this.latest.isLatest(ticket)) return
    if (state.head > this.head) this.setHead(state.head)
    this.render(state.update, state.seq)
    this.info.textContent = describeEdit(state.seq, this.head, null)
    const edit = state.seq > 0 ? await this.fetchEdit(state.seq) : null
    if (this.latest.isLatest(ticket)) this.info.textContent = describeEdit(state.seq, this.head, edit)
  }

  /** Replay from the slider's position (from the start if at the end) in about 10 s. */
  play () {
    if (this.playing !== null) return
    if (Number(this.slider.value) >= this.head) this.slider.value = '0'
    const step = replayStep(this.head)
    this.playButton.textContent = 'Pause'
    this.playButton.setAttribute('aria-pressed', 'true')
    this.playing = this.setTimer(() => {
      if (this.loading) return // a frame is skipped rather than queued behind a slow load
      const next = Math.min(this.head, Number(this.slider.value) + step)
      this.slider.value = String(next)
      this.show(next).catch((error) => { this.fail(error); this.pause() })
      if (next >= this.head) this.pause()
    }, 100)
  }

  pause () {
    if (this.playing !== null) this.clearTimer(this.playing)
    this.playing = null
    this.playButton.textContent = 'Play'
    this.playButton.setAttribute('aria-pressed', 'false')
  }
}
