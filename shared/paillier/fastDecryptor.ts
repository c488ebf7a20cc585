import { modInv } from 'bigint-crypto-utils';
import type { PrivateKey } from 'paillier-bigint';
import { TributaryError } from '../errors';
import { isqrt, modPowWindowed } from './modArith';
import { KernelWorkerPool, maxThreads } from './workerPool';

/**
 * Paillier decryption by Chinese remaindering (P. Paillier, "Public-key cryptosystems based on
 * composite degree residuosity classes", EUROCRYPT 1999, section 7): decrypt modulo p² and q²
 * with the exponents p - 1 and q - 1 and recombine,
 *
 *     m_p = L_p(c^(p-1) mod p²) · h_p mod p,   h_p = L_p(g^(p-1) mod p²)^-1 mod p,  L_p(u) = (u - 1)/p
 *     m   = CRT(m_p, m_q) = m_q + q · ((m_p - m_q) · q^-1 mod p)
 *
 * Two 1024-bit exponentiations modulo 2048-bit numbers instead of one 2048-bit exponentiation
 * modulo n² (4096 bits): ~11 ms instead of ~40 ms per ciphertext at 2048 bits here. The result is
 * the same plaintext as paillier-bigint's `decrypt` (the tests check it).
 *
 * p and q are taken from the private key when paillier-bigint kept them (keys from
 * generateRandomKeys do), or recovered from λ when λ = φ(n) (the simple variant): p + q = n - φ + 1.
 * Otherwise decryption falls back to the textbook L(c^λ mod n²)·μ mod n.
 */
export interface PrimeFactors {
  readonly p: bigint;
  readonly q: bigint;
}

/** p and q of the key's n, or undefined when neither the key nor λ reveals them. */
export function primeFactorsOf(privateKey: PrivateKey): PrimeFactors | undefined {
  const n = privateKey.publicKey.n;
  // paillier-bigint stores the primes in private fields; use them when present and consistent.
  const stored = privateKey as unknown as { _p?: unknown; _q?: unknown };
  if (typeof stored._p === 'bigint' && typeof stored._q === 'bigint' && stored._p * stored._q === n) {
    return { p: stored._p, q: stored._q };
  }
  // λ = φ(n) = (p-1)(q-1): p and q are the roots of z² - (n - φ + 1)·z + n.
  const s = n - privateKey.lambda + 1n;
  const discriminant = s * s - 4n * n;
  if (discriminant <= 0n) return undefined;
  const root = isqrt(discriminant);
  if (root * root !== discriminant) return undefined;
  const p = (s + root) / 2n;
  const q = (s - root) / 2n;
  return p * q === n && q > 1n ? { p, q } : undefined;
}

/** Constants of the CRT decryption for a key with g = n + 1 (or any g, computed generically). */
interface CrtConstants {
  p: bigint;
  q: bigint;
  hp: bigint;
  hq: bigint;
  qInvP: bigint;
}

function crtConstants(privateKey: PrivateKey, { p, q }: PrimeFactors): CrtConstants {
  const g = privateKey.publicKey.g;
  const h = (prime: bigint) => {
    const square = prime * prime;
    return modInv((modPowWindowed(g, prime - 1n, square) - 1n) / prime, prime);
  };
  return { p, q, hp: h(p), hq: h(q), qInvP: modInv(q, p) };
}

function invalidCiphertext(): TributaryError {
  return new TributaryError('VALIDATION_FAILED', 'paillier: ciphertext outside [1, n²)');
}

/** Anything that turns ciphertexts back into plaintexts, in order. */
export interface CiphertextDecryptor {
  decryptAll(ciphertexts: readonly bigint[]): bigint[] | Promise<bigint[]>;
}

/** In-thread decryption: CRT when p and q are known, paillier-bigint's `decrypt` otherwise. */
export class CrtDecryptor implements CiphertextDecryptor {
  readonly privateKey: PrivateKey;
  /** Whether the fast CRT path is used. */
  readonly usesCrt: boolean;
  private readonly crt: CrtConstants | undefined;
  private readonly n2: bigint;

  constructor(privateKey: PrivateKey) {
    this.privateKey = privateKey;
    this.n2 = privateKey.publicKey._n2;
    const factors = primeFactorsOf(privateKey);
    this.crt = factors ? crtConstants(privateKey, factors) : undefined;
    this.usesCrt = this.crt !== undefined;
  }

  decrypt(c: bigint): bigint {
    if (typeof c !== 'bigint' || c <= 0n || c >= this.n2) throw invalidCiphertext();
    const k = this.crt;
    if (!k) return this.privateKey.decrypt(c);
    const { p, q } = k;
    const mp = (((modPowWindowed(c, p - 1n, p * p) - 1n) / p) * k.hp) % p;
    const mq = (((modPowWindowed(c, q - 1n, q * q) - 1n) / q) * k.hq) % q;
    let t = ((mp - mq) * k.qInvP) % p;
    if (t < 0n) t += p;
    return mq + q * t;
  }

  decryptAll(ciphertexts: readonly bigint[]): bigint[] {
    return ciphertexts.map((c) => this.decrypt(c));
  }
}

export interface ParallelDecryptorOptions {
  /** Worker threads (clamped to the machine's parallelism). @default os.availableParallelism() */
  threads?: number;
}

/** CrtDecryptor in worker threads (the workers receive p and q). `close()` when done. */
export class ParallelDecryptor implements CiphertextDecryptor {
  readonly privateKey: PrivateKey;
  private readonly pool: KernelWorkerPool;

  constructor(privateKey: PrivateKey, options: ParallelDecryptorOptions = {}) {
    this.privateKey = privateKey;
    const factors = primeFactorsOf(privateKey);
    const data: Record<string, unknown> = factors
      ? { kind: 'decrypt', ...crtConstants(privateKey, factors) }
      : { kind: 'decrypt', n: privateKey.publicKey.n, lambda: privateKey.lambda, mu: privateKey.mu };
    this.pool = new KernelWorkerPool(data, options.threads ?? maxThreads());
  }

  get threads(): number {
    return this.pool.size;
  }

  async decryptAll(ciphertexts: readonly bigint[]): Promise<bigint[]> {
    const n2 = this.privateKey.publicKey._n2;
    for (const c of ciphertexts) if (typeof c !== 'bigint' || c <= 0n || c >= n2) throw invalidCiphertext();
    return this.pool.map(ciphertexts);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
