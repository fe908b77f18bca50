import { test } from 'node:test'
import assert from 'node:assert/strict'

import { LABELS, connectionState } from '../src/connection.js'
import { renamedTitle, toastFor } from '../src/notifications.js'
import { ClientNames, presentUsers } from '../src/presence.js'
import { shortcutText } from '../src/toolbar.js'

test('one entry per user, you first, however many tabs', () => {
  const states = new Map([
    [1, { user: { name: 'bob', color: '#111' } }],
    [2, { user: { name: 'alice', color: '#222' } }],
    [3, { user: { name: 'bob', color: '#111' } }],
    [4, {}], // a client that has not said who it is yet
  ])
  const people = presentUsers(states, 3)
  assert.deepEqual(people.map((p) => [p.name, p.self, p.clients]), [['bob', true, [1, 3]], ['alice', false, [2]]])
})

test('names of departed clients are remembered for purge messages', () => {
  const names = new ClientNames()
  names.note(new Map([[7, { user: { name: 'carol' } }], [8, { user: { name: 'carol' } }]]))
  assert.deepEqual(names.namesOf([7, 8, 99]), ['carol'])
})

test('connection state: offline beats status; reconnecting only after a first connection', () => {
  const base = { status: 'connecting', online: true, everConnected: false, closed: false }
  assert.equal(connectionState(base), 'connecting')
  assert.equal(connectionState({ ...base, everConnected: true }), 'reconnecting')
  assert.equal(connectionState({ ...base, status: 'connected' }), 'connected')
  assert.equal(connectionState({ ...base, status: 'connected', online: false }), 'offline')
  assert.equal(connectionState({ ...base, closed: true }), 'closed')
  for (const state of ['connecting', 'connected', 'reconnecting', 'offline', 'closed']) assert.ok(LABELS[state])
})

test('toasts only for this document, naming purged collaborators', () => {
  const context = { documentId: 'd1', namesOf: (ids) => (ids.includes(5) ? ['bob'] : []) }
  assert.equal(toastFor({ type: 'export.done', export: { document: 'd2' } }, context), null)
  assert.equal(toastFor({ type: 'export.done', export: { document: 'd1' } }, context).kind, 'success')
  assert.match(toastFor({ type: 'export.failed', export: { document: 'd1', error: 'boom' } }, context).text, /boom/)
  assert.match(toastFor({ type: 'snapshot.compacted', document: 'd1', events_folded: 1000, upto_seq: 1200 }, context).text, /1000 edits/)
  assert.equal(toastFor({ type: 'snapshot.compacted', document: 'd2', events_folded: 1, upto_seq: 1 }, context), null)
  assert.match(toastFor({ type: 'session.purged', document: 'd1', clients: [5] }, context).text, /bob/)
  assert.match(toastFor({ type: 'session.purged', document: 'd1', clients: [6] }, context).text, /a collaborator/)
  assert.equal(toastFor({ type: 'export.progress', export: { document: 'd1' } }, context), null)
})

test('a rename of this document gives its new title and a toast naming who', () => {
  const context = { documentId: 'd1', namesOf: () => [] }
  const renamed = { type: 'document.renamed', document: 'd1', title: 'Road trip', by: 'alice' }
  assert.equal(renamedTitle(renamed, 'd1'), 'Road trip')
  assert.equal(renamedTitle({ ...renamed, document: 'd2' }, 'd1'), null)
  assert.equal(renamedTitle({ ...renamed, title: 42 }, 'd1'), null)
  assert.equal(renamedTitle({ type: 'export.done' }, 'd1'), null)
  assert.match(toastFor(renamed, context).text, /alice renamed the document to “Road trip”/)
  assert.equal(toastFor({ ...renamed, document: 'd2' }, context), null)
})

test('shortcuts are written the platform way', () => {
  assert.equal(shortcutText('Mod-Shift-Z', true), '⌘+Shift+Z')
  assert.equal(shortcutText('Mod-Alt-1', false), 'Ctrl+Alt+1')
})
