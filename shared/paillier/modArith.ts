/**
 * Modular arithmetic on BigInt for the hot paths (bigint-crypto-utils' modPow is plain binary
 * square-and-multiply; a sliding window saves about a fifth of the multiplications).
 * workerKernel.ts carries the same algorithms as JavaScript source for the worker threads; the
 * tests check both against bigint-crypto-utils.
 */

/** base^exp mod mod for exp >= 0, mod > 1, by left-to-right sliding-window exponentiation. */
export function modPowWindowed(base: bigint, exp: bigint, mod: bigint): bigint {
  if (exp < 0n) throw new RangeError('modPowWindowed: negative exponent');
  base %= mod;
  if (base < 0n) base += mod;
  const digits = exp.toString(2);
  const length = digits.length;
  const w = length > 512 ? 5 : length > 64 ? 4 : 1;
  // Odd powers base^1, base^3, ..., base^(2^w - 1).
  const odd: bigint[] = [base];
  const square = (base * base) % mod;
  for (let i = 1; i < 1 << (w - 1); i++) odd.push((odd[i - 1] * square) % mod);
  let acc = 1n;
  let i = 0;
  while (i < length) {
    if (digits.charCodeAt(i) === 48 /* '0' */) {
      acc = (acc * acc) % mod;
      i++;
      continue;
    }
    // The longest window of at most w digits starting here that ends in a 1.
    let j = Math.min(i + w, length);
    while (digits.charCodeAt(j - 1) === 48) j--;
    const value = parseInt(digits.slice(i, j), 2);
    for (let k = i; k < j; k++) acc = (acc * acc) % mod;
    acc = (acc * odd[(value - 1) >> 1]) % mod;
    i = j;
  }
  return acc % mod;
}

/** floor(sqrt(n)) for n >= 0 (Newton's method). */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new RangeError('isqrt: negative argument');
  if (n < 2n) return n;
  let x = 1n << BigInt((n.toString(2).length >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}
