import { gcd } from 'bigint-crypto-utils';

/**
 * Whether Paillier ciphertexts are units (coprime with n). A ciphertext c with gcd(c, n) ≠ 1, such as
 * c = n, is public knowledge to forge, never the output of an honest encryption (r^n·(1+n)^m is a
 * unit), and multiplied into an aggregate it turns every slot of the product into garbage: it must
 * be refused at upload and attributed to its sender.
 *
 * Every ciphertext is checked, at the price of about one modular multiplication each: the product
 * Π (c_i mod n) mod n is a unit exactly when every factor is (a prime of n dividing a product
 * divides one factor), so one gcd per update suffices where a gcd per ciphertext costs ~25× more
 * (bench/paillierChecks.bench.ts). Only when the product is not a unit does a binary search over
 * the prefix products name the first offending ciphertext (about log2(count) more gcds).
 */
export function firstNonUnit(ciphertexts: readonly bigint[], n: bigint): number | null {
  const prefix = new Array<bigint>(ciphertexts.length);
  let product = 1n;
  for (let i = 0; i < ciphertexts.length; i++) {
    product = (product * (ciphertexts[i] % n)) % n;
    prefix[i] = product;
  }
  if (ciphertexts.length === 0 || gcd(product, n) === 1n) return null;
  // prefix[k] is a non-unit exactly when some c_i with i <= k is one: the first such k is the answer.
  let lo = 0;
  let hi = ciphertexts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (gcd(prefix[mid], n) === 1n) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
