import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'

import { STEP1, STEP2, SaveTracker, syncMessageType, trackingWebSocket } from '../src/saved.js'

/** A y-websocket sync frame: 0, then the sync message written by y-protocols. */
function syncFrame (write) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 0)
  write(encoder)
  return encoding.toUint8Array(encoder)
}
const step1 = (doc) => syncFrame((e) => syncProtocol.writeSyncStep1(e, doc))
const step2 = (doc) => syncFrame((e) => syncProtocol.writeSyncStep2(e, doc))
const update = (bytes) => syncFrame((e) => syncProtocol.writeUpdate(e, bytes))

/** Stands in for the browser's WebSocket: records sends, lets the test deliver events. */
class FakeSocket extends EventTarget {
  constructor (url) {
    super()
    this.url = url
    this.readyState = 0
    this.frames = []
  }

  send (data) { this.frames.push(data) }
  deliver (type, data) {
    if (type === 'open') this.readyState = 1
    if (type === 'close') this.readyState = 3
    const event = new Event(type)
    event.data = data
    this.dispatchEvent(event)
  }
}

test('frames are classified by their sync message type', () => {
  const doc = new Y.Doc()
  assert.equal(syncMessageType(step1(doc)), STEP1)
  assert.equal(syncMessageType(step2(doc).buffer), STEP2)
  assert.equal(syncMessageType(update(Y.encodeStateAsUpdate(doc))), syncProtocol.messageYjsUpdate)
  assert.equal(syncMessageType(new Uint8Array([1, 0])), null) // awareness
  assert.equal(syncMessageType(new Uint8Array([])), null) // truncated
})

test('an answer confirms only the edits sent before the question', () => {
  const doc = new Y.Doc()
  const tracker = new SaveTracker()
  tracker.opened()
  tracker.sent(step1(doc)) // the provider's own SyncStep1 on open
  tracker.sent(step2(doc)) // our answer to the server's SyncStep1: everything local is out
  tracker.edited()
  tracker.edited()
  assert.equal(tracker.unsaved, true)
  tracker.received(step2(doc)) // answers the provider's SyncStep1, sent before the edits
  assert.equal(tracker.unsaved, true)
  tracker.sent(step1(doc)) // asks about both edits
  tracker.edited() // a third edit after the question
  tracker.received(step2(doc))
  assert.equal(tracker.confirmed, 2)
  assert.equal(tracker.unsaved, true)
  tracker.sent(step1(doc))
  tracker.received(step2(doc))
  assert.equal(tracker.unsaved, false)
})

test('offline edits are not confirmed until our SyncStep2 has carried them', () => {
  const doc = new Y.Doc()
  const tracker = new SaveTracker()
  tracker.edited() // typed while offline
  tracker.opened()
  tracker.sent(step1(doc)) // on open, before the server's SyncStep1 arrives
  tracker.received(step2(doc)) // its answer: says nothing about the offline edit
  assert.equal(tracker.unsaved, true)
  tracker.sent(step2(doc)) // the offline edit goes out
  tracker.sent(step1(doc))
  tracker.received(step2(doc))
  assert.equal(tracker.unsaved, false)
})

test('a closed socket forgets its questions; the next socket must ask again', () => {
  const doc = new Y.Doc()
  const tracker = new SaveTracker()
  tracker.opened()
  tracker.sent(step2(doc))
  tracker.edited()
  tracker.sent(step1(doc))
  tracker.closed()
  tracker.opened()
  tracker.sent(step1(doc)) // not yet sent everything on this socket
  tracker.received(step2(doc))
  assert.equal(tracker.unsaved, true)
})

test('the tracking socket asks for confirmation after answering the server', async () => {
  const doc = new Y.Doc()
  const server = new Y.Doc()
  const tracker = new SaveTracker()
  const Socket = trackingWebSocket(tracker, doc, FakeSocket)
  const socket = new Socket('ws://example/ws/docs/x')
  // The provider sets on* handlers after construction; emulate it answering SyncStep1.
  socket.onmessage = (event) => {
    if (syncMessageType(event.data) === STEP1) socket.send(step2(doc))
  }
  socket.addEventListener('message', (event) => socket.onmessage(event))
  socket.deliver('open')
  socket.send(step1(doc)) // the provider's own on open
  doc.getText('t').insert(0, 'offline')
  tracker.edited()
  socket.deliver('message', step1(server).buffer)
  await new Promise((resolve) => setTimeout(resolve, 5))
  const types = socket.frames.map(syncMessageType)
  assert.deepEqual(types, [STEP1, STEP2, STEP1]) // provider's step1, its answer, our question
  socket.deliver('message', step2(server).buffer) // answers the provider's step1
  assert.equal(tracker.unsaved, true)
  socket.deliver('message', step2(server).buffer) // answers ours
  assert.equal(tracker.unsaved, false)
})

test('confirm sends nothing on a socket that is not open', () => {
  const tracker = new SaveTracker()
  const Socket = trackingWebSocket(tracker, new Y.Doc(), FakeSocket)
  const socket = new Socket('ws://example')
  socket.confirm()
  assert.deepEqual(socket.frames, [])
})

test('the server\'s permission-denied message is read with its reason', async () => {
  const { permissionDenied } = await import('../src/saved.js')
  const encoding = await import('lib0/encoding')
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 2) // y-protocols' auth message
  encoding.writeVarUint(encoder, 0) // permission denied
  encoding.writeVarString(encoder, 'your role is now viewer')
  assert.equal(permissionDenied(encoding.toUint8Array(encoder)), 'your role is now viewer')
  assert.equal(permissionDenied(new Uint8Array([0, 1, 0])), null, 'a sync frame is not one')
  assert.equal(permissionDenied(new Uint8Array([])), null)
})
