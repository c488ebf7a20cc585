import { randomFillSync } from 'node:crypto';
import { addWordsSimd, WORD_ADD_WASM } from './wordAdd';

function jsSum(a: Uint32Array, b: Uint32Array, sign: 1 | -1): Uint32Array {
  const out = new Uint32Array(a);
  for (let i = 0; i < out.length; i++) out[i] = sign === 1 ? out[i] + b[i] : out[i] - b[i];
  return out;
}

const same = (x: Uint32Array, y: Uint32Array) =>
  Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

describe('addWordsSimd', () => {
  it('is a valid WebAssembly module with SIMD (Node 20 has it, so the fast path is the one tested)', () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    expect(wasm.validate(WORD_ADD_WASM)).toBe(true);
    expect(addWordsSimd(new Uint32Array(4096), new Uint32Array(4096), 1)).toBe(true);
  });

  it.each([1024, 1025, 1026, 1027, 4099, 101_111])('%i words: the JavaScript loop mod 2^32, both signs', (n) => {
    const a = randomFillSync(new Uint32Array(n));
    const b = randomFillSync(new Uint32Array(n));
    a[0] = 0xffffffff; // wraps on add
    b[0] = 2;
    a[n - 1] = 1; // wraps on subtract: the last word sits in the 16-byte block the tail pads
    b[n - 1] = 3;
    for (const sign of [1, -1] as const) {
      const t = new Uint32Array(a);
      expect(addWordsSimd(t, b, sign)).toBe(true);
      expect(same(t, jsSum(a, b, sign))).toBe(true);
    }
  });

  it('reads and writes views at any offset and leaves the words around them alone', () => {
    const backing = randomFillSync(new Uint32Array(6000));
    const before = new Uint32Array(backing);
    const target = backing.subarray(7, 7 + 2500);
    const other = randomFillSync(new Uint32Array(2600)).subarray(3, 3 + 2500);
    const expected = jsSum(target, other, 1);
    expect(addWordsSimd(target, other, 1)).toBe(true);
    expect(same(target, expected)).toBe(true);
    expect(same(backing.subarray(0, 7), before.subarray(0, 7))).toBe(true);
    expect(same(backing.subarray(2507), before.subarray(2507))).toBe(true);
  });

  it('a second call starts from a clean scratch: a longer vector, then a shorter one, then the same one twice', () => {
    for (const n of [70_001, 1500, 1500, 70_001]) {
      const a = randomFillSync(new Uint32Array(n));
      const b = randomFillSync(new Uint32Array(n));
      const t = new Uint32Array(a);
      addWordsSimd(t, b, -1);
      expect(same(t, jsSum(a, b, -1))).toBe(true);
    }
  });

  it('leaves short vectors to the JavaScript loop (returns false and changes nothing)', () => {
    const t = Uint32Array.from([1, 2, 3]);
    expect(addWordsSimd(t, Uint32Array.from([1, 1, 1]), 1)).toBe(false);
    expect(Array.from(t)).toEqual([1, 2, 3]);
  });
});
