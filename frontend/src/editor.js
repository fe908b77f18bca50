// The editor page: TipTap on XmlFragment("default") of a Y.Doc that the stock y-websocket
// provider syncs with /ws/docs/{id} and y-indexeddb keeps in this browser for offline work.
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'

import { LABELS, connectionState } from './connection.js'
import { ShowAuthors, authorRuns, legendEntries, refreshAuthors } from './authors.js'
import { ExportFlow, exportView } from './exporter.js'
import { HistoryPanel } from './history.js'
import { megabytes, overLimit, sliceBytes } from './limits.js'
import { NotificationSocket, renamedTitle, toastFor } from './notifications.js'
import { ClientNames, presentUsers } from './presence.js'
import { SaveTracker, trackingWebSocket } from './saved.js'
import { showToast } from './toasts.js'
import { mountToolbar } from './toolbar.js'

const CONFIRM_EVERY_MS = 400

const config = JSON.parse(document.getElementById('palimpsest-config').textContent)
const root = document.getElementById('editor-app')
const $ = (testid) => root.querySelector(`[data-testid="${testid}"]`)
const toasts = $('toasts')
let writable = config.role !== 'viewer'
// The server stamps every awareness state with the name and colour it knows the user by.
const me = { name: config.user.name, color: config.user.color }
const wsOrigin = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`

const ydoc = new Y.Doc()
const view = { status: 'connecting', online: navigator.onLine, everConnected: false, closed: false }
const tracker = new SaveTracker(() => renderSaved())
let provider = null

// Counted before the provider exists, so edits loaded from this browser's store count too:
// they may never have reached the server.
ydoc.on('update', (_update, origin) => {
  if (provider !== null && origin === provider) return
  tracker.edited()
  askForConfirmation()
})

// One store per user and document: on a shared browser, one person's offline edits must
// never be sent under another's name.
const idbName = `palimpsest:${config.user.id}:${config.document}`
root.dataset.idb = idbName
const persistence = new IndexeddbPersistence(idbName, ydoc)
let storeWorks = true

provider = new WebsocketProvider(wsOrigin + config.paths.docs, config.document, ydoc, {
  connect: false,
  // The server is the one authority on what a tab may write; tabs don't talk to each other.
  disableBc: true,
  WebSocketPolyfill: trackingWebSocket(tracker, ydoc, undefined, (reason) => becomeReadOnly(reason)),
})

// Show authors: one switch for the live editor and the history view (authors.js).
const shownAuthors = { enabled: false, authors: new Map(), unknown: () => loadAuthors() }

const editor = new Editor({
  element: $('editor'),
  editable: writable,
  extensions: [
    // The collaboration extension brings its own undo (Yjs UndoManager): it undoes only
    // this user's edits, never a collaborator's.
    StarterKit.configure({ undoRedo: false, link: { openOnClick: false } }),
    Collaboration.configure({ document: ydoc, field: 'default' }),
    ShowAuthors.configure({ fragment: () => ydoc.getXmlFragment('default'), shared: () => shownAuthors }),
    CollaborationCaret.configure({ provider, user: me }),
  ],
  editorProps: {
    handlePaste: (_view, _event, slice) => refuseIfTooLarge(slice, 'paste'),
    // Moving text within the document adds nothing; dropping from elsewhere does.
    handleDrop: (_view, _event, slice, moved) => !moved && refuseIfTooLarge(slice, 'drop'),
    // A function, so the label follows a change to read-only while the page is open.
    attributes: () => ({
      'aria-label': `${config.title} (${writable ? 'editable' : 'read only'})`,
      'aria-multiline': 'true',
      role: 'textbox',
      class: 'prose',
    }),
  },
})
$('editor').querySelector('.loading')?.remove()

/** The server took away the right to edit (the owner made us a viewer): stop editing. */
function becomeReadOnly (reason) {
  if (!writable) return
  writable = false
  root.dataset.role = 'viewer'
  editor.setEditable(false)
  $('toolbar')?.replaceChildren()
  showToast(toasts, {
    text: `You can no longer edit this document (${reason}); you can still read it.`,
    kind: 'error'
  })
}

/** True (handled: nothing inserted) for content the server would refuse as too large. */
function refuseIfTooLarge (slice, what) {
  const bytes = sliceBytes(slice)
  const limit = config.limits.maxMessageBytes
  if (!overLimit(bytes, limit)) return false
  showToast(toasts, {
    text: `This ${what} is too large to save (about ${megabytes(bytes)}; one edit may be at most ${megabytes(limit)}). Nothing was inserted: add it in smaller parts.`,
    kind: 'error'
  })
  return true
}
if (writable) mountToolbar($('toolbar'), editor)

// --- connection and saved state -------------------------------------------------------

function renderConnection () {
  const state = connectionState(view)
  const element = $('connection')
  element.dataset.state = state
  element.textContent = LABELS[state]
}

function renderSaved () {
  const element = $('saved')
  const unsaved = tracker.unsaved
  element.dataset.state = unsaved ? 'unsaved' : 'saved'
  if (!unsaved) element.textContent = 'All changes saved'
  else if (storeWorks) element.textContent = 'Unsaved changes (kept in this browser)'
  else element.textContent = 'Unsaved changes'
}

let confirmTimer = null
/** Ask the server to confirm recent edits, at most every CONFIRM_EVERY_MS while typing. */
function askForConfirmation () {
  if (confirmTimer !== null) return
  confirmTimer = setTimeout(() => {
    confirmTimer = null
    provider.ws?.confirm?.()
  }, CONFIRM_EVERY_MS)
}

function markReady () {
  if (root.dataset.ready === 'true') return
  root.dataset.ready = 'true'
  $('editor').setAttribute('aria-busy', 'false')
}

provider.on('status', ({ status }) => {
  view.status = status
  if (status === 'connected') {
    view.everConnected = true
    view.closed = false
  }
  renderConnection()
})
provider.on('sync', (synced) => {
  if (synced) markReady()
})
provider.on('closed', ({ code, reason }) => {
  // A 44xx close: the server refused something for good; reconnecting would repeat it.
  view.closed = true
  renderConnection()
  showToast(toasts, { text: `The server closed the connection: ${reason || 'no reason given'} (${code}). Reload the page to try again.`, kind: 'error' })
})

// Going offline closes the socket at once instead of waiting for it to time out, and the
// edits made meanwhile stay in IndexedDB until the connection is back.
window.addEventListener('offline', () => {
  view.online = false
  provider.disconnect()
  notifications.close()
  renderConnection()
})
window.addEventListener('online', () => {
  view.online = true
  provider.connect()
  notifications.connect()
  renderConnection()
})
window.addEventListener('beforeunload', (event) => {
  // Only when this browser could not keep the edits: otherwise they sync on the next visit.
  if (tracker.unsaved && !storeWorks) event.preventDefault()
})

persistence.whenSynced.then(
  () => {
    if (!navigator.onLine) markReady() // offline: what this browser kept is all there is
  },
  () => {
    storeWorks = false
    showToast(toasts, { text: 'This browser cannot keep offline edits (storage unavailable); stay online while editing.', kind: 'error' })
  },
).finally(() => {
  renderSaved()
  if (navigator.onLine) provider.connect()
})

// --- who is here ----------------------------------------------------------------------

const clientNames = new ClientNames()
function renderPresence () {
  const states = provider.awareness.getStates()
  clientNames.note(states)
  const list = $('presence')
  list.replaceChildren(...presentUsers(states, ydoc.clientID).map((person) => {
    const item = document.createElement('li')
    item.dataset.user = person.name
    const dot = document.createElement('span')
    dot.className = 'presence__dot'
    dot.style.backgroundColor = person.color
    dot.setAttribute('aria-hidden', 'true')
    item.append(dot, document.createTextNode(person.self ? `${person.name} (you)` : person.name))
    return item
  }))
}
provider.awareness.on('change', renderPresence)
renderPresence()

// --- export and notifications ---------------------------------------------------------

const exportStatus = $('export-status')
const exportButton = $('export')
const exports = new ExportFlow({
  startUrl: config.paths.exports,
  statusUrl: config.paths.exportStatus,
  csrfToken: config.csrfToken,
  onChange: (exp) => {
    const shown = exportView(exp)
    exportStatus.hidden = false
    exportStatus.dataset.state = shown.state
    exportStatus.querySelector('progress').value = shown.progress
    exportStatus.querySelector('.export-status__text').textContent = shown.text
    const link = $('export-download')
    link.hidden = !shown.downloadUrl
    if (shown.downloadUrl) link.href = shown.downloadUrl
    exportButton.disabled = shown.state === 'pending' || shown.state === 'running'
  },
})
exportButton.addEventListener('click', () => exports.start())

/** A rename made anywhere: the heading, the rename field (unless being edited), the tab. */
function showTitle (title) {
  config.title = title
  document.title = `${title} — Palimpsest`
  const heading = document.querySelector('.doc-title')
  if (heading) heading.textContent = title
  const field = document.getElementById('doc-title')
  if (field && document.activeElement !== field) field.value = title
  editor.setOptions({}) // re-reads the editor's aria-label, which names the document
}

const notifications = new NotificationSocket(wsOrigin + config.paths.notifications, {
  documentId: config.document,
  onEvent: (event) => {
    exports.handle(event)
    // Set once the server watches the document for this page (tests wait for it).
    if (event.type === 'watching' && event.document === config.document) root.dataset.watching = 'true'
    const title = renamedTitle(event, config.document)
    if (title !== null) showTitle(title)
    const toast = toastFor(event, { documentId: config.document, namesOf: (ids) => clientNames.namesOf(ids) })
    if (toast) showToast(toasts, toast)
  },
})
if (navigator.onLine) notifications.connect()

// --- history -----------------------------------------------------------------------------

const api = `/api/docs/${config.document}`
const historySection = $('history')
const historyToggle = $('history-toggle')
const historyView = historySection.querySelector('[data-history-view]')
let viewEditor = null
let viewDoc = null

/** Show a Yjs state read-only, with the live editor's extensions and styles. */
function renderState (update, seq) {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  viewEditor?.destroy()
  viewDoc?.destroy()
  viewDoc = doc
  viewEditor = new Editor({
    element: historyView,
    editable: false,
    extensions: [
      StarterKit.configure({ undoRedo: false, link: { openOnClick: false } }),
      Collaboration.configure({ document: doc, field: 'default' }),
      ShowAuthors.configure({ fragment: () => doc.getXmlFragment('default'), shared: () => shownAuthors }),
    ],
    editorProps: {
      attributes: { 'aria-label': `${config.title} after edit ${seq} (read only)`, class: 'prose' },
    },
  })
  historyView.dataset.seq = String(seq)
}

/** A same-origin GET that throws unless the server answered 2xx. */
async function fetchOk (url) {
  const response = await fetch(url, { credentials: 'same-origin' })
  if (!response.ok) throw new Error(`the server answered ${response.status}`)
  return response
}

async function fetchJson (url) {
  return (await fetchOk(url)).json()
}

const historyPanel = new HistoryPanel({
  slider: $('history-slider'),
  info: $('history-info'),
  playButton: $('history-play'),
  render: renderState,
  fetchState: async (seq) => {
    const response = await fetchOk(`${api}/state${seq === null ? '' : `?at=${seq}`}`)
    return {
      update: new Uint8Array(await response.arrayBuffer()),
      seq: Number(response.headers.get('X-Seq')),
      head: Number(response.headers.get('X-Head')),
    }
  },
  fetchEdit: async (seq) => (await fetchJson(`${api}/history?after=${seq - 1}&limit=1`)).events[0] ?? null,
  fetchHead: async () => (await fetchJson(`${api}/history?after=${historyPanel.head}&limit=1`)).head,
})
$('history-play').addEventListener('click', () => (historyPanel.playing === null ? historyPanel.play() : historyPanel.pause()))
historyToggle.addEventListener('click', () => {
  const opening = historySection.hidden
  historySection.hidden = !opening
  historyToggle.setAttribute('aria-expanded', String(opening))
  if (opening) {
    historyPanel.open().catch((error) => historyPanel.fail(error))
    showVersions().catch((error) => { $('versions').textContent = `Could not list them: ${error.message}` })
  } else {
    $('history-diff-view').hidden = true
    historyPanel.close()
    viewEditor?.destroy()
    viewDoc?.destroy()
    viewEditor = viewDoc = null
  }
})

// --- versions, restore, diff ---------------------------------------------------------------

const viewedSeq = () => Number($('history-slider').value)

async function sendJson (url, body) {
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRFToken': config.csrfToken },
    body: JSON.stringify(body),
  })
  const answer = await response.json().catch(() => ({}))
  if (!response.ok) throw new Error(answer.detail || `the server answered ${response.status}`)
  return answer
}

/** The named versions, each a button that shows it. */
async function showVersions () {
  const list = $('versions')
  const versions = await fetchJson(`${api}/versions`)
  list.replaceChildren()
  for (const version of versions) {
    const item = document.createElement('li')
    item.dataset.versionSeq = String(version.seq)
    const jump = document.createElement('button')
    jump.type = 'button'
    jump.className = 'button button--quiet'
    jump.textContent = version.label
    jump.addEventListener('click', () => {
      $('history-slider').value = String(version.seq)
      historyPanel.show(version.seq).catch((error) => historyPanel.fail(error))
    })
    const about = document.createElement('span')
    about.className = 'muted'
    about.textContent = `edit ${version.seq}${version.created_by ? `, named by ${version.created_by}` : ''}`
    item.append(jump, about)
    list.append(item)
  }
  if (!versions.length) list.textContent = 'None yet.'
}

/** What changed from the viewed edit to now, each insertion and deletion in its author's colour. */
async function showDiff () {
  const box = $('history-diff-view')
  box.hidden = false
  box.textContent = 'Comparing…'
  if (!shownAuthors.authors.size) await loadAuthors()
  const colours = new Map([...shownAuthors.authors.values()].map((a) => [a.author, a.color]))
  const diff = await fetchJson(`${api}/diff?from=${viewedSeq()}`)
  box.replaceChildren()
  const heading = document.createElement('p')
  heading.className = 'muted'
  heading.textContent = `From edit ${diff.from} to edit ${diff.to} (now):`
  box.append(heading)
  for (const change of diff.changes) {
    const node = document.createElement(change.op === 'insert' ? 'ins' : change.op === 'delete' ? 'del' : 'span')
    node.textContent = change.text
    if (change.op !== 'equal') {
      node.dataset.author = change.author ?? ''
      node.style.setProperty('--author', colours.get(change.author) ?? '#6b7280')
      node.title = `${change.op === 'insert' ? 'added' : 'deleted'} by ${change.author ?? 'a deleted account'}`
    }
    box.append(node)
  }
}

// A comparison is of the edit it was made from: moving the slider puts it away.
$('history-slider').addEventListener('input', () => { $('history-diff-view').hidden = true })
$('history-diff').addEventListener('click', () => showDiff().catch((error) => { $('history-diff-view').textContent = `Could not compare: ${error.message}` }))

const nameForm = $('version-name')
if (nameForm) {
  nameForm.addEventListener('submit', async (event) => {
    event.preventDefault()
    const label = nameForm.elements.label.value.trim()
    try {
      await sendJson(`${api}/versions`, { seq: viewedSeq(), label })
      nameForm.reset()
      showToast(toasts, { text: `Named edit ${viewedSeq()} “${label}”.`, kind: 'success' })
      await showVersions()
    } catch (error) {
      showToast(toasts, { text: `Could not name it: ${error.message}`, kind: 'error' })
    }
  })
  const confirm = $('restore-confirm')
  $('history-restore').addEventListener('click', () => { confirm.hidden = false })
  $('restore-no').addEventListener('click', () => { confirm.hidden = true })
  $('restore-yes').addEventListener('click', async () => {
    confirm.hidden = true
    const seq = viewedSeq()
    try {
      const answer = await sendJson(`${api}/restore`, { seq })
      const text = answer.seq === null ? `The document already is as it was after edit ${seq}.` : `Restored the document as it was after edit ${seq}.`
      showToast(toasts, { text, kind: 'success' })
    } catch (error) {
      showToast(toasts, { text: `Could not restore: ${error.message}`, kind: 'error' })
    }
  })
}

// --- show authors ------------------------------------------------------------------------

const authorsSwitch = $('show-authors')
const legend = $('authors-legend')
let authorsLoading = null
let authorsLoadedAt = 0

/** Fetch who writes under each client id (again at most once a second, as new ids appear). */
function loadAuthors () {
  if (authorsLoading || Date.now() - authorsLoadedAt < 1000) return authorsLoading
  authorsLoading = fetchJson(`${api}/authors`)
    .then((entries) => {
      for (const entry of entries) shownAuthors.authors.set(entry.client_id, entry)
      authorsLoadedAt = Date.now()
      showAuthors()
    })
    .catch((error) => showToast(toasts, { text: `Could not load the authors: ${error.message}`, kind: 'error' }))
    .finally(() => { authorsLoading = null })
  return authorsLoading
}

/** Colour (or uncolour) both editors and list the authors present. */
function showAuthors () {
  refreshAuthors(editor)
  refreshAuthors(viewEditor)
  legend.replaceChildren()
  legend.hidden = !shownAuthors.enabled
  if (!shownAuthors.enabled) return
  const runs = authorRuns(ydoc.getXmlFragment('default'), editor.state.doc)
  for (const { author, color } of legendEntries(runs, shownAuthors.authors)) {
    const item = document.createElement('li')
    item.dataset.legendAuthor = author
    const swatch = document.createElement('span')
    swatch.className = 'swatch'
    swatch.style.background = color
    item.append(swatch, document.createTextNode(author))
    legend.append(item)
  }
}

authorsSwitch.addEventListener('click', async () => {
  shownAuthors.enabled = authorsSwitch.getAttribute('aria-checked') !== 'true'
  authorsSwitch.setAttribute('aria-checked', String(shownAuthors.enabled))
  if (shownAuthors.enabled) await loadAuthors()
  showAuthors()
})

renderConnection()
renderSaved()
