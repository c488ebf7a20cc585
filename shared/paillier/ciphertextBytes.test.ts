import { ciphertextWidth, ciphertextsFromBytes, ciphertextsToBytes } from './ciphertextBytes';

describe('fixed-width ciphertext bytes', () => {
  const n = (1n << 1023n) + 12345n;
  const width = ciphertextWidth(n);

  it('has the width of n² and round-trips values of every size', () => {
    expect(width).toBe(256);
    const values = [1n, 255n, 256n, n * n - 1n, n + 7n];
    const bytes = ciphertextsToBytes(values, width);
    expect(bytes.length).toBe(values.length * width);
    expect(bytes[width - 1]).toBe(1); // big-endian
    expect(ciphertextsFromBytes(bytes, width, { count: values.length, modulus: n * n })).toEqual(values);
  });

  it('refuses wrong lengths, out-of-range values and values too wide', () => {
    const bytes = ciphertextsToBytes([5n, 6n], width);
    expect(() => ciphertextsFromBytes(bytes.subarray(1), width)).toThrow(
      expect.objectContaining({ code: 'PAILLIER_CIPHERTEXT_INVALID' }),
    );
    expect(() => ciphertextsFromBytes(bytes, width, { count: 3 })).toThrow(
      expect.objectContaining({ code: 'PAILLIER_CIPHERTEXT_INVALID' }),
    );
    expect(() => ciphertextsFromBytes(ciphertextsToBytes([0n], width), width, { modulus: n * n })).toThrow(/outside/);
    expect(() => ciphertextsFromBytes(ciphertextsToBytes([n * n], width), width, { modulus: n * n })).toThrow(
      /outside/,
    );
    expect(() => ciphertextsToBytes([1n << BigInt(width * 8)], width)).toThrow(/does not fit/);
    expect(() => ciphertextsToBytes([-1n], width)).toThrow(/non-negative/);
  });
});
