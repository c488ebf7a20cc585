import { createHash } from 'node:crypto';
import { TributaryError } from '../errors';
import { expandMask } from './masks';
import { MAX_SHARES } from './shamir';

/** Client ids in SecAgg+ messages. */
export type ClientId = string;

/**
 * Checks SecAgg+'s graph parameters for n clients, k neighbours each and Shamir threshold t; throws
 * CONFIG_INVALID naming the rule that failed.
 * - 3 <= n; 2 <= k <= min(n - 1, 255) (each client shares its secrets among its k neighbours);
 * - k even, unless k = n - 1 (the complete graph): a Harary graph H(k, n) joins each node to k/2
 *   on each side of a ring;
 * - 2 <= t <= k, and 2t > k: a strict majority of a client's neighbours is needed to reconstruct
 *   its secrets, so a server cannot ask one half of them for the self-mask seed and the other half
 *   for the mask key (Bell et al. 2020, Section 3.3 / Bonawitz et al. 2017, Section 4).
 */
export function validateGraphParameters(n: number, k: number, t: number): void {
  const fail = (msg: string): never => {
    throw new TributaryError('CONFIG_INVALID', msg, { details: { clients: n, neighbours: k, threshold: t } });
  };
  if (!Number.isInteger(n) || n < 3) fail(`SecAgg+ needs at least 3 clients, got ${n}`);
  if (!Number.isInteger(k) || k < 2 || k > Math.min(n - 1, MAX_SHARES)) {
    fail(`neighbourCount must be an integer in [2, ${Math.min(n - 1, MAX_SHARES)}] for ${n} clients, got ${k}`);
  }
  if (k % 2 !== 0 && k !== n - 1) fail(`neighbourCount must be even (or n - 1 = ${n - 1}), got ${k}`);
  if (!Number.isInteger(t) || t < 2 || t > k) fail(`threshold must be an integer in [2, ${k}], got ${t}`);
  if (2 * t <= k) fail(`threshold must be more than half of neighbourCount (${k}), got ${t}`);
}

/** k = O(log n) as in Bell et al.: 2 * ceil(log2 n), capped at the complete graph. */
export function recommendedNeighbourCount(n: number): number {
  return Math.min(n - 1, 2 * Math.ceil(Math.log2(n)));
}

/** The smallest threshold allowed for k neighbours: a strict majority. */
export function recommendedThreshold(k: number): number {
  return Math.floor(k / 2) + 1;
}

/** A uniform integer in [0, bound) from a stream of uint32s, by rejection sampling. */
function uniform(stream: () => number, bound: number): number {
  const limit = Math.floor(2 ** 32 / bound) * bound;
  for (;;) {
    const v = stream();
    if (v < limit) return v % bound;
  }
}

/**
 * SecAgg+'s communication graph: a Harary graph H(k, n) over a pseudorandom permutation of the
 * clients (Bell et al. 2020, Section 3.2 / Flower's SecAgg+). Deterministic from the round's graph
 * seed and the client set (order of `clientIds` does not matter), so every client and the server
 * compute the same graph. Symmetric; every client has exactly k neighbours; never itself.
 */
export function neighbourGraph(
  graphSeed: string,
  clientIds: readonly ClientId[],
  k: number,
): Map<ClientId, ClientId[]> {
  const ids = [...clientIds].sort();
  const n = ids.length;
  if (new Set(ids).size !== n) throw new TributaryError('CONFIG_INVALID', 'client ids must be distinct');
  if (!Number.isInteger(k) || k < 2 || k > n - 1 || (k % 2 !== 0 && k !== n - 1)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `neighbourCount must be even and in [2, ${n - 1}] (or ${n - 1}), got ${k}`,
    );
  }
  // Permutation: Fisher-Yates driven by a ChaCha20 stream keyed by H(domain, seed, ids).
  const key = createHash('sha256')
    .update('tributary/secagg+/v1/graph\0')
    .update(graphSeed, 'utf8')
    .update('\0')
    .update(ids.join('\0'), 'utf8')
    .digest();
  const words = expandMask(key, 4 * n + 64);
  let pos = 0;
  let block = 0;
  let buf = words;
  const stream = (): number => {
    if (pos === buf.length) {
      // Practically unreachable (rejection rate < 1/2 per draw); extend deterministically.
      block++;
      buf = expandMask(createHash('sha256').update(key).update(String(block)).digest(), 4 * n + 64);
      pos = 0;
    }
    return buf[pos++];
  };
  const ring = ids.slice();
  for (let i = n - 1; i > 0; i--) {
    const j = uniform(stream, i + 1);
    [ring[i], ring[j]] = [ring[j], ring[i]];
  }
  const graph = new Map<ClientId, ClientId[]>();
  for (let p = 0; p < n; p++) {
    const neighbours: ClientId[] = [];
    if (k === n - 1) {
      for (let q = 0; q < n; q++) if (q !== p) neighbours.push(ring[q]);
    } else {
      for (let d = 1; d <= k / 2; d++) neighbours.push(ring[(p + d) % n], ring[(p - d + n) % n]);
    }
    graph.set(ring[p], neighbours.sort());
  }
  return graph;
}
