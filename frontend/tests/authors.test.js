import { test } from 'node:test'
import assert from 'node:assert/strict'

import { getSchema } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import { yXmlFragmentToProseMirrorRootNode } from '@tiptap/y-tiptap'
import * as Y from 'yjs'

import { authorRuns, legendEntries } from '../src/authors.js'

const schema = getSchema([StarterKit])

function typed (doc, fragment, text, { paragraph = null } = {}) {
  doc.transact(() => {
    if (paragraph === null) {
      const element = new Y.XmlElement('paragraph')
      element.insert(0, [new Y.XmlText(text)])
      fragment.push([element])
    } else {
      const ytext = fragment.get(paragraph).get(0)
      ytext.insert(ytext.length, text)
    }
  })
}

test('each run of text is credited to the client id that wrote it, at its ProseMirror place', () => {
  const alice = new Y.Doc()
  alice.clientID = 11
  const fragment = alice.getXmlFragment('default')
  typed(alice, fragment, 'Alice here.')
  const bob = new Y.Doc()
  bob.clientID = 22
  Y.applyUpdate(bob, Y.encodeStateAsUpdate(alice))
  const bobFragment = bob.getXmlFragment('default')
  typed(bob, bobFragment, ' And bob.', { paragraph: 0 })
  typed(bob, bobFragment, 'Bob alone.')
  const pm = yXmlFragmentToProseMirrorRootNode(bobFragment, schema)
  const runs = authorRuns(bobFragment, pm)
  const texts = runs.map((run) => [run.client, pm.textBetween(run.from, run.to)])
  assert.deepEqual(texts, [[11, 'Alice here.'], [22, ' And bob.'], [22, 'Bob alone.']])

  const authors = new Map([[11, { author: 'alice', color: '#111' }], [22, { author: 'bob', color: '#222' }]])
  assert.deepEqual(legendEntries(runs, authors), [{ author: 'alice', color: '#111' }, { author: 'bob', color: '#222' }])
})

test('deleted text is skipped, and a document of another shape is left uncoloured', () => {
  const doc = new Y.Doc()
  doc.clientID = 5
  const fragment = doc.getXmlFragment('default')
  typed(doc, fragment, 'keep this')
  doc.transact(() => fragment.get(0).get(0).delete(0, 5))
  typed(doc, fragment, 'after')
  const pm = yXmlFragmentToProseMirrorRootNode(fragment, schema)
  const runs = authorRuns(fragment, pm)
  assert.deepEqual(runs.map((run) => pm.textBetween(run.from, run.to)), ['this', 'after'])

  // A ProseMirror document that is not this tree's rendering (its first text is longer).
  const other = new Y.Doc()
  const otherFragment = other.getXmlFragment('default')
  typed(other, otherFragment, 'something else entirely')
  const elsewhere = yXmlFragmentToProseMirrorRootNode(otherFragment, schema)
  assert.deepEqual(authorRuns(fragment, elsewhere), [])
})
