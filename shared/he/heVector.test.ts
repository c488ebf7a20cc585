import { codeOf } from '../../test/support/codeOf';
import { drownInNoise } from '../../test/support/heCiphertexts';
import {
  CiphertextSum,
  ciphertextLayout,
  checkCiphertexts,
  generateHeKeys,
  HE_PARAMETER_SETS,
  heCiphertextCount,
  HeDecryptor,
  HeEncryptor,
  type HeKeyPair,
  heQuantizationStep,
  heSumErrorBound,
  largestLevel,
  maxClientsForHeadroom,
  quantizeSigned,
  sealContextFor,
} from './index';

jest.setTimeout(120_000);

function randomVector(length: number, scale: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31 - 0.5) * 2 * scale;
  });
}

describe.each(['bgv-4096', 'bfv-4096'] as const)('%s', (name) => {
  const set = HE_PARAMETER_SETS[name];
  const layout = ciphertextLayout(set);
  const params = { set, bits: 16, clipRange: 1 };

  /** n copies of one ciphertext vector summed, by doubling (the same noise as n additions, in log n steps). */
  function times(one: Uint8Array, n: number, count = 1): CiphertextSum {
    const acc = new CiphertextSum(layout, count);
    let power: Uint8Array = one;
    for (let m = n; m > 0; m = Math.floor(m / 2)) {
      if (m % 2 === 1) acc.add(power);
      if (m > 1) {
        const twice = new CiphertextSum(layout, count);
        twice.add(power);
        twice.add(power);
        power = twice.toBytes();
      }
    }
    return acc;
  }

  let keys: HeKeyPair;
  let encryptor: HeEncryptor;
  let decryptor: HeDecryptor;

  beforeAll(async () => {
    keys = await generateHeKeys(set);
    encryptor = await HeEncryptor.create(set, keys.publicKey);
    decryptor = await HeDecryptor.create(set, keys.secretKey);
  });

  afterAll(() => {
    encryptor?.delete();
    decryptor?.delete();
  });

  describe('the parameter set', () => {
    it('is what SEAL builds at 192-bit security, with the recorded primes and byte layouts', async () => {
      const { context } = await sealContextFor(set);
      expect(context.parametersSet()).toBe(true);
      expect(set.coeffModulusBits.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(set.standardMaxLogQ);
      expect(keys.publicKey.length).toBe(set.publicKeyBytes);
      expect(keys.secretKey.length).toBe(set.secretKeyBytes);
      const { ciphertexts } = encryptor.encrypt([0.5], params);
      expect(Buffer.from(ciphertexts.subarray(0, layout.prefix.length)).toString('hex')).toBe(set.ciphertextPrefixHex);
      expect(Buffer.from(keys.publicKey.subarray(0, set.publicKeyPrefixHex.length / 2)).toString('hex')).toBe(
        set.publicKeyPrefixHex,
      );
    });
  });

  describe('encrypt, add, decrypt', () => {
    it('decrypts the sum of three clients exactly (the sum of their quantised levels)', () => {
      const length = 2 * set.polyModulusDegree + 17; // three ciphertexts, the last one mostly padding
      const vectors = [0, 1, 2].map((i) => randomVector(length, 0.9, 11 + i));
      const sum = new CiphertextSum(layout, heCiphertextCount(set, length));
      for (const v of vectors) sum.add(encryptor.encrypt(v, params).ciphertexts);
      expect(sum.size).toBe(3);
      const { sums, noiseBudgetBits } = decryptor.decryptSum(sum.toBytes(), params, 3, length);
      expect(noiseBudgetBits).toBeGreaterThanOrEqual(set.minNoiseBudgetBits);
      const step = heQuantizationStep(params);
      const levels = vectors.map((v) => {
        const out = new Int32Array(length);
        quantizeSigned(v, params, out);
        return out;
      });
      let notExact = 0;
      let worst = 0;
      for (let i = 0; i < length; i++) {
        const exact = levels[0][i] + levels[1][i] + levels[2][i];
        if (sums[i] !== Math.fround(exact * step)) notExact++;
        worst = Math.max(worst, Math.abs(sums[i] - (vectors[0][i] + vectors[1][i] + vectors[2][i])));
      }
      expect(notExact).toBe(0);
      expect(worst).toBeLessThanOrEqual(heSumErrorBound(params, 3));
      expect(worst).toBeGreaterThan(0);
    });

    it('counts clipped values and refuses non-finite ones', () => {
      expect(encryptor.encrypt([2, -3, 0.5, 1], params).clipped).toBe(2);
      expect(codeOf(() => encryptor.encrypt([0, Number.NaN], params))).toBe('CODEC_NON_FINITE');
    });

    it('adds exactly as SEAL Evaluator.add does, bit for bit', async () => {
      const { seal, context } = await sealContextFor(set);
      const a = encryptor.encrypt(randomVector(set.polyModulusDegree, 1, 5), params).ciphertexts;
      const b = encryptor.encrypt(randomVector(set.polyModulusDegree, 1, 6), params).ciphertexts;
      const sum = new CiphertextSum(layout, 1);
      sum.add(a);
      sum.add(b);
      const ca = seal.CipherText();
      const cb = seal.CipherText();
      const evaluator = seal.Evaluator(context);
      try {
        ca.load(context, Buffer.from(a).toString('base64'));
        cb.load(context, Buffer.from(b).toString('base64'));
        evaluator.add(ca, cb, ca);
        expect(Buffer.from(sum.toBytes()).equals(Buffer.from(ca.saveArray(seal.ComprModeType.none)))).toBe(true);
        // Nine more, the sum read out midway too (the lazy sum reduced, then added to again).
        for (let v = 0; v < 9; v++) {
          const more = encryptor.encrypt(randomVector(set.polyModulusDegree, 1, 10 + v), params).ciphertexts;
          sum.add(more);
          cb.load(context, Buffer.from(more).toString('base64'));
          evaluator.add(ca, cb, ca);
          if (v === 3 || v === 8) {
            const ours = Buffer.from(sum.toBytes());
            expect([v, ours.equals(Buffer.from(ca.saveArray(seal.ComprModeType.none)))]).toEqual([v, true]);
          }
        }
        expect(sum.size).toBe(11);
      } finally {
        ca.delete();
        cb.delete();
        evaluator.delete();
      }
    });
  });

  describe('headroom and noise at the limits', () => {
    it('sums maxSummands worst-case clients exactly, with noise budget to spare', () => {
      // The same ciphertext added n times grows the noise n-fold: worse than n independent clients.
      const n = set.maxSummands;
      expect(maxClientsForHeadroom(params, set.plainModulus)).toBeGreaterThanOrEqual(n);
      const top = encryptor.encrypt(new Float32Array(set.polyModulusDegree).fill(1), params).ciphertexts;
      const bottom = encryptor.encrypt(new Float32Array(set.polyModulusDegree).fill(-1), params).ciphertexts;
      for (const one of [top, bottom]) {
        const sum = times(one, n);
        expect(sum.size).toBeGreaterThan(0);
        const { sums, noiseBudgetBits } = decryptor.decryptSum(sum.toBytes(), params, n, set.polyModulusDegree);
        expect(noiseBudgetBits).toBeGreaterThanOrEqual(set.minNoiseBudgetBits);
        const expected = Math.fround(
          Math.sign(one === top ? 1 : -1) * n * largestLevel(params) * heQuantizationStep(params),
        );
        expect(sums.every((v) => v === expected)).toBe(true);
      }
    });

    it('holds exactly maxClientsForHeadroom clients of the widest values, and one more wraps and is refused', () => {
      const wide = { set, bits: 20, clipRange: 1 };
      const most = maxClientsForHeadroom(wide, set.plainModulus);
      expect(2n * BigInt(most) * BigInt(largestLevel(wide))).toBeLessThan(set.plainModulus);
      expect(2n * BigInt(most + 1) * BigInt(largestLevel(wide))).toBeGreaterThanOrEqual(set.plainModulus);
      const one = encryptor.encrypt(new Float32Array(8).fill(1), wide).ciphertexts;
      const sum = times(one, most);
      const atLimit = decryptor.decryptSum(sum.toBytes(), wide, most, 8);
      expect(atLimit.sums[0]).toBe(Math.fround(most * largestLevel(wide) * heQuantizationStep(wide)));
      sum.add(one);
      // most + 1 clients do not fit the headroom: refused before decryption ...
      expect(codeOf(() => decryptor.decryptSum(sum.toBytes(), wide, most + 1, 8))).toBe('CONFIG_INVALID');
      // ... and a sum claiming fewer clients wrapped past t/2, which the range check catches.
      expect(codeOf(() => decryptor.decryptSum(sum.toBytes(), wide, most, 8))).toBe('HE_DECRYPT_FAILED');
    });
  });

  describe('refusals', () => {
    const valid = () => encryptor.encrypt(randomVector(100, 1, 9), params).ciphertexts;

    it('refuses malformed ciphertexts with HE_CIPHERTEXT_INVALID and leaves the sum unchanged', () => {
      const good = valid();
      const sum = new CiphertextSum(layout, 1);
      sum.add(good);
      const before = Buffer.from(sum.toBytes());
      const mutated = (f: (b: Uint8Array) => void) => {
        const b = Uint8Array.from(good);
        f(b);
        return b;
      };
      const q = set.coeffModulus[0];
      const cases: Array<[string, Uint8Array]> = [
        ['short', good.subarray(0, good.length - 8)],
        ['long', Uint8Array.from([...good, 0])],
        ['empty', new Uint8Array(0)],
        ['compressed', mutated((b) => (b[5] = 2))],
        ['other parameters', mutated((b) => (b[20] ^= 1))],
        ['other ntt form', mutated((b) => (b[48] ^= 1))],
        ['size 3', mutated((b) => (b[49] = 3))],
        ['coefficient = q', mutated((b) => new DataView(b.buffer).setBigUint64(layout.prefix.length + 8 * 5, q, true))],
        [
          'coefficient = 2^64 - 1',
          mutated((b) => new DataView(b.buffer).setBigUint64(layout.prefix.length + 8 * 8000, 2n ** 64n - 1n, true)),
        ],
        ['transparent', mutated((b) => b.fill(0, layout.prefix.length + 8 * set.polyModulusDegree))],
      ];
      for (const [name, bytes] of cases) {
        expect([name, codeOf(() => sum.add(bytes))]).toEqual([name, 'HE_CIPHERTEXT_INVALID']);
      }
      expect(Buffer.from(sum.toBytes()).equals(before)).toBe(true);
      expect(codeOf(() => checkCiphertexts(layout, good, 2))).toBe('HE_CIPHERTEXT_INVALID');
    });

    it('refuses to decrypt a ciphertext whose noise would make decryption wrong', () => {
      // Still a well-formed ciphertext, but with noise near q/2.
      const noisy = drownInNoise(set, valid());
      expect(codeOf(() => checkCiphertexts(layout, noisy, 1))).toBeUndefined();
      expect(() => decryptor.decryptSum(noisy, params, 2, 100)).toThrow(/noise budget/);
      expect(codeOf(() => decryptor.decryptSum(noisy, params, 2, 100))).toBe('HE_DECRYPT_FAILED');
    });

    it('refuses a sum whose padding slots are not zero (a vector longer than the job says)', () => {
      const longer = encryptor.encrypt(new Float32Array(101).fill(0.5), params).ciphertexts;
      expect(codeOf(() => decryptor.decryptSum(longer, params, 2, 100))).toBe('HE_DECRYPT_FAILED');
      expect(decryptor.decryptSum(longer, params, 2, 101).sums[100]).toBeCloseTo(0.5, 4);
    });

    it('never lets a well-formed but random ciphertext abort SEAL: random coefficients load and decrypt or are refused', () => {
      let s = 12345;
      const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
      for (let trial = 0; trial < 20; trial++) {
        const bytes = valid();
        const view = new DataView(bytes.buffer);
        for (let j = 0; j < 50; j++) {
          const at = layout.prefix.length + 8 * (rand() % layout.coefficients);
          view.setBigUint64(at, ((BigInt(rand()) << 28n) ^ BigInt(rand())) % set.coeffModulus[0], true);
        }
        const code = codeOf(() => decryptor.decryptSum(bytes, params, 2, 100));
        expect([undefined, 'HE_DECRYPT_FAILED']).toContain(code);
      }
      // SEAL still works afterwards.
      expect(decryptor.decryptSum(valid(), params, 1, 100).sums.length).toBe(100);
    });
  });
});
