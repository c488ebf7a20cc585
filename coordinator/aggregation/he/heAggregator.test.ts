import { clipAndWeightUpdate } from '../../../shared/aggregation/weighting';
import {
  CiphertextSum,
  ciphertextDigest,
  ciphertextLayout,
  generateHeKeys,
  HE_PARAMETER_SETS,
  HeDecryptor,
  HeEncryptor,
  heCiphertextCount,
  heUploadDigests,
  signHeUpload,
} from '../../../shared/he';
import { contentHash } from '../../../shared/codec/modelCodec';
import { createLogger } from '../../logger';
import type { JobRecord } from '../../store/store';
import { ClientDirectory } from '../../transport/clientDirectory';
import { UploadCollection } from '../uploads/uploadCollection';
import { generateIdentity } from '../../../shared/identity/keyPair';
import { SignatureVerifier } from '../../../shared/identity/signing';
import { codeOf } from '../../../test/support/codeOf';
import { HeAggregator } from './heAggregator';
import type { HeDecryption } from './heKeyHolders';

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

  /** What an honest key holder decrypts: the coordinator's sum, or the contributions it adds itself. */
  function decrypt(request: HeDecryption): Float32Array {
    let sum: Uint8Array;
    if (request.form === 'sum') sum = request.ciphertexts;
    else {
      const added = new CiphertextSum(ciphertextLayout(set), heCiphertextCount(set, request.length));
      request.parts.forEach((part, i) => {
        // Each part is the ciphertexts its contribution signed, in the order of the list.
        expect(ciphertextDigest(part)).toBe(request.contributions[i].digest);
        added.add(part);
      });
      sum = added.toBytes();
    }
    return decryptor.decryptSum(sum, params, request.contributions.length, request.length).sums;
  }

  /** One round: two honest clients (our own weighting) and a third client's vector, decrypted by an honest key holder. */
  async function round(third: number[], keyHolderSums = true) {
    const forms: string[] = [];
    const aggregator = new HeAggregator(manifest, {
      params,
      maxExampleWeight: 100,
      ref,
      selected: [],
      verifier: new SignatureVerifier(),
      keyHolderSums,
      decrypt: async (request: HeDecryption) => {
        forms.push(request.form);
        expect(request.form === 'contributions' ? request.parts : [request.ciphertexts]).toHaveLength(
          keyHolderSums ? 3 : 1,
        );
        return decrypt(request);
      },
    });
    const honest = [
      clipAndWeightUpdate([0.1, -0.2, 0.3, 0], 50, 100, 1).values,
      clipAndWeightUpdate([0.2, 0.1, -0.1, 0.05], 25, 100, 1).values,
    ];
    for (const values of [...honest, Float32Array.from(third)]) {
      const client = generateIdentity();
      const upload = signHeUpload(client, ref, encryptor.encrypt(values, params).ciphertexts).bytes;
      aggregator.accept(client.clientId, upload, 1);
    }
    const revealed = await aggregator
      .reveal()
      .finally(() => expect(forms).toEqual([keyHolderSums ? 'contributions' : 'sum']));
    return revealed;
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
    // A third honest client passes, and the sums come back in examples, whoever adds the ciphertexts.
    for (const keyHolderSums of [true, false]) {
      const ok = await round(Array.from(clipAndWeightUpdate([0.4, 0, 0, 0], 10, 100, 1).values), keyHolderSums);
      expect(ok.sum.clientCount).toBe(3);
      expect(ok.sum.totalWeight).toBeCloseTo(85, 1);
      expect(ok.sum.weightedDeltaSum[0][0]).toBeCloseTo(0.1 * 50 + 0.2 * 25 + 0.4 * 10, 1);
    }
  });
  it('checks every ciphertext whoever adds them: a signed upload with an unreduced coefficient or a transparent ciphertext is refused and changes nothing', async () => {
    const layout = ciphertextLayout(set);
    const q = set.coeffModulus[0];
    const bad = {
      // c0's first coefficient set to q (not reduced), in the update's second ciphertext.
      unreduced: (bytes: Uint8Array) =>
        new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(layout.bytes + layout.prefix.length, q, true),
      // c1 of the first ciphertext zeroed: c0 alone would reveal the plaintext.
      transparent: (bytes: Uint8Array) => bytes.fill(0, layout.bytes - 8 * set.polyModulusDegree, layout.bytes),
    };
    const big = [{ name: 'w', shape: [set.polyModulusDegree + 10] }]; // two ciphertexts per update
    const length = set.polyModulusDegree + 11;
    for (const keyHolderSums of [true, false]) {
      const requests: HeDecryption[] = [];
      const aggregator = new HeAggregator(big, {
        params,
        maxExampleWeight: 100,
        ref,
        selected: [],
        verifier: new SignatureVerifier(),
        keyHolderSums,
        decrypt: async (request: HeDecryption) => {
          requests.push(request);
          return decryptor.decryptSum(
            request.form === 'sum' ? request.ciphertexts : sumOf(request.parts, length),
            params,
            request.contributions.length,
            request.length,
          ).sums;
        },
      });
      const values = Float32Array.from({ length }, (_, i) => (i === length - 1 ? 0.5 : 0.01));
      for (const [why, spoil] of Object.entries(bad)) {
        const client = generateIdentity();
        const ciphertexts = encryptor.encrypt(values, params).ciphertexts;
        spoil(ciphertexts);
        // Signed by the client, so only the ciphertext checks can refuse it.
        const upload = signHeUpload(client, ref, ciphertexts).bytes;
        expect([why, codeOf(() => aggregator.accept(client.clientId, upload, 1))]).toEqual([
          why,
          'HE_CIPHERTEXT_INVALID',
        ]);
      }
      for (let i = 0; i < 2; i++) {
        const client = generateIdentity();
        aggregator.accept(
          client.clientId,
          signHeUpload(client, ref, encryptor.encrypt(values, params).ciphertexts).bytes,
          1,
        );
      }
      const revealed = await aggregator.reveal();
      expect(requests).toHaveLength(1);
      expect(requests[0].contributions).toHaveLength(2);
      expect(requests[0].form).toBe(keyHolderSums ? 'contributions' : 'sum');
      expect(revealed.sum.clientCount).toBe(2);
      expect(revealed.sum.totalWeight).toBeCloseTo(100, 1); // 2 × 0.5 × maxExampleWeight
      expect(revealed.sum.weightedDeltaSum[0][7]).toBeCloseTo(2 * 0.01 * 100, 1);
    }
  });

  it('hashes each upload once and still refuses every tampering where it did before: the commit hash, the signed ciphertexts, the signature', async () => {
    const values = Float32Array.from([0.1, -0.2, 0.3, 0, 0.5]);
    const client = generateIdentity();
    const honest = signHeUpload(client, ref, encryptor.encrypt(values, params).ciphertexts);
    // One pass gives the same two digests as two separate hashes.
    const cut = honest.bytes.length - 64;
    expect(heUploadDigests(honest.bytes)).toEqual({
      digest: ciphertextDigest(honest.bytes.subarray(0, cut)),
      uploadHash: contentHash(honest.bytes),
    });
    expect(honest.uploadHash).toBe(contentHash(honest.bytes));
    const accepted: string[] = [];
    const aggregator = new HeAggregator(manifest, {
      params,
      maxExampleWeight: 100,
      ref,
      selected: [client.clientId],
      verifier: new SignatureVerifier(),
      keyHolderSums: true,
      decrypt: async (request: HeDecryption) => {
        accepted.push(...request.contributions.map((c) => c.digest));
        return decrypt(request);
      },
    });
    const collection = new UploadCollection(
      {
        job: { id: ref.jobId } as JobRecord,
        round: ref.round,
        attempt: ref.attempt,
        selected: [client.clientId],
        deadline: Date.now() + 60_000,
        chunkBytes: 1 << 20,
        keepParts: false,
        directory: new ClientDirectory(),
        logger: createLogger('silent'),
        now: () => Date.now(),
      },
      aggregator,
      { modeName: 'he', keepMetrics: false },
    );
    let transfer = 0;
    /** Uploads `bytes` in chunks and commits `updateHash` (a fresh transfer each time); the refusal's code or 'ok'. */
    const upload = (bytes: Uint8Array, updateHash: string) =>
      codeOf(() => {
        const transferId = (transfer++).toString(16).padStart(32, '0');
        const chunk = 1 << 20;
        const count = Math.ceil(bytes.length / chunk);
        for (let index = 0; index < count; index++) {
          collection.receive(client.clientId, {
            name: 'updateChunk',
            body: { transferId, index, count, totalBytes: bytes.length },
            data: bytes.subarray(index * chunk, (index + 1) * chunk),
          });
        }
        collection.receive(client.clientId, {
          name: 'updateCommit',
          body: { transferId, updateHash, numExamples: 1, metrics: {} },
          data: undefined,
        });
      }) ?? 'ok';
    const flipped = (at: number) => {
      const copy = Uint8Array.from(honest.bytes);
      copy[at] ^= 1;
      return copy;
    };
    // 1. Bytes changed after the commit named them: the collection's content-hash check.
    expect(upload(flipped(100), honest.uploadHash)).toBe('TRANSFER_HASH_MISMATCH');
    expect(upload(flipped(cut + 3), honest.uploadHash)).toBe('TRANSFER_HASH_MISMATCH');
    // 2. A commit hash that matches, but ciphertexts that are not what the client signed.
    const ciphertextsChanged = flipped(100);
    expect(upload(ciphertextsChanged, contentHash(ciphertextsChanged))).toBe('HE_SUBMISSION_INVALID');
    // 3. The same for the signature bytes.
    const signatureChanged = flipped(cut + 3);
    expect(upload(signatureChanged, contentHash(signatureChanged))).toBe('HE_SUBMISSION_INVALID');
    // 4. Signed for another attempt.
    const otherAttempt = signHeUpload(client, { ...ref, attempt: 1 }, honest.bytes.subarray(0, cut));
    expect(upload(otherAttempt.bytes, otherAttempt.uploadHash)).toBe('HE_SUBMISSION_INVALID');
    // None of those changed anything: the honest upload is accepted, and the digest sent on is the signed one.
    expect(upload(honest.bytes, honest.uploadHash)).toBe('ok');
    const collected = await collection.collect();
    expect(collected.participants).toEqual([client.clientId]);
    const revealed = await collection.reveal();
    expect(accepted).toEqual([ciphertextDigest(honest.bytes.subarray(0, cut))]);
    expect(revealed.sum.weightedDeltaSum[0][2]).toBeCloseTo(0.3 * 100, 1);
  });

  function sumOf(parts: readonly Uint8Array[], length: number): Uint8Array {
    const sum = new CiphertextSum(ciphertextLayout(set), heCiphertextCount(set, length));
    for (const part of parts) sum.add(part);
    return sum.toBytes();
  }
});
