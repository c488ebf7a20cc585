import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { TributaryError } from '../errors';
import { checkThreads, WorkerPool } from '../workers/workerPool';
import { weightRatio } from '../aggregation/weighting';
import { SEED_BYTES, type SignedSeed } from './masks';
import { WORD_ADD_WASM } from './wordAdd';
import {
  type QuantizationParameters,
  type QuantizeResult,
  quantizeClippedWeightedUpdate,
  validateQuantization,
} from './quantize';

/**
 * JavaScript source of the threads of SecAggWorkerPool. A mask call expands the seeds it is sent with
 * ChaCha20 (node:crypto, zero IV: exactly expandMask/applyMasks of masks.ts) and returns
 * Σ sign·PRG(seed) mod 2^32; a verify call checks Ed25519 signatures as SignatureVerifier.verifyBytes
 * does (node:crypto, the raw public key as a JWK, the same hex checks). A string run with
 * `new Worker(source, { eval: true })`, like the paillier and he kernels, so it runs the same under
 * tsx, jest (swc) and compiled output; secaggWorkers.test.ts checks it against applyMasks byte for
 * byte, against SignatureVerifier and against quantizeClippedWeightedUpdate. The seeds arrive transferred (the caller keeps no copy) and are
 * zeroed once the ciphers are keyed; each keystream chunk is added with wordAdd.ts's SIMD module in
 * its memory and zeroed there and in the cipher's buffer; that memory is zeroed once the sum is copied
 * out; the sum leaves transferred. Without WebAssembly SIMD a mask call fails the pool (clients then
 * mask in their own thread).
 *
 * in:  { id, seeds: Uint8Array (32·k), signs: Int8Array (k), length }
 *      or { id, verify: [{ publicKeyHex, bytes: Uint8Array, signatureHex }] }
 *      or { id, quantize: { delta: Float32Array, ratio, clippingRange, quantizationRange } }
 * out: { id, sum: ArrayBuffer (the Uint32Array's) } or { id, valid: Uint8Array (1 or 0 each) }
 *      or { id, values: ArrayBuffer (Uint32Array), clipped, maxAbs } or { id, nonFinite: true } or { id, error }
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort } = require('node:worker_threads');
const { createCipheriv, createPublicKey, verify } = require('node:crypto');
const { endianness } = require('node:os');
const ZERO_IV = Buffer.alloc(16);
const LE = endianness() === 'LE';
const CHUNK = 1 << 16;
const zeros = Buffer.alloc(CHUNK * 4);
// wordAdd.ts's SIMD module: the sum stays in its memory, each keystream chunk is copied in and added.
const WORD_ADD = (() => {
  try {
    return LE ? new WebAssembly.Module(Buffer.from('${Buffer.from(WORD_ADD_WASM).toString('base64')}', 'base64')) : null;
  } catch {
    return null;
  }
})();
const KEEP_BYTES = 16 << 20;
let lanes = null;
function lanesFor(bytes) {
  if (lanes && lanes.memory.buffer.byteLength >= bytes) return lanes;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
  const { exports } = new WebAssembly.Instance(WORD_ADD, { env: { memory } });
  lanes = { memory, add: exports.add, sub: exports.sub };
  return lanes;
}
function maskSumSimd(ciphers, signs, length) {
  const padded = (length * 4 + 15) & ~15;
  const l = lanesFor(padded + CHUNK * 4);
  const heap = new Uint8Array(l.memory.buffer, 0, padded + CHUNK * 4);
  const sum = new Uint32Array(length);
  try {
    for (let k = 0; k < ciphers.length; k++) {
      const op = signs[k] === 1 ? l.add : l.sub;
      for (let offset = 0; offset < length; offset += CHUNK) {
        const words = Math.min(CHUNK, length - offset);
        const bytes = ciphers[k].update(words === CHUNK ? zeros : zeros.subarray(0, words * 4));
        heap.set(bytes, padded);
        // Past the last word only the sum's padding is touched (offset * 4 is a multiple of 16).
        op(offset * 4, padded, offset * 4 + ((words * 4 + 15) & ~15));
        bytes.fill(0);
      }
      ciphers[k].final();
    }
    sum.set(new Uint32Array(l.memory.buffer, 0, length));
  } finally {
    // Also after a failure: the next call's sum starts from zeros, and no keystream stays behind.
    heap.fill(0);
    if (l.memory.buffer.byteLength > KEEP_BYTES) lanes = null;
  }
  return sum;
}
const keys = new Map();
function keyFor(hex) {
  let key = keys.get(hex);
  if (key) return key;
  if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex)) return null;
  try {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(hex, 'hex').toString('base64url') }, format: 'jwk' });
  } catch {
    return null;
  }
  if (keys.size >= 4096) keys.delete(keys.keys().next().value);
  keys.set(hex, key);
  return key;
}
function verifyOne({ publicKeyHex, bytes, signatureHex }) {
  if (typeof signatureHex !== 'string' || !/^[0-9a-f]{128}$/.test(signatureHex)) return false;
  const key = keyFor(publicKeyHex);
  if (!key) return false;
  return verify(null, bytes, key, Buffer.from(signatureHex, 'hex'));
}
// quantizeClippedWeightedUpdate's loop (quantize.ts), the ratio and parameters checked by the caller;
// null at the first non-finite value (the caller then runs it in its own thread, which throws as it does).
function quantizeClipped(delta, ratio, c, r) {
  const scale = r / (2 * c);
  const n = delta.length;
  const out = new Uint32Array(n + 1);
  let clipped = 0;
  let maxAbs = 0;
  for (let i = 0; i < n; i++) {
    const x = delta[i];
    if (!Number.isFinite(x)) return null;
    const a = Math.abs(x);
    if (a > maxAbs) maxAbs = a;
    let v = x;
    if (a > c) {
      clipped++;
      v = x > 0 ? c : -c;
    }
    let w = Math.fround(v * ratio);
    if (w > c) w = c;
    else if (w < -c) w = -c;
    const y = (w + c) * scale; // roundHalfUp(y) (shared/aggregation/rounding.ts), inlined
    let q = Math.floor(y + 0.5);
    if (q - 0.5 > y) q -= 1;
    out[i] = q;
  }
  out[n] = Math.round(ratio * r);
  return { values: out, clipped, maxAbs };
}
parentPort.on('message', ({ id, seeds, signs, length, verify: checks, quantize }) => {
  if (quantize) {
    try {
      const q = quantizeClipped(quantize.delta, quantize.ratio, quantize.clippingRange, quantize.quantizationRange);
      if (!q) parentPort.postMessage({ id, nonFinite: true });
      else parentPort.postMessage({ id, values: q.values.buffer, clipped: q.clipped, maxAbs: q.maxAbs }, [q.values.buffer]);
    } catch (err) {
      parentPort.postMessage({ id, error: String((err && err.message) || err) });
    }
    return;
  }
  if (checks) {
    try {
      const valid = new Uint8Array(checks.length);
      for (let i = 0; i < checks.length; i++) valid[i] = verifyOne(checks[i]) ? 1 : 0;
      parentPort.postMessage({ id, valid });
    } catch (err) {
      parentPort.postMessage({ id, error: String((err && err.message) || err) });
    }
    return;
  }
  try {
    const ciphers = [];
    for (let k = 0; k < signs.length; k++) ciphers.push(createCipheriv('chacha20', seeds.subarray(32 * k, 32 * k + 32), ZERO_IV));
    seeds.fill(0);
    // Without WebAssembly SIMD this fails the pool, and clients mask in their own thread (masks.ts).
    if (!WORD_ADD) throw new Error('WebAssembly SIMD is unavailable');
    const sum = maskSumSimd(ciphers, signs, length);
    parentPort.postMessage({ id, sum: sum.buffer }, [sum.buffer]);
  } catch (err) {
    seeds.fill(0);
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
`;

/** Where a SecAgg+ client gets the sum of its masks computed (SecAggWorkerPool, or a test's wrapper of one). */
export interface MaskSumSource {
  /**
   * Σ sign·PRG(seed) over `masks`, mod 2^32, `length` elements: applyMasks(new Uint32Array(length),
   * masks). The seeds are copied out before it returns, so the caller may zero them at once.
   */
  maskSum(masks: readonly SignedSeed[], length: number): Promise<Uint32Array>;
}

/** One Ed25519 signature to check: over `bytes`, by the holder of the raw public key `publicKeyHex`. */
export interface SignatureCheck {
  publicKeyHex: string;
  bytes: Uint8Array;
  signatureHex: string;
}

/** Where a SecAgg+ party checks a batch of signatures (SecAggWorkerPool, or SignatureVerifier in-thread). */
export interface SignatureBatchVerifier {
  /** For each check, whether it verifies (SignatureVerifier.verifyBytes's answer), in order. */
  verifyAll(checks: readonly SignatureCheck[]): Promise<boolean[]>;
}

/** Where a SecAgg+ client quantises its trained delta (SecAggWorkerPool, or quantizeClippedWeightedUpdate in-thread). */
export interface UpdateQuantizer {
  /**
   * quantizeClippedWeightedUpdate(delta, examples, maxWeight, params): the same values, `clipped`
   * and `maxAbs`, and the same errors. `delta` is copied; the caller keeps it.
   */
  quantizeClippedWeighted(
    delta: Float32Array,
    examples: number,
    maxWeight: number,
    params: QuantizationParameters,
  ): Promise<QuantizeResult>;
}

/** A call to a mask thread: a mask sum, a batch of signature checks, or a quantisation (WORKER_SOURCE's "in"). */
type MaskRequest =
  | { seeds: Uint8Array; signs: Int8Array; length: number }
  | { verify: Array<{ publicKeyHex: string; bytes: Uint8Array; signatureHex: string }> }
  | { quantize: { delta: Float32Array; ratio: number; clippingRange: number; quantizationRange: number } };

/** A mask thread's answer (WORKER_SOURCE's "out", less the id and the error). */
interface MaskResponse {
  sum?: ArrayBuffer;
  valid?: Uint8Array;
  values?: ArrayBuffer;
  clipped?: number;
  maxAbs?: number;
  nonFinite?: true;
}

/** Threads of the process-wide pool: one core left to the event loop (training, sockets), at most 4. */
export function defaultSecAggWorkerThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

/**
 * Worker threads that expand and add a SecAgg+ client's masks (Bonawitz et al. CCS 2017 Section 4:
 * y = x + PRG(b) + Σ ±PRG(s_ij)) off the event loop, so a client can compute its mask sum while its
 * model trains and only one vector add remains at masked-input time; they also check the batch of
 * neighbours' key and survivor-set signatures a client verifies (`verifyAll`, one batch per stage) and
 * quantise a client's trained delta at masked input (`quantizeClippedWeighted`). Any number of clients in one
 * process share one pool (sharedSecAggWorkers); a call goes to the thread with the fewest calls in
 * flight. Threads start at the first call and are unref'd while idle (a pool never keeps the process
 * alive); `close` terminates them. A thread that errs or exits fails its calls and every later one
 * with SECAGG_MASK_WORKER_FAILED (the client then masks in its own thread); sharedSecAggWorkers
 * replaces a failed pool. The threads, ids and failures are shared/workers' WorkerPool.
 *
 * Memory: each call in flight holds one vector of `length` uint32 (4 bytes a parameter) in the
 * worker until it is transferred back, where the client keeps it until masked input (see
 * SecAggPlusClient).
 */
export class SecAggWorkerPool implements MaskSumSource, SignatureBatchVerifier, UpdateQuantizer {
  private readonly pool: WorkerPool<MaskRequest, MaskResponse>;

  constructor(threads = defaultSecAggWorkerThreads()) {
    this.pool = new WorkerPool({
      source: WORKER_SOURCE,
      threads: checkThreads(threads, 'secagg: mask threads'),
      start: 'lazy',
      label: 'a mask thread',
      replyErrors: 'fail-pool',
      failureError: ({ why, cause }) =>
        new TributaryError('SECAGG_MASK_WORKER_FAILED', `SecAgg+: ${why}; masks are computed in-thread`, { cause }),
      closedError: () => new TributaryError('SECAGG_MASK_WORKER_FAILED', 'SecAgg+: the mask thread pool is closed'),
    });
  }

  /** Whether the pool still takes calls (not closed, no thread failed). */
  get usable(): boolean {
    return this.pool.usable;
  }

  /** The worker threads, for tests that play a crash (terminate one). */
  get threadsForTesting(): readonly Worker[] {
    return this.pool.workers;
  }

  async maskSum(masks: readonly SignedSeed[], length: number): Promise<Uint32Array> {
    const refusal = this.pool.failure;
    if (refusal) throw refusal;
    if (!(Number.isInteger(length) && length >= 0)) {
      throw new TributaryError('VALIDATION_FAILED', `mask length must be a non-negative integer, got ${length}`);
    }
    const seeds = new Uint8Array(SEED_BYTES * masks.length);
    const signs = new Int8Array(masks.length);
    masks.forEach((m, k) => {
      if (m.seed.length !== SEED_BYTES) {
        seeds.fill(0);
        throw new TributaryError('VALIDATION_FAILED', `a mask seed must be ${SEED_BYTES} bytes, got ${m.seed.length}`);
      }
      seeds.set(m.seed, SEED_BYTES * k);
      signs[k] = m.sign;
    });
    // Transferred: this thread keeps no copy of the seeds.
    const reply = await this.pool.call({ seeds, signs, length }, [seeds.buffer]);
    // Viewed here, so the array is of this realm's Uint32Array (a test VM's too).
    return new Uint32Array(reply.sum!);
  }

  /** Checks Ed25519 signatures in a worker thread: the same answers as SignatureVerifier.verifyBytes. */
  async verifyAll(checks: readonly SignatureCheck[]): Promise<boolean[]> {
    const refusal = this.pool.failure;
    if (refusal) throw refusal;
    if (checks.length === 0) return [];
    const verify = checks.map(({ publicKeyHex, bytes, signatureHex }) => ({ publicKeyHex, bytes, signatureHex }));
    const reply = await this.pool.call({ verify });
    return Array.from(reply.valid!, (v) => v === 1);
  }

  /**
   * quantizeClippedWeightedUpdate in a worker thread: the parameters and weight ratio are checked here
   * first (the same errors, in the same order); a delta with a non-finite value is quantised in this
   * thread instead, which throws CODEC_NON_FINITE exactly as the in-thread path does.
   */
  async quantizeClippedWeighted(
    delta: Float32Array,
    examples: number,
    maxWeight: number,
    params: QuantizationParameters,
  ): Promise<QuantizeResult> {
    const refusal = this.pool.failure;
    if (refusal) throw refusal;
    const { clippingRange, quantizationRange } = validateQuantization(params);
    const ratio = Math.fround(weightRatio(examples, maxWeight));
    const reply = await this.pool.call({ quantize: { delta, ratio, clippingRange, quantizationRange } });
    if (reply.nonFinite) return quantizeClippedWeightedUpdate(delta, examples, maxWeight, params);
    return { values: new Uint32Array(reply.values!), clipped: reply.clipped!, maxAbs: reply.maxAbs! };
  }

  /** Terminates every thread; calls in flight fail with SECAGG_MASK_WORKER_FAILED. Safe to call twice. */
  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * quantizeClippedWeightedUpdate through `quantizer` (a SecAggWorkerPool) when given; if it failed
 * (SECAGG_MASK_WORKER_FAILED: `onFallback` hears why) or none is given, in this thread. The result,
 * and any other error, are the in-thread ones.
 */
export async function quantizeClippedWeightedWith(
  quantizer: UpdateQuantizer | undefined,
  delta: Float32Array,
  examples: number,
  maxWeight: number,
  params: QuantizationParameters,
  onFallback: (err: TributaryError) => void = () => undefined,
): Promise<QuantizeResult> {
  if (quantizer) {
    try {
      return await quantizer.quantizeClippedWeighted(delta, examples, maxWeight, params);
    } catch (err) {
      if (!(err instanceof TributaryError && err.code === 'SECAGG_MASK_WORKER_FAILED')) throw err;
      onFallback(err);
    }
  }
  return quantizeClippedWeightedUpdate(delta, examples, maxWeight, params);
}

let shared: SecAggWorkerPool | undefined;
let sharedThreads: number | undefined;

/**
 * Sizes the process-wide pool (default defaultSecAggWorkerThreads()); 0 turns precomputation off, so clients
 * mask in their own thread (benchmarks compare the two). Takes effect for sessions opened after it.
 */
export function setSecAggWorkerThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 0) {
    throw new TributaryError('CONFIG_INVALID', `secagg: mask threads must be an integer >= 0; got ${String(threads)}`);
  }
  sharedThreads = threads;
  const old = shared;
  shared = undefined;
  void old?.close();
}

/** The process-wide pool every SecAgg+ client of this process uses (a new one after a failure); undefined when turned off. */
export function sharedSecAggWorkers(): SecAggWorkerPool | undefined {
  if (sharedThreads === 0) return undefined;
  if (!shared?.usable) shared = new SecAggWorkerPool(sharedThreads ?? defaultSecAggWorkerThreads());
  return shared;
}
