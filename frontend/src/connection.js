// The connection state a person sees, from the provider's socket status and the browser.

export const LABELS = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  closed: 'Disconnected',
}

/**
 * One of connecting, connected, reconnecting, offline, closed.
 * @param {{ status: string, online: boolean, everConnected: boolean, closed: boolean }} s
 *   status: the provider's last 'status' event; closed: the server refused the connection
 *   for good (a 44xx close code), which reconnecting would not fix.
 */
export function connectionState ({ status, online, everConnected, closed }) {
  if (closed) return 'closed'
  if (!online) return 'offline'
  if (status === 'connected') return 'connected'
  return everConnected ? 'reconnecting' : 'connecting'
}
