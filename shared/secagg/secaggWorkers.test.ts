import { randomBytes } from 'node:crypto';
import { TributaryError } from '../errors';
import { SignatureVerifier, signBytes } from '../identity/signing';
import { applyMasks, type SignedSeed } from './masks';
import { quantizeClippedWeightedUpdate } from './quantize';
import { quantizeClippedWeightedWith, type SignatureCheck, SecAggWorkerPool } from './secaggWorkers';
import { fastIdentity } from './testHarness';

// Jest's default 5 s is too tight for worker start-up on a loaded 2-core machine.
jest.setTimeout(60_000);

const seeds = (k: number): SignedSeed[] =>
  Array.from({ length: k }, (_, i) => ({ seed: new Uint8Array(randomBytes(32)), sign: i % 3 === 1 ? -1 : 1 }));

describe('SecAggWorkerPool', () => {
  const pool = new SecAggWorkerPool(2);
  afterAll(() => pool.close());

  it.each([0, 1, 1000, 65_536, 70_001])('length %i: equals applyMasks over zeros, byte for byte', async (length) => {
    const masks = seeds(7);
    const expected = applyMasks(new Uint32Array(length), masks);
    const sum = await pool.maskSum(masks, length);
    expect(sum).toBeInstanceOf(Uint32Array);
    expect(Buffer.from(sum.buffer, sum.byteOffset, sum.byteLength).equals(Buffer.from(expected.buffer))).toBe(true);
    if (length > 0) expect(sum.some((v) => v !== 0)).toBe(true);
  });

  it('calls in flight on several threads each get their own sum', async () => {
    const sets = Array.from({ length: 6 }, () => seeds(3));
    const sums = await Promise.all(sets.map((m) => pool.maskSum(m, 5000)));
    sums.forEach((sum, i) => expect(Array.from(sum)).toEqual(Array.from(applyMasks(new Uint32Array(5000), sets[i]))));
    expect(pool.threadsForTesting.length).toBe(2);
  });

  it("leaves the caller's seeds as they were (it copies them out)", async () => {
    const masks = seeds(2);
    const before = masks.map((m) => Uint8Array.from(m.seed));
    await pool.maskSum(masks, 10);
    masks.forEach((m, i) => expect(Array.from(m.seed)).toEqual(Array.from(before[i])));
  });

  it('verifyAll gives SignatureVerifier.verifyBytes answers: valid, forged, other key, other bytes, malformed hex', async () => {
    const [a, b] = [fastIdentity(), fastIdentity()];
    const bytes = new Uint8Array(randomBytes(100));
    const good = signBytes(a.secretKey, bytes);
    const flipped = (good[0] === '0' ? '1' : '0') + good.slice(1);
    const checks: SignatureCheck[] = [
      { publicKeyHex: a.clientId, bytes, signatureHex: good },
      { publicKeyHex: a.clientId, bytes, signatureHex: flipped },
      { publicKeyHex: b.clientId, bytes, signatureHex: good },
      { publicKeyHex: a.clientId, bytes: Uint8Array.from(bytes, (x, i) => (i === 5 ? x ^ 1 : x)), signatureHex: good },
      { publicKeyHex: a.clientId, bytes, signatureHex: good.toUpperCase() },
      { publicKeyHex: a.clientId.slice(2), bytes, signatureHex: good },
      { publicKeyHex: 'zz'.repeat(32), bytes, signatureHex: good },
      { publicKeyHex: b.clientId, bytes, signatureHex: signBytes(b.secretKey, bytes) },
    ];
    const inThread = new SignatureVerifier();
    const expected = checks.map((c) => inThread.verifyBytes(c.publicKeyHex, c.bytes, c.signatureHex));
    expect(expected).toEqual([true, false, false, false, false, false, false, true]);
    expect(await pool.verifyAll(checks)).toEqual(expected);
    expect(await pool.verifyAll([])).toEqual([]);
  });

  it('quantizeClippedWeighted: the values, clipped count and maxAbs of quantizeClippedWeightedUpdate, bit for bit', async () => {
    const c = 0.5;
    // Inside, at and past the range, tiny, negative zero, and values whose float32 weighting steps past c.
    const edge = [0, -0, c, -c, Math.fround(c + 1e-7), -3, 7.25, 1e-30, Math.fround(0.49999997), -0.5000001];
    const cases: Array<[Float32Array, number, number, { clippingRange: number; quantizationRange: number }]> = [
      [
        Float32Array.from({ length: 70_001 }, (_, i) => Math.sin(i) * 0.8),
        37,
        64,
        { clippingRange: c, quantizationRange: 2 ** 22 },
      ],
      [Float32Array.from(edge), 64, 64, { clippingRange: c, quantizationRange: 2 ** 20 }],
      [Float32Array.from(edge), 1000, 3, { clippingRange: c, quantizationRange: 2 ** 16 }],
      [
        Float32Array.from({ length: 5000 }, () => (Math.random() - 0.5) * 40),
        3,
        7,
        { clippingRange: 8, quantizationRange: 2 ** 22 },
      ],
      [new Float32Array(0), 1, 1, { clippingRange: 8, quantizationRange: 2 ** 22 }],
    ];
    for (const [delta, examples, maxWeight, params] of cases) {
      const copy = Float32Array.from(delta);
      const expected = quantizeClippedWeightedUpdate(delta, examples, maxWeight, params);
      const got = await pool.quantizeClippedWeighted(delta, examples, maxWeight, params);
      expect(got.values).toBeInstanceOf(Uint32Array);
      expect(Buffer.from(got.values.buffer).equals(Buffer.from(expected.values.buffer))).toBe(true);
      expect(got.clipped).toBe(expected.clipped);
      expect(got.maxAbs).toBe(expected.maxAbs);
      expect(Array.from(delta)).toEqual(Array.from(copy)); // the caller's delta is left as it was
    }
    expect(pool.usable).toBe(true);
  });

  it('quantizeClippedWeighted: the in-thread errors (non-finite value, bad weight, bad parameters), pool still usable', async () => {
    const params = { clippingRange: 8, quantizationRange: 2 ** 22 };
    const withNaN = Float32Array.from([0.1, 0.2, Number.NaN, 0.3]);
    const errorOf = (f: () => unknown) =>
      Promise.resolve()
        .then(f)
        .then(
          () => null,
          (e: unknown) => e as TributaryError,
        );
    for (const [delta, examples, maxWeight, p] of [
      [withNaN, 5, 10, params],
      [Float32Array.from([1, Number.POSITIVE_INFINITY]), 5, 10, params],
      [Float32Array.from([1]), 0, 10, params],
      [Float32Array.from([1]), 5, -1, params],
      [Float32Array.from([1]), 5, 10, { clippingRange: -1, quantizationRange: 2 ** 22 }],
    ] as const) {
      const inThread = await errorOf(() => quantizeClippedWeightedUpdate(delta, examples, maxWeight, p));
      const viaPool = await errorOf(() => pool.quantizeClippedWeighted(delta, examples, maxWeight, p));
      expect(inThread).toBeInstanceOf(TributaryError);
      expect(viaPool).toBeInstanceOf(TributaryError);
      expect({ code: viaPool!.code, message: viaPool!.message }).toEqual({
        code: inThread!.code,
        message: inThread!.message,
      });
    }
    expect(pool.usable).toBe(true);
  });

  it('refuses a seed of the wrong length with VALIDATION_FAILED', async () => {
    await expect(pool.maskSum([{ seed: new Uint8Array(31), sign: 1 }], 10)).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
    });
    expect(pool.usable).toBe(true);
  });
});

describe('SecAggWorkerPool failures: typed errors, no hang', () => {
  it('a thread terminated mid-call fails that call and later ones with SECAGG_MASK_WORKER_FAILED', async () => {
    const pool = new SecAggWorkerPool(1);
    await pool.maskSum(seeds(1), 10); // starts the thread
    // 64 masks of 4M values keep the thread busy long after terminate() is called.
    const call = pool.maskSum(seeds(64), 4_000_000);
    const [thread] = pool.threadsForTesting;
    await thread.terminate();
    const err = await call.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TributaryError);
    expect((err as TributaryError).code).toBe('SECAGG_MASK_WORKER_FAILED');
    expect((err as TributaryError).message).toMatch(/exited with code/);
    expect(pool.usable).toBe(false);
    await expect(pool.maskSum(seeds(1), 10)).rejects.toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
    await pool.close();
  });

  it('a thread that dies with a quantisation in flight fails it with SECAGG_MASK_WORKER_FAILED', async () => {
    const pool = new SecAggWorkerPool(1);
    const busy = pool.maskSum(seeds(64), 4_000_000);
    const call = pool.quantizeClippedWeighted(new Float32Array(1000), 1, 1, {
      clippingRange: 8,
      quantizationRange: 2 ** 22,
    });
    await pool.threadsForTesting[0].terminate();
    await expect(busy).rejects.toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
    await expect(call).rejects.toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
    await pool.close();
  });

  it('quantizeClippedWeightedWith: a pool dead mid-call falls back to this thread with the same values; other errors pass', async () => {
    const params = { clippingRange: 1, quantizationRange: 2 ** 22 };
    const delta = Float32Array.from({ length: 20_000 }, (_, i) => Math.cos(i) * 1.5);
    const expected = quantizeClippedWeightedUpdate(delta, 9, 10, params);
    const pool = new SecAggWorkerPool(1);
    const busy = pool.maskSum(seeds(64), 4_000_000);
    const fallbacks: string[] = [];
    const result = quantizeClippedWeightedWith(pool, delta, 9, 10, params, (e) => fallbacks.push(e.code));
    await pool.threadsForTesting[0].terminate();
    await expect(busy).rejects.toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
    const got = await result;
    expect(fallbacks).toEqual(['SECAGG_MASK_WORKER_FAILED']);
    expect(Buffer.from(got.values.buffer).equals(Buffer.from(expected.values.buffer))).toBe(true);
    expect([got.clipped, got.maxAbs]).toEqual([expected.clipped, expected.maxAbs]);
    // Not a pool failure: the in-thread error, no fallback.
    const live = new SecAggWorkerPool(1);
    await expect(
      quantizeClippedWeightedWith(live, Float32Array.from([Number.NaN]), 9, 10, params, (e) => fallbacks.push(e.code)),
    ).rejects.toMatchObject({ code: 'CODEC_NON_FINITE' });
    expect(fallbacks).toHaveLength(1);
    await Promise.all([pool.close(), live.close()]);
  });

  it('close() fails calls in flight with SECAGG_MASK_WORKER_FAILED and refuses later ones', async () => {
    const pool = new SecAggWorkerPool(1);
    const call = pool.maskSum(seeds(64), 4_000_000).then(
      () => null,
      (e: unknown) => e,
    );
    await pool.close();
    expect(await call).toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
    await expect(pool.maskSum(seeds(1), 10)).rejects.toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
  });

  it('refuses a thread count below 1 with CONFIG_INVALID', () => {
    expect(() => new SecAggWorkerPool(0)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
