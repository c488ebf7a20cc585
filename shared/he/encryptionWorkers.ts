import { availableParallelism } from 'node:os';
import { TributaryError } from '../errors';
import { checkThreads, contiguousSlices, WorkerPool } from '../workers/workerPool';
import { ciphertextLayout } from './ciphertextBytes';
import type { HeVectorParams } from './heVector';
import { publicKeyProblem } from './keyBytes';
import { heCiphertextCount, type HeParameterSet } from './parameters';
import { quantizeSigned } from './quantize';

/**
 * JavaScript source of the worker threads that encrypt for HeEncryptionPool: each loads its own SEAL
 * module, builds the parameter set's context exactly as sealContext.ts does (and checks SEAL picks
 * the recorded primes), loads the public key, and batch-encodes and encrypts the levels it is sent.
 * A string run with `new Worker(source, { eval: true })`, like the paillier kernels, so that it runs
 * the same under tsx, jest (swc) and compiled output; encryptionWorkers.test.ts checks what it
 * encrypts decrypts to what the in-thread HeEncryptor's does.
 *
 * Encryptions of zero made ahead: SEAL's public-key `encrypt` is `encrypt_zero` (c = (pk0·u + e0,
 * pk1·u + e1), BGV's errors times t) followed by adding the plaintext to c0 (BFV: scaled by Δ; BGV:
 * as is), which is what `Evaluator.addPlain` adds, so Enc(m) = EncZero + m holds exactly, for the
 * same distribution of ciphertexts. The expensive half (sampling u, e0, e1 and three NTTs, ~70 % of
 * an encryption) needs no input: after each call the worker makes, while it has nothing else to do
 * (the client's next training), as many fresh encryptions of zero as that call used, up to
 * MAX_ZEROS; a call then costs one encode and one addPlain per ciphertext for each zero in stock.
 * Each zero is used for one ciphertext and deleted; zeros exist only in this worker (one public
 * key) and are dropped with it. `precomputed` says how many ciphertexts of a call used one.
 *
 * workerData: { sealPath, scheme, n, coeffModulusBits, plainModulusBits, securityBits, coeffModulus, plainModulus, publicKey }
 * in:  { id, levels: Int32Array (count·N), count }
 * out: { id, ciphertexts: Uint8Array, precomputed: number } or { id, error }
 */
/**
 * A client's default number of he encryption threads: min(2, cores − 1), at least 1. With a core to
 * spare, two threads halve the post-training encryption of an update; on a 2-core machine the second
 * thread's refills (encryptions of zero made ahead) would compete with training on the event loop
 * (bench/heEncryptionThreads.bench.ts, docs/secure-aggregation.md).
 */
export function defaultHeEncryptionThreads(cores = availableParallelism()): number {
  return Math.max(1, Math.min(2, cores - 1));
}

/** Most encryptions of zero a worker keeps (64 KiB each at N = 4096: 64 MiB of WebAssembly memory). */
const MAX_ZEROS = 1024;

const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData: w } = require('node:worker_threads');
const ready = require(w.sealPath)().then((seal) => {
  const parms = seal.EncryptionParameters(w.scheme === 'bgv' ? seal.SchemeType.bgv : seal.SchemeType.bfv);
  parms.setPolyModulusDegree(w.n);
  parms.setCoeffModulus(seal.CoeffModulus.Create(w.n, Int32Array.from(w.coeffModulusBits)));
  parms.setPlainModulus(seal.PlainModulus.Batching(w.n, w.plainModulusBits));
  const level = w.securityBits === 256 ? seal.SecurityLevel.tc256 : w.securityBits === 192 ? seal.SecurityLevel.tc192 : seal.SecurityLevel.tc128;
  const context = seal.Context(parms, true, level);
  const primes = [...parms.coeffModulus].map(String);
  if (!context.parametersSet() || primes.join() !== w.coeffModulus.join() || String(parms.plainModulus.value) !== w.plainModulus) {
    throw new Error('SEAL built other parameters than the set records');
  }
  const key = seal.PublicKey();
  key.load(context, Buffer.from(w.publicKey).toString('base64'));
  return {
    seal,
    encoder: seal.BatchEncoder(context),
    encryptor: seal.Encryptor(context, key),
    evaluator: seal.Evaluator(context),
    plain: seal.PlainText(),
    cipher: seal.CipherText(),
  };
});
const MAX_ZEROS = ${MAX_ZEROS};
const zeros = [];
let wanted = 0;
let refilling = false;
// One encryption of zero per turn of the event loop, so a call that arrives waits for one at most.
function refill(s) {
  if (refilling) return;
  refilling = true;
  const step = () => {
    if (wanted <= 0 || zeros.length >= MAX_ZEROS) { refilling = false; return; }
    const zero = s.seal.CipherText();
    s.encryptor.encryptZero(zero);
    zeros.push(zero);
    wanted--;
    setImmediate(step);
  };
  setImmediate(step);
}
parentPort.on('message', ({ id, levels, count }) => {
  ready.then((s) => {
    const parts = [];
    let precomputed = 0;
    for (let c = 0; c < count; c++) {
      s.encoder.encode(levels.subarray(c * w.n, (c + 1) * w.n), s.plain);
      const zero = zeros.pop();
      if (zero) {
        s.evaluator.addPlain(zero, s.plain, s.cipher);
        zero.delete();
        precomputed++;
      } else {
        s.encryptor.encrypt(s.plain, s.cipher);
      }
      parts.push(s.cipher.saveArray(s.seal.ComprModeType.none));
    }
    const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    parentPort.postMessage({ id, ciphertexts: out, precomputed }, [out.buffer]);
    wanted = Math.min(wanted + count, MAX_ZEROS - zeros.length);
    refill(s);
  }).catch((err) => parentPort.postMessage({ id, error: String(err && err.message || err) }));
});
`;

/**
 * Worker threads that encrypt vectors under one public key, so that a client's encryption leaves its
 * event loop (training, sockets) free and can use other cores; the in-process clients of a
 * benchmark or a test share one pool per key. A call is cut into one slice of consecutive
 * ciphertexts per thread (a lone client's update uses every thread); each slice goes to the worker
 * with the fewest calls in flight. Idle workers are unref'd (a pool never keeps the process alive); `close` terminates them.
 * A worker that dies or fails fails its calls with INTERNAL and the pool refuses later calls (the
 * caller falls back to encrypting in its own thread). The threads are shared/workers' WorkerPool.
 */
export class HeEncryptionPool {
  private readonly pool: WorkerPool<
    { levels: Int32Array; count: number },
    { ciphertexts: Uint8Array; precomputed: number }
  >;

  constructor(
    private readonly set: HeParameterSet,
    publicKey: Uint8Array,
    threads = 1,
  ) {
    const problem = publicKeyProblem(set, publicKey);
    if (problem) throw new TributaryError('CONFIG_INVALID', `he: ${problem}`);
    const workerData = {
      sealPath: require.resolve('node-seal'),
      scheme: set.scheme,
      n: set.polyModulusDegree,
      coeffModulusBits: [...set.coeffModulusBits],
      plainModulusBits: set.plainModulusBits,
      securityBits: set.securityBits,
      coeffModulus: set.coeffModulus.map(String),
      plainModulus: String(set.plainModulus),
      publicKey: Uint8Array.from(publicKey),
    };
    this.pool = new WorkerPool({
      source: WORKER_SOURCE,
      workerData,
      threads: checkThreads(threads, 'he: threads'),
      label: 'he worker',
      replyErrors: 'fail-pool',
      failureError: ({ why, cause }) => new TributaryError('INTERNAL', why, { cause }),
      closedError: () => new TributaryError('INTERNAL', 'he: the encryption pool is closed'),
    });
  }

  /** Whether the pool can still take calls. */
  get usable(): boolean {
    return this.pool.usable;
  }

  /**
   * Quantises `values` here and encrypts them in a worker; the same result as HeEncryptor.encrypt.
   * `precomputed`: how many of the ciphertexts used an encryption of zero the worker made ahead.
   */
  async encrypt(
    values: ArrayLike<number>,
    params: HeVectorParams,
  ): Promise<{ ciphertexts: Uint8Array; clipped: number; precomputed: number }> {
    const refusal = this.pool.failure;
    if (refusal) throw refusal;
    const n = this.set.polyModulusDegree;
    const count = heCiphertextCount(this.set, values.length);
    const levels = new Int32Array(count * n);
    const clipped = quantizeSigned(values, params, levels);
    // One slice of consecutive ciphertexts per thread, so that a lone client's call uses every thread.
    const slices = contiguousSlices(count, this.pool.size);
    const replies = await Promise.all(
      slices.map(({ start, end }) => {
        const part = slices.length === 1 ? levels : levels.slice(start * n, end * n);
        return this.pool.call({ levels: part, count: end - start }, [part.buffer]);
      }),
    );
    const each = ciphertextLayout(this.set).bytes;
    const ciphertexts = replies.length === 1 ? replies[0].ciphertexts : new Uint8Array(count * each);
    let precomputed = 0;
    for (const [i, reply] of replies.entries()) {
      const { start, end } = slices[i];
      const expected = (end - start) * each;
      if (reply.ciphertexts.length !== expected) {
        throw new TributaryError(
          'INTERNAL',
          `he worker returned ${reply.ciphertexts.length} bytes; expected ${expected}`,
        );
      }
      if (replies.length > 1) ciphertexts.set(reply.ciphertexts, start * each);
      precomputed += reply.precomputed;
    }
    return { ciphertexts, clipped, precomputed };
  }

  /** Terminates the workers; calls in flight fail. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
