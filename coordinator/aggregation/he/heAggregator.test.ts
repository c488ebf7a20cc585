import { clipAndWeightUpdate } from '../../../shared/aggregation/weighting';
import { generateHeKeys, HE_PARAMETER_SETS, HeDecryptor, HeEncryptor, signedHeUpload } from '../../../shared/he';
import { generateIdentity } from '../../../shared/identity/keyPair';
import { SignatureVerifier } from '../../../shared/identity/signing';
import type { HeDecryptRequest } from '../../../shared/schemas/heMessages';
import { HeAggregator } from './heAggregator';

jest.setTimeout(120_000);

describe('HeAggregator', () => {
  const set = HE_PARAMETER_SETS['bgv-4096'];
  const params = { set, bits: 16, clipRange: 1 };
  const manifest = [{ name: 'w', shape: [4] }];
  const ref = { jobId: 'job1', round: 1, attempt: 0 };
  let encryptor: HeEncryptor;
  let decryptor: HeDecryptor;

  beforeAll(async () => {
    const keys = await generateHeKeys(set);
    encryptor = await HeEncryptor.create(set, keys.publicKey);
    decryptor = await HeDecryptor.create(set, keys.secretKey);
  });
  afterAll(() => {
    encryptor.delete();
    decryptor.delete();
  });

  /** One round: two honest clients (our own weighting) and a third client's vector, decrypted by an honest key holder. */
  async function round(third: number[]) {
    const aggregator = new HeAggregator(manifest, {
      params,
      maxExampleWeight: 100,
      ref,
      selected: [],
      verifier: new SignatureVerifier(),
      keyHolderSums: false,
      decrypt: async (request: HeDecryptRequest) =>
        decryptor.decryptSum(request.ciphertexts, params, request.contributions.length, request.length).sums,
    });
    const honest = [
      clipAndWeightUpdate([0.1, -0.2, 0.3, 0], 50, 100, 1).values,
      clipAndWeightUpdate([0.2, 0.1, -0.1, 0.05], 25, 100, 1).values,
    ];
    for (const values of [...honest, Float32Array.from(third)]) {
      const client = generateIdentity();
      const upload = signedHeUpload(client, ref, encryptor.encrypt(values, params).ciphertexts);
      aggregator.accept(client.clientId, upload, 1);
    }
    return aggregator.reveal();
  }

  it('refuses a decrypted sum no honest clients produce: a negative weight hidden in the ciphertexts, or values beyond ±c·weight', async () => {
    // Weight -0.74 cancels the honest 0.75 to 0.01 (below 3 clients × 1/100): the division would amplify 75-fold.
    await expect(round([0, 0, 0, 0, -0.74])).rejects.toMatchObject({
      code: 'ROUND_AGGREGATE_INVALID',
      details: { what: 'summedWeight' },
    });
    // A plausible weight, but a value no clipped delta gives: |0.05 + 0.05 + 1| > 1 × (0.75 + 0.01).
    await expect(round([1, 0, 0, 0, 0.01])).rejects.toMatchObject({
      code: 'ROUND_AGGREGATE_INVALID',
      details: { what: 'summedValue', index: 0 },
    });
    // A third honest client passes, and the sums come back in examples.
    const ok = await round(Array.from(clipAndWeightUpdate([0.4, 0, 0, 0], 10, 100, 1).values));
    expect(ok.sum.clientCount).toBe(3);
    expect(ok.sum.totalWeight).toBeCloseTo(85, 1);
    expect(ok.sum.weightedDeltaSum[0][0]).toBeCloseTo(0.1 * 50 + 0.2 * 25 + 0.4 * 10, 1);
  });
});
