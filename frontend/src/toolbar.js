// The formatting toolbar: each button runs a TipTap command and shows whether it is active.

const BUTTONS = [
  { label: 'Bold', text: 'B', shortcut: 'Mod-B', run: (c) => c.toggleBold(), active: (e) => e.isActive('bold') },
  { label: 'Italic', text: 'I', shortcut: 'Mod-I', run: (c) => c.toggleItalic(), active: (e) => e.isActive('italic') },
  { label: 'Underline', text: 'U', shortcut: 'Mod-U', run: (c) => c.toggleUnderline(), active: (e) => e.isActive('underline') },
  { label: 'Strikethrough', text: 'S', shortcut: 'Mod-Shift-S', run: (c) => c.toggleStrike(), active: (e) => e.isActive('strike') },
  { label: 'Code', text: '</>', shortcut: 'Mod-E', run: (c) => c.toggleCode(), active: (e) => e.isActive('code') },
  null,
  { label: 'Heading 1', text: 'H1', shortcut: 'Mod-Alt-1', run: (c) => c.toggleHeading({ level: 1 }), active: (e) => e.isActive('heading', { level: 1 }) },
  { label: 'Heading 2', text: 'H2', shortcut: 'Mod-Alt-2', run: (c) => c.toggleHeading({ level: 2 }), active: (e) => e.isActive('heading', { level: 2 }) },
  { label: 'Heading 3', text: 'H3', shortcut: 'Mod-Alt-3', run: (c) => c.toggleHeading({ level: 3 }), active: (e) => e.isActive('heading', { level: 3 }) },
  null,
  { label: 'Bulleted list', text: '•', shortcut: 'Mod-Shift-8', run: (c) => c.toggleBulletList(), active: (e) => e.isActive('bulletList') },
  { label: 'Numbered list', text: '1.', shortcut: 'Mod-Shift-7', run: (c) => c.toggleOrderedList(), active: (e) => e.isActive('orderedList') },
  { label: 'Quote', text: '❝', shortcut: 'Mod-Shift-B', run: (c) => c.toggleBlockquote(), active: (e) => e.isActive('blockquote') },
  { label: 'Code block', text: '{ }', shortcut: 'Mod-Alt-C', run: (c) => c.toggleCodeBlock(), active: (e) => e.isActive('codeBlock') },
  null,
  { label: 'Undo your last edit', text: '↶', shortcut: 'Mod-Z', run: (c) => c.undo(), active: null, enabled: (e) => e.can().undo() },
  { label: 'Redo', text: '↷', shortcut: 'Mod-Shift-Z', run: (c) => c.redo(), active: null, enabled: (e) => e.can().redo() },
]

const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform || '')

/** "Mod-Shift-Z" as this platform writes it. */
export function shortcutText (shortcut, mac = isMac) {
  return shortcut.replace('Mod', mac ? '⌘' : 'Ctrl').replace('Alt', mac ? '⌥' : 'Alt').replaceAll('-', '+')
}

/** Fill `container` with the toolbar for `editor` and keep it in step with the selection. */
export function mountToolbar (container, editor) {
  const entries = []
  for (const spec of BUTTONS) {
    if (spec === null) {
      const gap = document.createElement('span')
      gap.className = 'toolbar__gap'
      gap.setAttribute('role', 'separator')
      container.append(gap)
      continue
    }
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'toolbar__button'
    button.textContent = spec.text
    button.setAttribute('aria-label', spec.label)
    button.title = `${spec.label} (${shortcutText(spec.shortcut)})`
    // mousedown would move focus out of the editor and lose the selection the command needs.
    button.addEventListener('mousedown', (event) => event.preventDefault())
    button.addEventListener('click', () => spec.run(editor.chain().focus()).run())
    container.append(button)
    entries.push({ spec, button })
  }
  const refresh = () => {
    for (const { spec, button } of entries) {
      if (spec.active) button.setAttribute('aria-pressed', String(spec.active(editor)))
      if (spec.enabled) button.disabled = !spec.enabled(editor)
    }
  }
  editor.on('transaction', refresh)
  refresh()
  container.hidden = false
}
