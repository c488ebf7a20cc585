import {
  generatePaillierKeys,
  createPackedPaillierParams,
  encryptVector,
  ciphertextWidth,
  ciphertextsToBytes,
  decryptSum,
  ciphertextsFromBytes,
} from '../../../shared/paillier';
import { codeOf, codeOfAsync } from '../../../test/support/codeOf';
import type { ClientLink } from '../../transport/clientDirectory';
import { KeyHolderRegistry } from './keyHolderRegistry';
import { PaillierAggregator } from './paillierAggregator';

jest.setTimeout(30_000);

describe('PaillierAggregator', () => {
  const manifest = [
    { name: 'w', shape: [3, 2] },
    { name: 'b', shape: [2] },
  ];
  const params = createPackedPaillierParams({ keyBits: 1024, clipRange: 1, maxClients: 4 });

  it("validates before multiplying, and splits the key holder's sums", async () => {
    const { publicKey, privateKey } = await generatePaillierKeys(1024);
    const width = ciphertextWidth(publicKey.n);
    const decrypt = jest.fn(async (a: { ciphertexts: Uint8Array; clientCount: number; length: number }) =>
      decryptSum(privateKey, ciphertextsFromBytes(a.ciphertexts, width), params, a.clientCount, a.length),
    );
    const agg = new PaillierAggregator(manifest, { params, n: publicKey.n, maxExampleWeight: 100, decrypt });
    const update = async (values: number[]) =>
      ciphertextsToBytes((await encryptVector(publicKey, values, params)).ciphertexts, width);
    const a = await update([0.1, -0.2, 0.3, 0, 0.5, -0.5, 0.25, 0.01, 0.5]);
    const b = await update([0.1, 0.2, -0.3, 0, 0.25, 0.5, -0.25, 0.02, 0.25]);
    expect(agg.maxUpdateBytes).toBe(a.length);
    expect(codeOf(() => agg.accept('x', a.subarray(width), 1))).toBe('PAILLIER_CIPHERTEXT_INVALID');
    expect(codeOf(() => agg.accept('x', new Uint8Array(a.length).fill(0xff), 1))).toBe('PAILLIER_CIPHERTEXT_INVALID');
    expect(codeOf(() => agg.accept('x', new Uint8Array(a.length), 1))).toBe('PAILLIER_CIPHERTEXT_INVALID');
    expect(codeOf(() => agg.accept('x', a, 7))).toBe('VALIDATION_FAILED');
    agg.accept('a', a, 1);
    expect(codeOf(() => agg.accept('a', b, 1))).toBe('ROUND_DUPLICATE_UPDATE');
    agg.accept('b', b, 1);
    const { sum: sums } = await agg.reveal();
    expect(decrypt).toHaveBeenCalledWith(expect.objectContaining({ clientCount: 2, length: 9 }));
    expect(sums.clientCount).toBe(2);
    // The decrypted ratios are scaled back to examples (× maxExampleWeight 100): one unit in every mode.
    expect(sums.totalWeight).toBeCloseTo(75, 1);
    expect([...sums.weightedDeltaSum[0]].map((v) => Number((v / 100).toFixed(3)))).toEqual([0.2, 0, 0, 0, 0.75, 0]);
    expect([...sums.weightedDeltaSum[1]].map((v) => Number((v / 100).toFixed(3)))).toEqual([0, 0.03]);
  });

  it('refuses a decrypted aggregate no honest clients produce: a hidden negative weight, or values beyond ±c·weight', async () => {
    const { publicKey, privateKey } = await generatePaillierKeys(1024);
    const width = ciphertextWidth(publicKey.n);
    const decrypt = async (a: { ciphertexts: Uint8Array; clientCount: number; length: number }) =>
      decryptSum(privateKey, ciphertextsFromBytes(a.ciphertexts, width), params, a.clientCount, a.length);
    const update = async (values: number[]) =>
      ciphertextsToBytes((await encryptVector(publicKey, values, params)).ciphertexts, width);
    const honestA = await update([0.1, -0.2, 0.3, 0, 0.5, -0.5, 0.25, 0.01, 0.5]);
    const honestB = await update([0.1, 0.2, -0.2, 0, 0.25, 0.1, -0.25, 0.02, 0.25]);
    const round = async (attacker: number[]) => {
      const agg = new PaillierAggregator(manifest, { params, n: publicKey.n, maxExampleWeight: 100, decrypt });
      agg.accept('a', honestA, 1);
      agg.accept('b', honestB, 1);
      agg.accept('x', await update(attacker), 1);
      return agg.reveal();
    };
    // Weight -0.74 cancels the honest 0.75 down to 0.01, below 3 clients x 1/100 examples.
    await expect(round([0, 0, 0, 0, 0, 0, 0, 0, -0.74])).rejects.toMatchObject({
      code: 'ROUND_AGGREGATE_INVALID',
      details: { what: 'summedWeight' },
    });
    // A plausible weight, but a value beyond what clipped deltas give: |0.1 + 0.1 + 1| > 1 x (0.75 + 0.01).
    await expect(round([1, 0, 0, 0, 0, 0, 0, 0, 0.01])).rejects.toMatchObject({
      code: 'ROUND_AGGREGATE_INVALID',
      details: { what: 'summedValue', index: 0 },
    });
    // An honest third client (values within ±ratio) passes.
    const ok = await round([0.2, 0, 0, 0, 0, 0, 0, 0, 0.2]);
    expect(ok.sum.totalWeight).toBeCloseTo(95, 1);
  });

  it('fails with PAILLIER_KEYHOLDER_UNAVAILABLE when no key holder answers in time', async () => {
    const registry = new KeyHolderRegistry();
    const request = { jobId: 'j', round: 1, attempt: 0, clientCount: 2, length: 3, ciphertexts: new Uint8Array(8) };
    expect(await codeOfAsync(() => registry.decrypt(request, 50))).toBe('PAILLIER_KEYHOLDER_UNAVAILABLE');
    const sent: unknown[] = [];
    const link = { clientId: 'k', send: (_e: string, p: unknown) => void sent.push(p) } as unknown as ClientLink;
    const pending = registry.decrypt(request, 2_000);
    registry.register('j', 'k', link);
    expect(sent).toHaveLength(1);
    expect(codeOf(() => registry.handleResult('other', 'j', 1, { attempt: 0, length: 3 }, new Uint8Array(12)))).toBe(
      'PAILLIER_NOT_KEY_HOLDER',
    );
    expect(codeOf(() => registry.handleResult('k', 'j', 1, { attempt: 1, length: 3 }, new Uint8Array(12)))).toBe(
      'ROUND_WRONG',
    );
    expect(codeOf(() => registry.handleResult('k', 'j', 1, { attempt: 0, length: 3 }, new Uint8Array(8)))).toBe(
      'VALIDATION_FAILED',
    );
    registry.handleResult('k', 'j', 1, { attempt: 0, length: 3 }, new Uint8Array(new Float32Array([1, 2, 3]).buffer));
    expect([...(await pending)]).toEqual([1, 2, 3]);
    const failed = registry.decrypt({ ...request, attempt: 1 }, 2_000);
    registry.handleResult('k', 'j', 1, { attempt: 1, length: 3, error: 'nope' }, undefined);
    expect(await codeOfAsync(() => failed)).toBe('PAILLIER_DECRYPT_FAILED');
  });
});
