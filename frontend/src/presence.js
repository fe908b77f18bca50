// Who is here, from the awareness states the provider holds: one entry per user, however
// many tabs they have open.

/**
 * People in `states` (awareness client id → state), sorted by name, you first.
 * @param {Map<number, any>} states
 * @param {number} selfClientId
 * @returns {{ name: string, color: string, self: boolean, clients: number[] }[]}
 */
export function presentUsers (states, selfClientId) {
  const byName = new Map()
  for (const [clientId, state] of states) {
    const user = state && state.user
    if (!user || typeof user.name !== 'string' || user.name === '') continue
    let entry = byName.get(user.name)
    if (!entry) {
      entry = { name: user.name, color: String(user.color || ''), self: false, clients: [] }
      byName.set(user.name, entry)
    }
    entry.clients.push(clientId)
    if (clientId === selfClientId) entry.self = true
  }
  return [...byName.values()].sort((a, b) =>
    a.self !== b.self ? (a.self ? -1 : 1) : a.name.localeCompare(b.name))
}

/**
 * Remembers which user each awareness client id belonged to, so an event naming client
 * ids (a purged session) can name people after their carets are gone.
 */
export class ClientNames {
  constructor () { this.names = new Map() }

  /** Note the names in `states`. */
  note (states) {
    for (const [clientId, state] of states) {
      if (state && state.user && typeof state.user.name === 'string') {
        this.names.set(clientId, state.user.name)
      }
    }
  }

  /** The distinct names of `clientIds` that were seen, sorted. */
  namesOf (clientIds) {
    const found = new Set()
    for (const id of clientIds) {
      const name = this.names.get(id)
      if (name) found.add(name)
    }
    return [...found].sort()
  }
}
