import { hkdfSync } from 'node:crypto';
import { generateKeyPair, open, PAIRWISE_MASK_INFO, pairwiseMaskSeed, publicKeyOf, randomSeed, seal } from './keys';
import { addInPlace, applyMask, applyMasks, expandMask, subtractInPlace } from './masks';
import {
  ClientToServerSchema,
  CollectMaskedVectorsReplySchema,
  ServerToClientSchema,
  SetupReplySchema,
  UnmaskReplySchema,
  bytesToVector,
  vectorToBytes,
} from './messages';
import { neighbourGraph, recommendedNeighbourCount, recommendedThreshold, validateGraphParameters } from './neighbours';
import {
  MODULUS,
  dequantizeSum,
  dequantizeWeightedSum,
  maxClientsFor,
  clipAndWeightUpdate,
  quantize,
  quantizeClippedWeightedUpdate,
  quantizeWeightedUpdate,
  sumErrorBound,
  weightSumErrorBound,
  weightUpdate,
  weightedMeanErrorBound,
  weightedMeanFromSum,
} from './quantize';
import { combineShares, splitSecret } from './shamir';

const params = { clippingRange: 2, quantizationRange: 2 ** 16 };

describe('quantize', () => {
  it('counts (never silently clips) out-of-range values, and can reject them', () => {
    const r = quantize([0, 1.5, 2.5, -3, 2], params);
    expect(r.clipped).toBe(2);
    expect(r.maxAbs).toBe(3);
    expect(Array.from(r.values)).toEqual([32768, 57344, 65536, 0, 65536]);
    expect(() => quantize([0, 2.5], params, { outOfRange: 'reject' })).toThrow(/outside the clipping range/);
    expect(() => quantize([NaN], params)).toThrow(expect.objectContaining({ code: 'CODEC_NON_FINITE' }));
  });

  it('the dequantised sum of n clients is within n * c / R of the float sum', () => {
    const n = 40;
    const L = 5000;
    const xs = Array.from({ length: n }, () => Float32Array.from({ length: L }, () => (Math.random() * 2 - 1) * 2));
    const sum = new Uint32Array(L);
    for (const x of xs) addInPlace(sum, quantize(x, params).values);
    const deq = dequantizeSum(sum, n, params);
    const bound = sumErrorBound(n, params);
    let worst = 0;
    for (let i = 0; i < L; i++) {
      let exact = 0;
      for (const x of xs) exact += x[i];
      worst = Math.max(worst, Math.abs(deq[i] - exact));
    }
    expect(worst).toBeLessThanOrEqual(bound + 1e-12);
    expect(worst).toBeGreaterThan(bound / 100); // the bound is not vacuous
    expect(maxClientsFor(params)).toBe(65536 - 1);
    expect(() => dequantizeSum(sum, 70000, params)).toThrow(/n must be/);
  });

  it('the weighted mean (Flower-style ratio weighting) survives within its bound', () => {
    const n = 10;
    const L = 1000;
    const maxWeight = 1000;
    const examples = Array.from({ length: n }, (_, i) => 50 + 97 * i);
    const deltas = examples.map(() => Float32Array.from({ length: L }, () => Math.random() * 2 - 1));
    const sum = new Uint32Array(L + 1);
    const weighted = deltas.map((d, i) => weightUpdate(d, examples[i], maxWeight));
    for (const w of weighted) addInPlace(sum, quantizeWeightedUpdate(w, params).values);
    const mean = weightedMeanFromSum(dequantizeWeightedSum(sum, n, params));
    const ratioSum = weighted.reduce((a, w) => a + w[L], 0);
    for (let i = 0; i < L; i++) {
      let num = 0;
      let den = 0;
      for (let c = 0; c < n; c++) {
        num += deltas[c][i] * examples[c];
        den += examples[c];
      }
      const exact = num / den;
      // + float32 rounding of delta * ratio (relative 2^-24 per term).
      const bound = weightedMeanErrorBound(Math.abs(exact), ratioSum, n, params) + 1e-6;
      expect(Math.abs(mean[i] - exact)).toBeLessThanOrEqual(bound);
    }
  });

  it('quantises the weight ratio on its own [0, 1] range: exact steps of 1/R, never negative', () => {
    const R = params.quantizationRange;
    // Values on [-2, 2] as quantize does; the ratio 0.25 is 0.25 R, not (0.25 + 2) R / 4.
    const q = quantizeWeightedUpdate([0, 2, -2, 0.25], params);
    expect(Array.from(q.values)).toEqual([R / 2, R, 0, R / 4]);
    expect(quantizeWeightedUpdate([0, 1], params).values[1]).toBe(R);
    expect(quantizeWeightedUpdate([0, 0], params).values[1]).toBe(0);
    // A one-example client at maxExampleWeight 1000 is 65.5 steps of 1/R, rounded to 66.
    expect(quantizeWeightedUpdate(weightUpdate([0.5], 1, 1000), params).values[1]).toBe(Math.round(R / 1000));
    for (const bad of [-1e-9, -0.5, 1.000001, 2]) {
      expect(() => quantizeWeightedUpdate([0, bad], params)).toThrow(
        expect.objectContaining({ code: 'VALIDATION_FAILED' }),
      );
    }
    expect(() => quantizeWeightedUpdate([0, Number.NaN], params)).toThrow(
      expect.objectContaining({ code: 'CODEC_NON_FINITE' }),
    );
    expect(() => quantizeWeightedUpdate([], params)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
  });

  it('dequantizes the summed weight within n / (2R), and a wrapped (negative) ratio lands far above n', () => {
    const n = 7;
    const ratios = Array.from({ length: n }, (_, i) => (i + 1) / 9.3);
    const sum = new Uint32Array(2);
    for (const r of ratios) addInPlace(sum, quantizeWeightedUpdate([0.1, r], params).values);
    const back = dequantizeWeightedSum(sum, n, params);
    const exact = ratios.reduce((a, b) => a + b, 0);
    expect(Math.abs(back[1] - exact)).toBeLessThanOrEqual(weightSumErrorBound(n, params));
    expect(back[0]).toBeCloseTo(0.1 * n, 3);
    // A client that adds 2^32 - k after masking subtracts k: below the honest sum it is still in
    // [0, n], above it the sum wraps to ~2^32 / R, far outside what n clients can produce.
    const wrapped = Uint32Array.from(sum);
    wrapped[1] = (wrapped[1] + MODULUS - (sum[1] + 5)) % MODULUS;
    expect(dequantizeWeightedSum(wrapped, n, params)[1]).toBeGreaterThan(1000 * n);
  });
});

describe('quantizeClippedWeightedUpdate', () => {
  it('equals clipAndWeightUpdate then quantizeWeightedUpdate bit for bit, clip counts included', () => {
    let seed = 5;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (const clippingRange of [8, 0.1, 3.3]) {
      for (const [examples, maxWeight] of [
        [32, 32],
        [7, 1000],
        [5000, 3],
      ]) {
        const params = { clippingRange, quantizationRange: 2 ** 22 };
        const delta = Float32Array.from({ length: 2000 }, () => (rand() - 0.5) * 4 * clippingRange);
        delta[0] = clippingRange;
        delta[1] = -clippingRange;
        const weighted = clipAndWeightUpdate(delta, examples, maxWeight, clippingRange);
        const expected = quantizeWeightedUpdate(weighted.values, params);
        const fused = quantizeClippedWeightedUpdate(delta, examples, maxWeight, params);
        expect(Array.from(fused.values)).toEqual(Array.from(expected.values));
        expect([fused.clipped, fused.maxAbs]).toEqual([weighted.clipped, weighted.maxAbs]);
        expect(fused.clipped).toBeGreaterThan(0);
      }
    }
    expect(() => quantizeClippedWeightedUpdate([0, Number.NaN], 1, 1)).toThrow(
      expect.objectContaining({ code: 'CODEC_NON_FINITE' }),
    );
    expect(() => quantizeClippedWeightedUpdate([0], 0, 1)).toThrow(
      expect.objectContaining({ code: 'VALIDATION_FAILED' }),
    );
  });
});

describe('masks', () => {
  it('ChaCha20 keystream matches RFC 8439 (all-zero key and nonce)', () => {
    const m = expandMask(new Uint8Array(32), 4);
    expect(Buffer.from(vectorToBytes(m)).toString('hex')).toBe('76b8e0ada0f13d90405d6ae55386bd28');
  });
  it('add and subtract wrap mod 2^32 and cancel', () => {
    const a = Uint32Array.from([0xffffffff, 5, 0]);
    addInPlace(a, Uint32Array.from([2, 0xfffffffe, 0]));
    expect(Array.from(a)).toEqual([1, 3, 0]);
    subtractInPlace(a, Uint32Array.from([2, 4, 1]));
    expect(Array.from(a)).toEqual([0xffffffff, 0xffffffff, 0xffffffff]);
    const seed = randomSeed();
    const x = Uint32Array.from({ length: 100 }, (_, i) => i);
    applyMask(applyMask(x, seed, 1), seed, -1);
    expect(Array.from(x)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(() => expandMask(new Uint8Array(31), 4)).toThrow(/32 bytes/);
  });

  it.each([1, 5, 1000, (1 << 20) + 3])(
    'applyMasks (length %i) equals applying each mask in turn, any mix of signs',
    (length) => {
      const masks = Array.from({ length: 9 }, (_, i) => ({ seed: randomSeed(), sign: (i % 3 ? 1 : -1) as 1 | -1 }));
      const one = Uint32Array.from({ length }, (_, i) => (i * 2654435761) >>> 0);
      const fused = Uint32Array.from(one);
      for (const m of masks) applyMask(one, m.seed, m.sign);
      applyMasks(fused, masks);
      expect(Buffer.from(fused.buffer).equals(Buffer.from(one.buffer))).toBe(true);
      applyMasks(
        fused,
        masks.map((m) => ({ seed: m.seed, sign: m.sign === 1 ? -1 : 1 })),
      );
      expect(fused.every((x, i) => x === (i * 2654435761) >>> 0)).toBe(true);
      expect(() => applyMasks(fused, [{ seed: new Uint8Array(31), sign: 1 }])).toThrow(/32 bytes/);
    },
  );

  it('removing any strict subset of the masks does not reveal the input', () => {
    const L = 256;
    const input = new Uint32Array(L).fill(42);
    const me = generateKeyPair();
    const peers = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
    const selfSeed = randomSeed();
    const seeds = peers.map((p) => pairwiseMaskSeed(me.secretKey, p.publicKey, 'r'));
    const all = [
      { seed: selfSeed, sign: 1 as const },
      ...seeds.map((seed, i) => ({ seed, sign: (i % 2 ? 1 : -1) as 1 | -1 })),
    ];
    const masked = Uint32Array.from(input);
    for (const m of all) applyMask(masked, m.seed, m.sign);
    const equalsInput = (v: Uint32Array) => v.every((x, i) => x === input[i]);
    expect(equalsInput(masked)).toBe(false);
    for (let omit = 0; omit < all.length; omit++) {
      const v = Uint32Array.from(masked);
      all.forEach((m, i) => i !== omit && applyMask(v, m.seed, m.sign === 1 ? -1 : 1));
      expect(equalsInput(v)).toBe(false);
    }
    const v = Uint32Array.from(masked);
    for (const m of all) applyMask(v, m.seed, m.sign === 1 ? -1 : 1);
    expect(equalsInput(v)).toBe(true);
  });
});

describe('keys and shamir', () => {
  it('pairwise seeds are symmetric and bound to the round; sealed bundles open only for the recipient', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const c = generateKeyPair();
    expect(pairwiseMaskSeed(a.secretKey, b.publicKey, 'r1')).toEqual(pairwiseMaskSeed(b.secretKey, a.publicKey, 'r1'));
    expect(pairwiseMaskSeed(a.secretKey, b.publicKey, 'r1')).not.toEqual(
      pairwiseMaskSeed(a.secretKey, b.publicKey, 'r2'),
    );
    expect(publicKeyOf(a.secretKey)).toEqual(a.publicKey);
    const box = seal(new Uint8Array([1, 2, 3]), b.publicKey, a.secretKey);
    expect(open(box, a.publicKey, b.secretKey)).toEqual(new Uint8Array([1, 2, 3]));
    expect(open(box, a.publicKey, c.secretKey)).toBeNull();
    box.ciphertext[0] ^= 1;
    expect(open(box, a.publicKey, b.secretKey)).toBeNull();
    expect(() => pairwiseMaskSeed(a.secretKey, new Uint8Array(32), 'r')).toThrow(/not a usable X25519 key/);
  });

  it('X25519 matches RFC 7748 section 6.1 (public keys and the shared secret under the pairwise-seed HKDF)', () => {
    const h = (x: string) => new Uint8Array(Buffer.from(x, 'hex'));
    const aliceSecret = h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const alicePublic = h('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    const bobSecret = h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    const bobPublic = h('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = h('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
    expect(publicKeyOf(aliceSecret)).toEqual(alicePublic);
    expect(publicKeyOf(bobSecret)).toEqual(bobPublic);
    const expected = new Uint8Array(hkdfSync('sha256', shared, Buffer.from('r', 'utf8'), PAIRWISE_MASK_INFO, 32));
    expect(pairwiseMaskSeed(aliceSecret, bobPublic, 'r')).toEqual(expected);
    expect(pairwiseMaskSeed(bobSecret, alicePublic, 'r')).toEqual(expected);
  });

  it('t of n shares reconstruct a 32-byte secret; t - 1 do not', async () => {
    const secret = randomSeed();
    const shares = await splitSecret(secret, 10, 6);
    expect(await combineShares(shares.slice(4))).toEqual(secret);
    expect(await combineShares(shares.slice(5))).not.toEqual(secret);
    await expect(splitSecret(secret, 5, 1)).rejects.toThrow(/threshold/);
    await expect(combineShares([shares[0], shares[0]])).rejects.toThrow(/same x-coordinate/);
  });
});

describe('neighbour graph', () => {
  it.each([5, 7, 30, 100])('n = %i: symmetric, k-regular, deterministic, order-independent', (n) => {
    const ids = Array.from({ length: n }, (_, i) => `c${i}`);
    const k = recommendedNeighbourCount(n);
    validateGraphParameters(n, k, recommendedThreshold(k));
    const g = neighbourGraph('seed', ids, k);
    expect(neighbourGraph('seed', [...ids].reverse(), k)).toEqual(g);
    expect(neighbourGraph('other', ids, k)).not.toEqual(k < n - 1 ? g : null);
    for (const [id, ns] of g) {
      expect(ns).toHaveLength(k);
      expect(new Set(ns).size).toBe(k);
      expect(ns).not.toContain(id);
      for (const j of ns) expect(g.get(j)).toContain(id);
    }
  });
  it('validates k and t', () => {
    expect(() => validateGraphParameters(10, 3, 2)).toThrow(/even/);
    expect(() => validateGraphParameters(10, 4, 2)).toThrow(/more than half/);
    expect(() => validateGraphParameters(10, 4, 5)).toThrow(/threshold/);
    expect(() => validateGraphParameters(2, 1, 2)).toThrow(/at least 3/);
  });
});

describe('message schemas reject malformed messages', () => {
  const key = new Uint8Array(32);
  const a = 'a1'.repeat(32);
  const b = 'b2'.repeat(32);
  const sig = 'cd'.repeat(64);
  const good = {
    stage: 'setup',
    roundId: 'r',
    clientId: a,
    encryptionPublicKey: key,
    maskPublicKey: key,
    keySignature: sig,
  };
  it('accepts well-formed messages', () => {
    expect(SetupReplySchema.safeParse(good).success).toBe(true);
    expect(
      ClientToServerSchema.safeParse({ stage: 'consistency-check', roundId: 'r', clientId: a, signature: sig }).success,
    ).toBe(true);
    expect(
      ServerToClientSchema.safeParse({
        stage: 'unmask',
        roundId: 'r',
        activeIds: [b],
        droppedIds: [],
        signatures: [{ clientId: b, signature: sig }],
      }).success,
    ).toBe(true);
    expect(bytesToVector(vectorToBytes(Uint32Array.from([1, 0xffffffff])))).toEqual(Uint32Array.from([1, 0xffffffff]));
  });
  it.each([
    ['unknown stage', { ...good, stage: 'bogus' }],
    ['short key', { ...good, maskPublicKey: new Uint8Array(31) }],
    ['key as string', { ...good, maskPublicKey: 'aa' }],
    ['bad client id', { ...good, clientId: 'a b' }],
    ['client id that is not a public key', { ...good, clientId: 'client-1' }],
    ['upper-case client id', { ...good, clientId: a.toUpperCase() }],
    ['unsigned keys', { ...good, keySignature: undefined }],
    ['short key signature', { ...good, keySignature: 'cd'.repeat(63) }],
    ['consistency reply without a signature', { stage: 'consistency-check', roundId: 'r', clientId: a }],
    [
      'consistency reply with a binary signature',
      { stage: 'consistency-check', roundId: 'r', clientId: a, signature: new Uint8Array(64) },
    ],
    ['extra field', { ...good, secretKey: key }],
    [
      'vector not a multiple of 4',
      { stage: 'collect-masked-vectors', roundId: 'r', clientId: a, maskedVector: new Uint8Array(5) },
    ],
    ['empty vector', { stage: 'collect-masked-vectors', roundId: 'r', clientId: a, maskedVector: new Uint8Array(0) }],
    [
      'short share',
      {
        stage: 'unmask',
        roundId: 'r',
        clientId: a,
        selfMaskShares: [{ ownerId: b, share: new Uint8Array(32) }],
        maskKeyShares: [],
      },
    ],
    [
      'too many shares',
      {
        stage: 'unmask',
        roundId: 'r',
        clientId: a,
        selfMaskShares: Array(256).fill({ ownerId: b, share: new Uint8Array(33) }),
        maskKeyShares: [],
      },
    ],
  ])('client -> server: %s', (_name, msg) => {
    expect(ClientToServerSchema.safeParse(msg).success).toBe(false);
  });
  it.each([
    [
      'modulus other than 2^32',
      {
        stage: 'setup',
        roundId: 'r',
        clientIds: [a, b, 'c3'.repeat(32)],
        params: {
          vectorLength: 1,
          neighbourCount: 2,
          threshold: 2,
          clippingRange: 8,
          quantizationRange: 4,
          modulus: 2 ** 31,
          graphSeed: 's',
        },
      },
    ],
    [
      'too few clients',
      {
        stage: 'setup',
        roundId: 'r',
        clientIds: [a],
        params: {
          vectorLength: 1,
          neighbourCount: 2,
          threshold: 2,
          clippingRange: 8,
          quantizationRange: 4,
          modulus: 2 ** 32,
          graphSeed: 's',
        },
      },
    ],
    [
      'oversized ciphertext',
      {
        stage: 'collect-masked-vectors',
        roundId: 'r',
        bundles: [{ from: b, nonce: new Uint8Array(24), ciphertext: new Uint8Array(5000) }],
      },
    ],
    [
      'bad nonce',
      {
        stage: 'collect-masked-vectors',
        roundId: 'r',
        bundles: [{ from: b, nonce: new Uint8Array(12), ciphertext: new Uint8Array(50) }],
      },
    ],
    ['ids not an array', { stage: 'unmask', roundId: 'r', activeIds: a, droppedIds: [], signatures: [] }],
    ['unmask without signatures', { stage: 'unmask', roundId: 'r', activeIds: [b], droppedIds: [] }],
    [
      'more signatures than neighbours',
      {
        stage: 'unmask',
        roundId: 'r',
        activeIds: [],
        droppedIds: [],
        signatures: Array(256).fill({ clientId: b, signature: sig }),
      },
    ],
    ['an empty survivor set', { stage: 'consistency-check', roundId: 'r', survivorIds: [] }],
    [
      'a survivor set above the client limit',
      { stage: 'consistency-check', roundId: 'r', survivorIds: Array(1024).fill(b) },
    ],
    [
      'relayed keys without their signature',
      {
        stage: 'share-keys',
        roundId: 'r',
        peers: [{ clientId: b, encryptionPublicKey: key, maskPublicKey: key }],
      },
    ],
  ])('server -> client: %s', (_name, msg) => {
    expect(ServerToClientSchema.safeParse(msg).success).toBe(false);
  });
  it('exported per-stage schemas are strict', () => {
    expect(
      CollectMaskedVectorsReplySchema.safeParse({
        stage: 'collect-masked-vectors',
        roundId: 'r',
        clientId: a,
        maskedVector: [1, 2, 3, 4],
      }).success,
    ).toBe(false);
    expect(
      UnmaskReplySchema.safeParse({ stage: 'unmask', roundId: 'r', clientId: a, selfMaskShares: [] }).success,
    ).toBe(false);
  });
});
