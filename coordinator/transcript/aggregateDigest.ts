import { createHash } from 'node:crypto';
import type { AggregatedUpdates } from '../strategy/strategy';

/** Domain tag of the aggregate digest. */
export const AGGREGATE_DIGEST_DOMAIN = 'tributary/aggregate/v1';

/**
 * SHA-256 (hex) of a round's revealed sum: the domain tag, a JSON header `{clientCount, lengths,
 * totalWeight}` and a zero byte, then every tensor's Σ w_i·Δ_i as float64 little-endian, in manifest
 * order. Hashed in place (no copy of the sum). Whoever later holds the same sum (the Paillier key
 * holder that decrypted it, an arbiter given it) can check it is the one the transcript names; the sum
 * itself is never published.
 */
export function aggregateDigest(sum: AggregatedUpdates): string {
  const header = JSON.stringify({
    clientCount: sum.clientCount,
    lengths: sum.weightedDeltaSum.map((t) => t.length),
    totalWeight: sum.totalWeight,
  });
  const hash = createHash('sha256')
    .update(`${AGGREGATE_DIGEST_DOMAIN}\n${header}`, 'utf8')
    .update(Buffer.from([0]));
  for (const tensor of sum.weightedDeltaSum) {
    hash.update(littleEndianView(tensor));
  }
  return hash.digest('hex');
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The float64 values' bytes in little-endian order (a view on little-endian hosts, a swapped copy otherwise). */
function littleEndianView(values: Float64Array): Uint8Array {
  if (littleEndianHost) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat64(i * 8, values[i], true);
  return out;
}
