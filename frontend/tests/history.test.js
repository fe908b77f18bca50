import { test } from 'node:test'
import assert from 'node:assert/strict'

import { HistoryPanel, Latest, describeEdit, replayStep } from '../src/history.js'

class FakeSlider extends EventTarget {
  constructor () { super(); this.value = '0'; this.max = '0'; this.attributes = {} }
  setAttribute (name, value) { this.attributes[name] = value }
}

function panel (states, { head = 10 } = {}) {
  const shown = []
  const timers = []
  const slider = new FakeSlider()
  const playButton = { textContent: 'Play', setAttribute () {} }
  const info = { textContent: '' }
  const history = new HistoryPanel({
    slider,
    info,
    playButton,
    render: (update, seq) => shown.push(seq),
    fetchState: (seq) => states(seq ?? head),
    fetchEdit: async (seq) => ({ actor: 'alice', kind: 'update', created_at: null, seq }),
    fetchHead: async () => head + 5,
    setTimer: (fn) => { timers.push(fn); return timers.length - 1 },
    clearTimer: (id) => { timers[id] = null },
  })
  return { history, slider, info, shown, timers }
}

test('a replay takes about ten seconds whatever the log length', () => {
  assert.equal(replayStep(50), 1)
  assert.equal(replayStep(137_154), 1372)
  assert.ok(replayStep(137_154) * 100 >= 137_154)
})

test('the line says which edit, by whom', () => {
  assert.equal(describeEdit(0, 7, null), 'Before the first edit (of 7)')
  assert.match(describeEdit(3, 7, { actor: 'bob', kind: 'update' }), /^Edit 3 of 7, by bob/)
  assert.match(describeEdit(3, 7, { actor: null, kind: 'restore' }), /restored by a deleted account/)
})

test('only the newest of overlapping loads is shown', async () => {
  const latest = new Latest()
  const first = latest.start()
  const second = latest.start()
  assert.equal(latest.isLatest(first), false)
  assert.equal(latest.isLatest(second), true)

  let release
  const slow = new Promise((resolve) => { release = resolve })
  const { history, shown } = panel((seq) => (seq === 2 ? slow.then(() => ({ update: 'u', seq, head: 10 })) : Promise.resolve({ update: 'u', seq, head: 10 })))
  const stale = history.show(2)
  await history.show(5)
  release()
  await stale
  assert.deepEqual(shown, [5]) // the answer for 2 came last and was dropped
})

test('opening shows the head and keeps the slider end at it; play steps to the end', async () => {
  const { history, slider, info, shown, timers } = panel(async (seq) => ({ update: 'u', seq, head: 10 }))
  await history.open()
  assert.equal(slider.max, '10')
  assert.deepEqual(shown, [10])
  assert.match(info.textContent, /^Edit 10 of 10, by alice/)
  await timers[0]() // the head follower
  assert.equal(slider.max, '15')
  history.play()
  assert.equal(slider.value, '10') // not at the (new) end: plays on from here
  const tick = timers[timers.length - 1]
  for (let i = 0; i < 10 && history.playing !== null; i++) {
    tick()
    await new Promise((resolve) => setImmediate(resolve))
  }
  assert.equal(slider.value, '15')
  assert.equal(history.playing, null)
})
