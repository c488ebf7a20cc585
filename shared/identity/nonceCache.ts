/**
 * Remembers recently seen nonces per client so a captured message cannot be replayed.
 * Bounded per client (oldest forgotten first); messages are also bound to the current round and to a
 * timestamp window at authentication, so a forgotten nonce is not replayable in practice.
 */
export class NonceCache {
  private readonly seen = new Map<string, Set<string>>();

  constructor(
    private readonly perClient = 8_192,
    private readonly maxClients = 200_000,
  ) {}

  /** Returns false if the nonce was already used by this client; otherwise records it. */
  checkAndRemember(clientId: string, nonce: string): boolean {
    let set = this.seen.get(clientId);
    if (!set) {
      if (this.seen.size >= this.maxClients) this.seen.delete(this.seen.keys().next().value as string);
      set = new Set();
      this.seen.set(clientId, set);
    }
    if (set.has(nonce)) return false;
    if (set.size >= this.perClient) set.delete(set.values().next().value as string);
    set.add(nonce);
    return true;
  }
}
