import type { TributaryError } from '../../../shared/errors';
import { generateIdentity } from '../../../shared/identity/keyPair';
import { SignatureVerifier } from '../../../shared/identity/signing';
import {
  ciphertextDigest,
  ciphertextsFromBytes,
  ciphertextsToBytes,
  ciphertextWidth,
  createPackedPaillierParams,
  decryptSum,
  encryptVector,
  generatePaillierKeys,
  signSubmission,
  sumEncrypted,
} from '../../../shared/paillier';
import { clippedWithBit } from '../../../shared/aggregation/privateUpdate';
import type { UpdateCommitBody } from '../../../shared/schemas/messages';
import { codeOf, codeOfAsync } from '../../../test/support/codeOf';
import type { ClientLink } from '../../transport/clientDirectory';
import { type DecryptionRequest, KeyHolderRegistry } from './keyHolderRegistry';
import { type PaillierContribution, PaillierAggregator } from './paillierAggregator';

jest.setTimeout(30_000);

const commitOf = (bytes: Uint8Array, submissionSignature?: string): UpdateCommitBody => ({
  transferId: '00'.repeat(16),
  updateHash: ciphertextDigest(bytes),
  numExamples: 1,
  metrics: {},
  ...(submissionSignature ? { submissionSignature } : {}),
});

describe('PaillierAggregator', () => {
  const manifest = [
    { name: 'w', shape: [3, 2] },
    { name: 'b', shape: [2] },
  ];
  const params = createPackedPaillierParams({ keyBits: 1024, clipRange: 1, maxClients: 4 });
  const ref = { jobId: 'job1', round: 2, attempt: 1 };

  it('checks length, range, the signed submission and units before keeping an update; the key holder gets every contribution', async () => {
    const { publicKey, privateKey } = await generatePaillierKeys(1024);
    const width = ciphertextWidth(publicKey.n);
    const seen: PaillierContribution[][] = [];
    // The key holder's part, done here with the library: multiply the contributions and decrypt.
    const decrypt = jest.fn(async (a: { length: number; contributions: readonly PaillierContribution[] }) => {
      seen.push([...a.contributions]);
      const vectors = a.contributions.map((c) => ciphertextsFromBytes(c.ciphertexts, width));
      return decryptSum(privateKey, sumEncrypted(publicKey, vectors), params, vectors.length, a.length);
    });
    const agg = new PaillierAggregator(manifest, {
      params,
      n: publicKey.n,
      maxExampleWeight: 100,
      ref,
      verifier: new SignatureVerifier(),
      decrypt,
    });
    const update = async (values: number[]) =>
      ciphertextsToBytes((await encryptVector(publicKey, values, params)).ciphertexts, width);
    const [alice, bob, mallory] = [generateIdentity(), generateIdentity(), generateIdentity()];
    const a = await update([0.1, -0.2, 0.3, 0, 0.5, -0.5, 0.25, 0.01, 0.5]);
    const b = await update([0.1, 0.2, -0.3, 0, 0.25, 0.5, -0.25, 0.02, 0.25]);
    const signedA = commitOf(a, signSubmission(alice, ref, a));
    expect(agg.maxUpdateBytes).toBe(a.length);
    // Malformed ciphertexts: refused, the sender may retry (no members named).
    const wrong = (bytes: Uint8Array) => codeOf(() => agg.accept(alice.clientId, bytes, 1, commitOf(bytes)));
    expect(wrong(a.subarray(width))).toBe('PAILLIER_CIPHERTEXT_INVALID');
    expect(wrong(new Uint8Array(a.length).fill(0xff))).toBe('PAILLIER_CIPHERTEXT_INVALID');
    expect(wrong(new Uint8Array(a.length))).toBe('PAILLIER_CIPHERTEXT_INVALID');
    expect(codeOf(() => agg.accept(alice.clientId, a, 7, signedA))).toBe('VALIDATION_FAILED');
    // Unsigned, signed by someone else, signed for another attempt or other bytes.
    const bad = [
      commitOf(a),
      commitOf(a, signSubmission(bob, ref, a)),
      commitOf(a, signSubmission(alice, { ...ref, attempt: 0 }, a)),
      commitOf(a, signSubmission(alice, { ...ref, round: 3 }, a)),
      commitOf(a, signSubmission(alice, { ...ref, jobId: 'job2' }, a)),
      commitOf(a, signSubmission(alice, ref, b)),
    ];
    for (const commit of bad) {
      expect(codeOf(() => agg.accept(alice.clientId, a, 1, commit))).toBe('PAILLIER_SUBMISSION_INVALID');
    }
    // A properly signed non-unit (its one ciphertext = n): refused and attributed to its sender.
    const spoiled = Uint8Array.from(a);
    spoiled.set(ciphertextsToBytes([publicKey.n], width), 0);
    let refusal: TributaryError | undefined;
    try {
      agg.accept(mallory.clientId, spoiled, 1, commitOf(spoiled, signSubmission(mallory, ref, spoiled)));
    } catch (err) {
      refusal = err as TributaryError;
    }
    expect(refusal?.code).toBe('PAILLIER_CIPHERTEXT_INVALID');
    expect(refusal?.details).toEqual({ members: [mallory.clientId], index: 0 });

    agg.accept(alice.clientId, a, 1, signedA);
    expect(codeOf(() => agg.accept(alice.clientId, b, 1, signedA))).toBe('ROUND_DUPLICATE_UPDATE');
    agg.accept(bob.clientId, b, 1, commitOf(b, signSubmission(bob, ref, b)));
    const { sum: sums } = await agg.reveal();
    expect(decrypt).toHaveBeenCalledTimes(1);
    expect(seen[0].map((c) => c.clientId)).toEqual([alice.clientId, bob.clientId]);
    expect(seen[0][0].signature).toBe(signedA.submissionSignature);
    expect(Buffer.from(seen[0][1].ciphertexts).equals(Buffer.from(b))).toBe(true);
    expect(sums.clientCount).toBe(2);
    // The decrypted ratios are scaled back to examples (× maxExampleWeight 100): one unit in every mode.
    expect(sums.totalWeight).toBeCloseTo(75, 1);
    expect([...sums.weightedDeltaSum[0]].map((v) => Number((v / 100).toFixed(3)))).toEqual([0.2, 0, 0, 0, 0.75, 0]);
    expect([...sums.weightedDeltaSum[1]].map((v) => Number((v / 100).toFixed(3)))).toEqual([0, 0.03]);
  });

  it('under DP sums clipped deltas with weight 1 and reads the unclipped count from the weight slot, even when all are clipped', async () => {
    const { publicKey, privateKey } = await generatePaillierKeys(1024);
    const width = ciphertextWidth(publicKey.n);
    const decrypt = async (a: { length: number; contributions: readonly PaillierContribution[] }) => {
      const vectors = a.contributions.map((x) => ciphertextsFromBytes(x.ciphertexts, width));
      return decryptSum(privateKey, sumEncrypted(publicKey, vectors), params, vectors.length, a.length);
    };
    const agg = new PaillierAggregator(manifest, {
      params,
      n: publicKey.n,
      maxExampleWeight: 100,
      privacy: true,
      ref,
      verifier: new SignatureVerifier(),
      decrypt,
    });
    const c = 0.5;
    // The clients' own vectors: both deltas are longer than C, so every weight slot is 0.
    const deltas = [
      [0.4, 0.3, 0.3, 0, 0, 0, 0, 0],
      [0, 0, 0, 0.6, 0, 0, 0, -0.3],
    ];
    for (const d of deltas) {
      const client = generateIdentity();
      const { vector } = clippedWithBit(Float32Array.from(d), c);
      const bytes = ciphertextsToBytes((await encryptVector(publicKey, vector, params)).ciphertexts, width);
      agg.accept(client.clientId, bytes, 1, commitOf(bytes, signSubmission(client, ref, bytes)));
    }
    const { sum, privacy } = await agg.reveal();
    expect(sum.totalWeight).toBe(2);
    expect(sum.clientCount).toBe(2);
    expect(privacy).toEqual({ unclippedCount: expect.closeTo(0, 3), noised: false });
    const flat = [...sum.weightedDeltaSum[0], ...sum.weightedDeltaSum[1]];
    // Each delta scaled to norm C: the first by 0.5 / sqrt(0.34), the second by 0.5 / sqrt(0.45).
    const f0 = c / Math.sqrt(0.34);
    const f1 = c / Math.sqrt(0.45);
    const expected = deltas[0].map((x, j) => x * f0 + deltas[1][j] * f1);
    flat.forEach((v, j) => expect(v).toBeCloseTo(expected[j], 3));
  });
});

describe('KeyHolderRegistry', () => {
  const contribution = (id: string, bytes: number[]) => ({
    clientId: id.repeat(64),
    signature: 'ab'.repeat(64),
    ciphertexts: Uint8Array.from(bytes),
  });
  const request: DecryptionRequest = {
    jobId: 'j',
    round: 1,
    attempt: 0,
    length: 3,
    selected: ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)],
    contributions: [contribution('a', [1, 2]), contribution('b', [3, 4])],
  };

  it("sends the request then one message per contribution, and settles on the key holder's answer or refusal", async () => {
    const registry = new KeyHolderRegistry();
    expect(await codeOfAsync(() => registry.decrypt(request, 50))).toBe('PAILLIER_KEYHOLDER_UNAVAILABLE');
    const sent: Array<[string, Record<string, unknown>]> = [];
    const link = {
      clientId: 'k',
      send: (e: string, p: Record<string, unknown>) => void sent.push([e, p]),
    } as unknown as ClientLink;
    const pending = registry.decrypt(request, 2_000);
    registry.register('j', 'k', link);
    expect(sent.map(([e]) => e)).toEqual(['aggregate:decrypt', 'aggregate:ciphertexts', 'aggregate:ciphertexts']);
    expect(sent[0][1]).toEqual({
      jobId: 'j',
      round: 1,
      attempt: 0,
      length: 3,
      selected: request.selected,
      contributions: request.contributions.map(({ clientId, signature }) => ({ clientId, signature })),
    });
    expect(sent.slice(1).map(([, p]) => [p.index, [...(p.ciphertexts as Uint8Array)]])).toEqual([
      [0, [1, 2]],
      [1, [3, 4]],
    ]);
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

    const refused = registry.decrypt({ ...request, attempt: 2 }, 2_000);
    const body = { attempt: 2, length: 3, error: 'too few', refusal: { reason: 'too-few-clients' as const } };
    registry.handleResult('k', 'j', 1, body, undefined);
    const error = await refused.catch((e: TributaryError) => e);
    expect(error).toMatchObject({ code: 'PAILLIER_DECRYPT_REFUSED', details: { reason: 'too-few-clients' } });
    // A refusal names no client: the runner must not exclude anyone on the key holder's word alone.
    expect((error as TributaryError).details).not.toHaveProperty('members');
  });
});
