// Bundles the browser app with esbuild into static/frontend/, where Django's staticfiles
// finds it, and prints each file's minified and gzipped size.
import { build } from 'esbuild'
import { readFileSync, rmSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
const outdir = path.join(here, 'static', 'frontend')

// Start empty, so a file an older build wrote is never collected and served.
rmSync(outdir, { recursive: true, force: true })

const result = await build({
  absWorkingDir: here,
  entryPoints: { editor: 'src/editor.js', app: 'src/app.css' },
  outdir,
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  sourcemap: 'linked',
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
})

for (const file of Object.keys(result.metafile.outputs).sort()) {
  if (file.endsWith('.map') || file.endsWith('.txt')) continue
  const bytes = readFileSync(path.join(here, file))
  const kib = (n) => (n / 1024).toFixed(1)
  console.log(`${path.basename(file)}: ${kib(bytes.length)} KiB minified, ${kib(gzipSync(bytes, { level: 9 }).length)} KiB gzipped`)
}
