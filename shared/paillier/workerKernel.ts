/**
 * JavaScript source of the worker threads that encrypt and decrypt for ParallelEncryptor and
 * ParallelDecryptor. It is a string run with `new Worker(source, { eval: true })` so that it works
 * the same under tsx, jest (swc) and compiled output, with no file path to resolve and nothing to
 * transpile. It repeats, in plain JavaScript, the fixed-base encryption of fastEncryptor.ts and the
 * CRT decryption and windowed modPow of fastDecryptor.ts / modArith.ts; the tests compare the two.
 *
 * workerData:
 *   { kind: 'encrypt', n, hs, randomBits, windowBits }
 *   { kind: 'decrypt', p, q, hp, hq, qInvP }          (CRT, Paillier 1999 section 7)
 *   { kind: 'decrypt', n, lambda, mu }                 (textbook, when p and q are unknown)
 * Messages in:  { id, items: bigint[] }
 * Messages out: { id, results: bigint[] } or { id, error: string }
 */
export const WORKER_KERNEL_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { randomBytes } = require('node:crypto');

function modPow(base, exp, mod) {
  base %= mod;
  if (base < 0n) base += mod;
  const digits = exp.toString(2);
  const length = digits.length;
  const w = length > 512 ? 5 : length > 64 ? 4 : 1;
  const odd = [base];
  const square = (base * base) % mod;
  for (let i = 1; i < 1 << (w - 1); i++) odd.push((odd[i - 1] * square) % mod);
  let acc = 1n;
  let i = 0;
  while (i < length) {
    if (digits.charCodeAt(i) === 48) { acc = (acc * acc) % mod; i++; continue; }
    let j = Math.min(i + w, length);
    while (digits.charCodeAt(j - 1) === 48) j--;
    const value = parseInt(digits.slice(i, j), 2);
    for (let k = i; k < j; k++) acc = (acc * acc) % mod;
    acc = (acc * odd[(value - 1) >> 1]) % mod;
    i = j;
  }
  return acc % mod;
}

function encryptKernel(d) {
  const n = d.n, n2 = n * n, bits = d.randomBits, w = d.windowBits;
  const windows = Math.ceil(bits / w);
  const perWindow = (1 << w) - 1;
  const lastMask = (1 << (bits - w * (windows - 1))) - 1;
  const table = new Array(windows * perWindow);
  let base = d.hs % n2;
  for (let i = 0; i < windows; i++) {
    let x = base;
    for (let k = 0; k < perWindow; k++) {
      table[i * perWindow + k] = x;
      if (k < perWindow - 1) x = (x * base) % n2;
    }
    base = (table[i * perWindow + perWindow - 1] * base) % n2;
  }
  const bytes = Math.ceil(bits / 8) + 3;
  return (m) => {
    if (typeof m !== 'bigint' || m < 0n || m >= n) throw new RangeError('plaintext outside [0, n)');
    for (;;) {
      const r = randomBytes(bytes);
      let acc = 1n;
      for (let i = 0; i < windows; i++) {
        const bit = i * w, at = bit >> 3;
        let digit = ((r[at] | (r[at + 1] << 8) | (r[at + 2] << 16)) >>> (bit & 7)) & perWindow;
        if (i === windows - 1) digit &= lastMask;
        if (digit !== 0) acc = acc === 1n ? table[i * perWindow + digit - 1] : (acc * table[i * perWindow + digit - 1]) % n2;
      }
      if (acc === 1n) continue;
      return ((1n + m * n) * acc) % n2;
    }
  };
}

function decryptKernel(d) {
  if (d.p !== undefined) {
    const p = d.p, q = d.q, p2 = p * p, q2 = q * q, n2 = (p * q) ** 2n;
    return (c) => {
      if (typeof c !== 'bigint' || c <= 0n || c >= n2) throw new RangeError('ciphertext outside [1, n^2)');
      const mp = (((modPow(c, p - 1n, p2) - 1n) / p) * d.hp) % p;
      const mq = (((modPow(c, q - 1n, q2) - 1n) / q) * d.hq) % q;
      let t = ((mp - mq) * d.qInvP) % p;
      if (t < 0n) t += p;
      return mq + q * t;
    };
  }
  const n = d.n, n2 = n * n;
  return (c) => {
    if (typeof c !== 'bigint' || c <= 0n || c >= n2) throw new RangeError('ciphertext outside [1, n^2)');
    return (((modPow(c, d.lambda, n2) - 1n) / n) * d.mu) % n;
  };
}

const run = workerData.kind === 'encrypt' ? encryptKernel(workerData) : decryptKernel(workerData);
parentPort.on('message', (message) => {
  try {
    parentPort.postMessage({ id: message.id, results: message.items.map(run) });
  } catch (err) {
    parentPort.postMessage({ id: message.id, error: String((err && err.message) || err) });
  }
});
`;
