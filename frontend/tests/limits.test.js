import { test } from 'node:test'
import assert from 'node:assert/strict'

import { estimateUpdateBytes, megabytes, overLimit } from '../src/limits.js'

test('the estimate counts UTF-8 bytes, not characters, plus a cost per node', () => {
  assert.equal(estimateUpdateBytes('abc', 0), 3)
  assert.equal(estimateUpdateBytes('é😀', 0), 2 + 4)
  assert.equal(estimateUpdateBytes('', 10), 640)
})

test('content is over the limit before the server would refuse it', () => {
  const limit = 16 * 1024 * 1024
  assert.equal(overLimit(5_000_000, limit), false)
  assert.equal(overLimit(limit, limit), true)
  assert.equal(overLimit(limit - 100, limit), true, 'the message framing needs room too')
})

test('sizes read as megabytes', () => {
  assert.equal(megabytes(16 * 1024 * 1024), '16.0 MB')
})
