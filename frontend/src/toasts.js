// Short messages in a corner; errors stay until dismissed, others fade after a few seconds.

/** Show `toast` ({ text, kind }) in `container`; returns its element. */
export function showToast (container, { text, kind = 'info' }, timeoutMs = 6000) {
  const element = document.createElement('div')
  element.className = `toast toast--${kind}`
  element.setAttribute('role', kind === 'error' ? 'alert' : 'status')
  const message = document.createElement('span')
  message.textContent = text
  const close = document.createElement('button')
  close.type = 'button'
  close.className = 'toast__close'
  close.setAttribute('aria-label', 'Dismiss')
  close.textContent = '×'
  close.addEventListener('click', () => element.remove())
  element.append(message, close)
  container.append(element)
  if (kind !== 'error') setTimeout(() => element.remove(), timeoutMs)
  return element
}
