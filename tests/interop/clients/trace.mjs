// Sequential editing traces (josephg/editing-traces format): loading and code-point handling.
import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'

/**
 * @typedef {[number, number, string]} Patch  [UTF-16 position, UTF-16 delete length, inserted text]
 * @typedef {{ txns: Patch[][], expected: string }} PreparedTrace
 */

/**
 * Count the astral (surrogate-pair) characters in `text`.
 * @param {string} text
 * @returns {number}
 */
function countAstral (text) {
  let count = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0xD800 && code <= 0xDBFF) count++
  }
  return count
}

/**
 * The UTF-16 index in `text` of code point number `cpPos`, scanning from `fromIndex`.
 * @param {string} text
 * @param {number} cpPos
 * @param {number} [fromIndex]
 * @returns {number}
 */
function utf16Index (text, cpPos, fromIndex = 0) {
  let index = fromIndex
  for (let cp = 0; cp < cpPos; cp++) {
    const code = text.charCodeAt(index)
    index += code >= 0xD800 && code <= 0xDBFF ? 2 : 1
  }
  return index
}

/**
 * Read a gzipped sequential trace and convert its first `limit` transactions to UTF-16
 * patches, computing the text they produce.
 * @param {string} path
 * @param {number} [limit]
 * @returns {PreparedTrace}
 */
export function loadTrace (path, limit = Infinity) {
  const trace = JSON.parse(gunzipSync(readFileSync(path)).toString('utf8'))
  let text = trace.startContent ?? ''
  let astral = countAstral(text)
  const txns = []
  for (const txn of trace.txns.slice(0, Math.min(limit, trace.txns.length))) {
    const patches = []
    for (const [pos, del, ins] of txn.patches) {
      const start = astral === 0 ? pos : utf16Index(text, pos)
      const end = astral === 0 ? pos + del : utf16Index(text, del, start)
      astral += countAstral(ins) - countAstral(text.slice(start, end))
      text = text.slice(0, start) + ins + text.slice(end)
      patches.push([start, end - start, ins])
    }
    txns.push(patches)
  }
  if (txns.length === trace.txns.length && trace.endContent !== undefined && text !== trace.endContent) {
    throw new Error(`trace ${path}: replaying the patches does not give endContent`)
  }
  return { txns, expected: text }
}
