import { availableParallelism } from 'node:os';
import { lcm, modInv, modPow, randBetween } from 'bigint-crypto-utils';
import { generateRandomKeys, PrivateKey, PublicKey, type KeyPair } from 'paillier-bigint';
import { CrtDecryptor, ParallelDecryptor, primeFactorsOf } from './fastDecryptor';
import { FastEncryptor, ParallelEncryptor, createDjnBase, resolveEncryptorOptions } from './fastEncryptor';
import { isqrt, modPowWindowed } from './modArith';
import { KernelWorkerPool } from './workerPool';
import { codeOf, codeOfAsync } from '../../test/support/codeOf';

// 1024-bit keys keep the file fast; the bench runs the 2048-bit default.
let keys: KeyPair;
let encryptor: FastEncryptor;
const pools: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  keys = await generateRandomKeys(1024, true);
  encryptor = new FastEncryptor(keys.publicKey);
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe('modular arithmetic', () => {
  it('modPowWindowed agrees with bigint-crypto-utils', () => {
    const mod = randBetween(1n << 1024n) | 1n;
    for (const exp of [
      0n,
      1n,
      2n,
      3n,
      65537n,
      randBetween(1n << 64n),
      randBetween(1n << 700n),
      randBetween(1n << 1024n),
    ]) {
      const base = randBetween(mod);
      expect(modPowWindowed(base, exp, mod)).toBe(modPow(base, exp, mod));
    }
    expect(modPowWindowed(-5n, 3n, 7n)).toBe(modPow(-5n, 3n, 7n));
  });

  it('isqrt is the integer square root', () => {
    for (const n of [0n, 1n, 2n, 3n, 4n, 15n, 16n, 17n, (1n << 200n) + 12345n, ((1n << 100n) + 7n) ** 2n]) {
      const r = isqrt(n);
      expect(r * r <= n && (r + 1n) * (r + 1n) > n).toBe(true);
    }
  });
});

describe('FastEncryptor', () => {
  it('encrypts so that paillier-bigint decrypts the plaintext back', () => {
    const { publicKey, privateKey } = keys;
    for (const m of [0n, 1n, 42n, publicKey.n - 1n, randBetween(publicKey.n - 1n), randBetween(1n << 1000n)]) {
      expect(privateKey.decrypt(encryptor.encrypt(m))).toBe(m);
    }
  });

  it('is randomised: the same plaintext never gives the same ciphertext', () => {
    const seen = new Set(Array.from({ length: 20 }, () => encryptor.encrypt(7n).toString(16)));
    expect(seen.size).toBe(20);
  });

  it('is additively homomorphic: the product of ciphertexts decrypts to the sum', () => {
    const { publicKey, privateKey } = keys;
    const ms = [randBetween(1n << 900n), randBetween(1n << 900n), randBetween(1n << 900n)];
    const product = ms.map((m) => encryptor.encrypt(m)).reduce((a, c) => (a * c) % publicKey._n2);
    expect(privateKey.decrypt(product)).toBe(ms[0] + ms[1] + ms[2]);
  });

  it('works for every window width and for full-length exponents', () => {
    const { publicKey, privateKey } = keys;
    const base = createDjnBase(publicKey);
    for (const options of [
      { windowBits: 1 },
      { windowBits: 5 },
      { windowBits: 7 },
      { randomBits: 1024 + 128, windowBits: 4 },
      { randomBits: 513 },
    ]) {
      const e = new FastEncryptor(publicKey, options, base);
      const m = randBetween(publicKey.n - 1n);
      expect(privateKey.decrypt(e.encrypt(m))).toBe(m);
    }
  });

  it('refuses keys with g ≠ n + 1, bad options and out-of-range plaintexts', () => {
    const { publicKey } = keys;
    const otherG = new PublicKey(publicKey.n, publicKey.n + 2n);
    expect(codeOf(() => new FastEncryptor(otherG))).toBe('CONFIG_INVALID');
    for (const options of [
      { randomBits: 511 },
      { randomBits: 1024 + 129 },
      { randomBits: 600.5 },
      { windowBits: 0 },
      { windowBits: 11 },
    ]) {
      expect(codeOf(() => resolveEncryptorOptions(publicKey, options))).toBe('CONFIG_INVALID');
    }
    expect(resolveEncryptorOptions(publicKey)).toEqual({ randomBits: 512, windowBits: 6 });
    expect(codeOf(() => encryptor.encrypt(-1n))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => encryptor.encrypt(publicKey.n))).toBe('VALIDATION_FAILED');
  });
});

describe('ParallelEncryptor', () => {
  it('encrypts in worker threads, in order, decryptable by paillier-bigint', async () => {
    const { publicKey, privateKey } = keys;
    const parallel = new ParallelEncryptor(publicKey, { threads: 2 });
    pools.push(parallel);
    const ms = Array.from({ length: 9 }, (_, i) => BigInt(i) * 1000003n + (1n << 700n));
    const cs = await parallel.encryptAll(ms);
    expect(cs.map((c) => privateKey.decrypt(c))).toEqual(ms);
    expect(await parallel.encryptAll([])).toEqual([]);
    expect(new Set((await parallel.encryptAll([5n, 5n, 5n])).map(String)).size).toBe(3);
    expect(await codeOfAsync(() => parallel.encryptAll([publicKey.n]))).toBe('VALIDATION_FAILED');
    await parallel.close();
    await parallel.close();
    expect(await codeOfAsync(() => parallel.encryptAll([1n]))).toBe('INTERNAL');
  });
});

describe('decryption', () => {
  it('CrtDecryptor equals paillier-bigint decrypt, with or without stored primes', () => {
    const { publicKey, privateKey } = keys;
    const cs = Array.from({ length: 4 }, () => encryptor.encrypt(randBetween(publicKey.n - 1n)));
    const crt = new CrtDecryptor(privateKey);
    expect(crt.usesCrt).toBe(true);
    expect(crt.decryptAll(cs)).toEqual(cs.map((c) => privateKey.decrypt(c)));

    // No stored primes, λ = φ(n): the primes are recovered from λ.
    const noPrimes = new PrivateKey(privateKey.lambda, privateKey.mu, publicKey);
    const factors = primeFactorsOf(noPrimes);
    expect(factors && factors.p * factors.q).toBe(publicKey.n);
    expect(new CrtDecryptor(noPrimes).decryptAll(cs)).toEqual(cs.map((c) => privateKey.decrypt(c)));

    // λ = lcm(p - 1, q - 1) and no primes: falls back to the textbook decryption, still correct.
    const { p, q } = factors!;
    const lambda = lcm(p - 1n, q - 1n);
    const lcmKey = new PrivateKey(lambda, modInv(lambda, publicKey.n), publicKey);
    const fallback = new CrtDecryptor(lcmKey);
    expect(fallback.usesCrt).toBe(false);
    expect(fallback.decryptAll(cs)).toEqual(cs.map((c) => privateKey.decrypt(c)));
    expect(codeOf(() => fallback.decrypt(0n))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => crt.decrypt(publicKey._n2))).toBe('VALIDATION_FAILED');
  });

  it('ParallelDecryptor equals paillier-bigint decrypt (CRT and textbook kernels)', async () => {
    const { publicKey, privateKey } = keys;
    const cs = Array.from({ length: 5 }, () => encryptor.encrypt(randBetween(publicKey.n - 1n)));
    const expected = cs.map((c) => privateKey.decrypt(c));
    const { p, q } = primeFactorsOf(privateKey)!;
    const lambda = lcm(p - 1n, q - 1n);
    for (const key of [privateKey, new PrivateKey(lambda, modInv(lambda, publicKey.n), publicKey)]) {
      const parallel = new ParallelDecryptor(key, { threads: 2 });
      pools.push(parallel);
      expect(await parallel.decryptAll(cs)).toEqual(expected);
      expect(await codeOfAsync(() => parallel.decryptAll([0n]))).toBe('VALIDATION_FAILED');
      await parallel.close();
    }
  });
});

describe('KernelWorkerPool', () => {
  it('reports a kernel error for that call and stays usable', async () => {
    const { publicKey, privateKey } = keys;
    const pool = new KernelWorkerPool(
      { kind: 'encrypt', n: publicKey.n, hs: createDjnBase(publicKey), randomBits: 512, windowBits: 4 },
      2,
    );
    pools.push(pool);
    expect(pool.size).toBe(Math.min(2, availableParallelism()));
    await expect(pool.map([1n, -1n])).rejects.toThrow(/plaintext outside \[0, n\)/);
    const [c] = await pool.map([99n]);
    expect(privateKey.decrypt(c)).toBe(99n);
    await pool.close();
  });

  it('fails every call with INTERNAL when a worker dies, and rejects bad thread counts', async () => {
    const pool = new KernelWorkerPool({ kind: 'encrypt' /* no n: the kernel throws while starting */ }, 1);
    pools.push(pool);
    expect(await codeOfAsync(() => pool.map([1n]))).toBe('INTERNAL');
    expect(await codeOfAsync(() => pool.map([1n]))).toBe('INTERNAL');
    await pool.close();
    for (const threads of [0, -1, 1.5])
      expect(codeOf(() => new KernelWorkerPool({ kind: 'encrypt' }, threads))).toBe('CONFIG_INVALID');
  });
});
