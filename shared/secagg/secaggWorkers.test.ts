import { randomBytes } from 'node:crypto';
import { TributaryError } from '../errors';
import { SignatureVerifier, signBytes } from '../identity/signing';
import { applyMasks, type SignedSeed } from './masks';
import { type SignatureCheck, SecAggWorkerPool } from './secaggWorkers';
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
