import { test } from 'node:test'
import assert from 'node:assert/strict'

import { ExportFlow, exportView, newer } from '../src/exporter.js'

const running = (progress) => ({ id: 'e1', status: 'running', progress, stage: 'laying out' })
const done = { id: 'e1', status: 'done', progress: 100, download_url: '/api/exports/e1/file' }

test('a late progress event never undoes a finished export', () => {
  assert.equal(newer(done, running(50)), done)
  assert.equal(newer(running(50), done), done)
  assert.deepEqual(newer(running(50), running(30)), running(50))
  assert.deepEqual(newer(running(30), running(50)), running(50))
})

test('views say what is happening', () => {
  assert.deepEqual(exportView(running(30)), { state: 'running', progress: 30, text: 'Laying out… 30%', downloadUrl: null })
  assert.equal(exportView(done).downloadUrl, '/api/exports/e1/file')
  const failed = exportView({ id: 'e1', status: 'failed', progress: 30, error: 'too large' })
  assert.equal(failed.state, 'failed')
  assert.match(failed.text, /too large/)
  assert.equal(exportView({ status: 'running', progress: 400 }).progress, 100)
})

function response (status, body) {
  return { status, ok: status < 400, json: async () => body }
}

test('start posts with the CSRF token, then follows events and polls until final', async () => {
  const calls = []
  const answers = [response(202, { id: 'e1', status: 'pending', progress: 0 }), response(200, done)]
  const seen = []
  const flow = new ExportFlow({
    startUrl: '/api/docs/d/exports',
    statusUrl: '/api/exports/',
    csrfToken: 'tok',
    pollMs: 1,
    onChange: (exp) => seen.push(exp.status),
    fetchImpl: async (url, init) => { calls.push([url, init]); return answers.shift() },
  })
  await flow.start()
  assert.equal(calls[0][1].headers['X-CSRFToken'], 'tok')
  assert.equal(calls[0][1].method, 'POST')
  flow.handle({ type: 'export.progress', export: running(30) })
  flow.handle({ type: 'export.progress', export: { ...running(99), id: 'other' } }) // not ours
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(calls[1][0], '/api/exports/e1')
  assert.deepEqual(seen, ['pending', 'pending', 'running', 'done'])
  assert.equal(flow.current.status, 'done')
})

test('a refused start shows the server reason', async () => {
  const flow = new ExportFlow({
    startUrl: '/x', statusUrl: '/y/', csrfToken: 't', onChange: () => {},
    fetchImpl: async () => response(400, { detail: 'the document has 3000000 characters; exports take at most 2000000' }),
  })
  await flow.start()
  assert.equal(flow.current.status, 'failed')
  assert.match(exportView(flow.current).text, /at most 2000000/)
})
