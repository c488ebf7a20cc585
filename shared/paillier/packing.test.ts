import { ceilLog2, createPackingLayout, pack, packedLength, unpack } from './packing';
import { dequantizeSum, quantize, sumErrorBound } from './quantize';
import { codeOf } from '../../test/support/codeOf';

/** Slot-wise sum of packed plaintexts, as the homomorphic product decrypts to. */
const addPlaintexts = (vectors: bigint[][]) => vectors[0].map((_, k) => vectors.reduce((s, v) => s + v[k], 0n));

describe('packing layout', () => {
  it('gives each slot bits + ceil(log2(maxClients)) bits and floor((keyBits - 2) / slotBits) slots', () => {
    expect(createPackingLayout({ maxClients: 100 })).toEqual({
      keyBits: 2048,
      bits: 16,
      maxClients: 100,
      headroomBits: 7,
      slotBits: 23,
      slotsPerCiphertext: 88,
      plaintextBits: 2024,
    });
    expect(createPackingLayout({ keyBits: 1024, bits: 8, maxClients: 1 })).toMatchObject({
      headroomBits: 0,
      slotBits: 8,
      slotsPerCiphertext: 127,
    });
    expect(createPackingLayout({ keyBits: 2048, bits: 16, maxClients: 64 })).toMatchObject({
      headroomBits: 6,
      slotsPerCiphertext: 93,
    });
    expect(createPackingLayout({ keyBits: 2048, bits: 16, maxClients: 65 })).toMatchObject({ headroomBits: 7 });
    expect([1, 2, 3, 4, 5, 1024, 1025].map(ceilLog2)).toEqual([0, 1, 2, 2, 3, 10, 11]);
    expect(Object.isFrozen(createPackingLayout({ maxClients: 2 }))).toBe(true);
  });

  it('rejects bad parameters with CONFIG_INVALID and a reason', () => {
    const bad = [
      { keyBits: 100, maxClients: 2 },
      { keyBits: 2048.5, maxClients: 2 },
      { bits: 1, maxClients: 2 },
      { bits: 33, maxClients: 2 },
      { maxClients: 0 },
      { maxClients: -3 },
      { maxClients: 1.5 },
      { maxClients: NaN },
    ];
    for (const options of bad) expect(codeOf(() => createPackingLayout(options))).toBe('CONFIG_INVALID');
    expect(() => createPackingLayout({ bits: 32, maxClients: 2 ** 22 })).toThrow(/32 \+ 22 = 54 bits, more than 53/);
    expect(() => createPackingLayout({ keyBits: 512, bits: 32, maxClients: 2 ** 21 })).not.toThrow();
  });
});

describe('pack / unpack', () => {
  const layout = createPackingLayout({ keyBits: 1024, bits: 12, maxClients: 10 });

  it('round-trips levels, including a partial last plaintext, below 2^(keyBits - 2)', () => {
    for (const length of [0, 1, layout.slotsPerCiphertext, layout.slotsPerCiphertext + 1, 1000]) {
      const levels = Uint32Array.from({ length }, (_, i) => (i * 2654435761) % 4096);
      const packed = pack(levels, layout);
      expect(packed.length).toBe(packedLength(layout, length));
      for (const m of packed) expect(m < 1n << BigInt(layout.keyBits - 2)).toBe(true);
      expect(Array.from(unpack(packed, layout, length))).toEqual(Array.from(levels));
    }
  });

  it('round-trips negative values through quantize → pack → unpack → dequantize', () => {
    const q = { bits: layout.bits, clipRange: 1 };
    const x = Float32Array.from({ length: 300 }, (_, i) => -1 + (2 * i) / 299);
    const packed = pack(quantize(x, q).values, layout);
    const back = dequantizeSum(unpack(packed, layout, x.length), q, 1);
    x.forEach((v, i) => expect(Math.abs(back[i] - v)).toBeLessThanOrEqual(sumErrorBound(q, 1)));
    expect(back[0]).toBe(-1);
    expect(back[299]).toBe(1);
  });

  it('sums maxClients vectors at the extremes of the range with no carry into the next slot', () => {
    for (const maxClients of [1, 7, 8, 9, 100]) {
      const l = createPackingLayout({ keyBits: 1024, bits: 16, maxClients });
      const q = { bits: l.bits, clipRange: 3 };
      const length = 2 * l.slotsPerCiphertext + 5;
      const top = new Float32Array(length).fill(3);
      const bottom = new Float32Array(length).fill(-3);
      // alternating ends: a carry out of a full slot would show up in its (minimal) neighbour
      const zigzag = Float32Array.from({ length }, (_, i) => (i % 2 ? 3 : -3));
      // the largest level a slot can hold (2^bits - 1), above what quantize produces
      const allOnes = new Uint32Array(length).fill(2 ** l.bits - 1);
      for (const [x, expected] of [
        [top, 3 * maxClients],
        [bottom, -3 * maxClients],
      ] as const) {
        const sum = addPlaintexts(Array.from({ length: maxClients }, () => pack(quantize(x, q).values, l)));
        for (const m of sum) expect(m < 1n << BigInt(l.keyBits - 2)).toBe(true);
        const total = dequantizeSum(unpack(sum, l, length), q, maxClients);
        total.forEach((v) => expect(Math.abs(v - expected)).toBeLessThanOrEqual(sumErrorBound(q, maxClients)));
      }
      const zig = unpack(
        addPlaintexts(Array.from({ length: maxClients }, () => pack(quantize(zigzag, q).values, l))),
        l,
        length,
      );
      zig.forEach((s, i) => expect(s).toBe(i % 2 ? maxClients * (2 ** l.bits - 2) : 0));
      const ones = unpack(addPlaintexts(Array.from({ length: maxClients }, () => pack(allOnes, l))), l, length);
      ones.forEach((s) => expect(s).toBe(maxClients * (2 ** l.bits - 1)));
    }
  });

  it('needs the headroom: maxClients + 1 full slots would carry into the next slot', () => {
    const l = createPackingLayout({ keyBits: 1024, bits: 16, maxClients: 8 });
    const full = [2 ** l.bits - 1, 0];
    const eight = unpack(addPlaintexts(Array.from({ length: 8 }, () => pack(full, l))), l, 2);
    expect(Array.from(eight)).toEqual([8 * (2 ** l.bits - 1), 0]);
    const nine = unpack(addPlaintexts(Array.from({ length: 9 }, () => pack(full, l))), l, 2);
    expect(Array.from(nine)).toEqual([9 * (2 ** l.bits - 1) - 2 ** l.slotBits, 1]); // 9·(2^16 - 1) ≥ 2^19: carry
  });

  it('rejects levels outside [0, 2^bits) and plaintexts that no packing produced', () => {
    expect(codeOf(() => pack([4096], layout))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => pack([-1], layout))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => pack([1.5], layout))).toBe('VALIDATION_FAILED');
    const packed = pack([1, 2, 3], layout);
    expect(codeOf(() => unpack(packed, layout, 3 + layout.slotsPerCiphertext))).toBe('VALIDATION_FAILED'); // wrong count
    expect(codeOf(() => unpack(packed, layout, 2))).toBe('VALIDATION_FAILED'); // slot 2 is past the length but not 0
    expect(codeOf(() => unpack([1n << BigInt(layout.plaintextBits)], layout, 1))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => unpack([-1n], layout, 1))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => packedLength(layout, -1))).toBe('VALIDATION_FAILED');
  });
});
