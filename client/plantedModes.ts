import type { AggregateAttack, SoloAttack } from './plantedBehaviour';
import type { ClientAggregationMode } from './updates/clientAggregationMode';
import { createPaillierClientMode } from './updates/paillier';
import { createSecAggClientMode } from './updates/secagg';
import { MODULUS } from '../shared/secagg';

const isAggregateAttack = (attack: SoloAttack): attack is AggregateAttack =>
  attack === 'overflow' || attack === 'negative-weight';

/**
 * Research only: the client half of a private mode as a client running modified code would run it,
 * for issue 13's attacks on the aggregate (plantedBehaviour.ts `AggregateAttack`). The SecAgg+ and
 * Paillier protocols run unchanged (keys, shares, signatures, ciphertexts are all well formed);
 * only what the attacker puts into the sum differs, which is all such a client can change.
 * - secagg `negative-weight`: after masking, subtracts k·q - 1 from its weight element (k = the
 *   cohort's clients, q = its own quantised ratio): with peers of its own size the cohort's summed
 *   weight falls to one quantisation step (issue 13's attack as filed).
 * - secagg `overflow`: after masking, adds 2^31 to every value: the revealed sum of each value moves by
 *   half the modulus, out of any range clipping allows.
 * - paillier `negative-weight`: encrypts the ratio -(minClients - 1)·ratio instead of its own (the
 *   encryptor's range clips it at -clipRange).
 * Every other combination is the stock half (undefined here): `overflow` under paillier is then
 * clipped by the attacker's own encryptor.
 */
export function plantedModeFor(attack: SoloAttack, modeName: string): ClientAggregationMode | undefined {
  if (!isAggregateAttack(attack)) return undefined;
  if (modeName === 'secagg') {
    return createSecAggClientMode({
      maskedVectorToSend: (masked, { params, clientIds, trained, context }) => {
        const out = Uint32Array.from(masked);
        const last = out.length - 1;
        if (attack === 'overflow') {
          for (let i = 0; i < last; i++) out[i] = (out[i] + 2 ** 31) % MODULUS;
          return out;
        }
        const spec = context.joined.spec;
        const maxWeight = spec.secureAggregation === 'secagg' ? spec.secagg.maxExampleWeight : 1;
        const own = Math.round((Math.min(trained.numExamples, maxWeight) / maxWeight) * params.quantizationRange);
        const cancel = Math.max(1, clientIds.length) * own - 1;
        out[last] = (out[last] + MODULUS - (cancel % MODULUS)) % MODULUS;
        return out;
      },
    });
  }
  if (modeName === 'paillier' && attack === 'negative-weight') {
    return createPaillierClientMode({
      vectorToEncrypt: (vector, { context }) => {
        const out = Float32Array.from(vector);
        out[out.length - 1] = -(Math.max(2, context.joined.spec.minClients) - 1) * vector[vector.length - 1];
        return out;
      },
    });
  }
  return undefined;
}
