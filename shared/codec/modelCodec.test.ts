import { contentHash, decodeManifest, decodeTensors, encodeTensors, encodedByteLength } from './modelCodec';
import { type NamedTensor, manifestOf } from './tensors';
import { codeOf } from '../../test/support/codeOf';

function randomTensors(): NamedTensor[] {
  const shapes = [[3, 4], [7], [2, 2, 3], [1]];
  return shapes.map((shape, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let j = 0; j < n; j++) data[j] = (Math.random() - 0.5) * 10 ** ((j % 7) - 3);
    return { name: `layer${i}/w${'é'.repeat(i)}`, shape, data };
  });
}

describe('model codec', () => {
  it('round-trips names, shapes and bit-exact values', () => {
    const tensors = randomTensors();
    tensors[0].data[0] = -0;
    tensors[0].data[1] = 3.4028234663852886e38;
    tensors[0].data[2] = 1.401298464324817e-45;
    const bytes = encodeTensors(tensors);
    expect(bytes.length).toBe(encodedByteLength(manifestOf(tensors)));
    const back = decodeTensors(bytes);
    expect(back.map((t) => [t.name, t.shape])).toEqual(tensors.map((t) => [t.name, t.shape]));
    back.forEach((t, i) =>
      expect(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)).toEqual(
        Buffer.from(tensors[i].data.buffer, tensors[i].data.byteOffset, tensors[i].data.byteLength),
      ),
    );
    expect(Object.is(back[0].data[0], -0)).toBe(true);
  });

  it('decodes zero-copy views from an unaligned buffer correctly', () => {
    const tensors = randomTensors();
    const bytes = encodeTensors(tensors);
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    const back = decodeTensors(shifted, { zeroCopy: true });
    expect(Array.from(back[1].data)).toEqual(Array.from(tensors[1].data));
  });

  it('hashes content with SHA-256 and the hash changes with one bit', () => {
    const bytes = encodeTensors(randomTensors());
    const h = contentHash(bytes);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    bytes[bytes.length - 1] ^= 1;
    expect(contentHash(bytes)).not.toBe(h);
  });

  it('rejects malformed, truncated, padded and oversize payloads with codes', () => {
    const bytes = encodeTensors(randomTensors());
    expect(codeOf(() => decodeTensors(bytes.subarray(0, 5)))).toBe('CODEC_MALFORMED');
    expect(codeOf(() => decodeTensors(bytes.subarray(0, bytes.length - 4)))).toBe('CODEC_MALFORMED');
    expect(codeOf(() => decodeTensors(Buffer.concat([bytes, Buffer.alloc(4)])))).toBe('CODEC_MALFORMED');
    const badMagic = Buffer.from(bytes);
    badMagic.write('XXXX', 0, 'latin1');
    expect(codeOf(() => decodeTensors(badMagic))).toBe('CODEC_MALFORMED');
    const badJson = Buffer.from(bytes);
    badJson[12] = 0x7b + 1;
    expect(codeOf(() => decodeTensors(badJson))).toBe('CODEC_MALFORMED');
    const hugeHeader = Buffer.from(bytes);
    hugeHeader.writeUInt32LE(0xffffffff, 8);
    expect(codeOf(() => decodeTensors(hugeHeader))).toBe('CODEC_LIMIT_EXCEEDED');
    expect(
      codeOf(() => decodeTensors(bytes, { limits: { maxHeaderBytes: 1e6, maxTensors: 2, maxParameters: 1e6 } })),
    ).toBe('CODEC_LIMIT_EXCEEDED');
    expect(
      codeOf(() => decodeTensors(bytes, { limits: { maxHeaderBytes: 1e6, maxTensors: 10, maxParameters: 5 } })),
    ).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('checks declared sizes before allocating: a header claiming 1e14 values fails fast', () => {
    const header = Buffer.from(JSON.stringify({ tensors: [{ name: 'w', shape: [1e7, 1e7] }] }));
    const buf = Buffer.alloc(12 + header.length);
    buf.write('TRBT', 0, 'latin1');
    buf.writeUInt16LE(1, 4);
    buf.writeUInt32LE(header.length, 8);
    header.copy(buf, 12);
    expect(codeOf(() => decodeManifest(buf))).toBe('CODEC_LIMIT_EXCEEDED');
  });

  it('rejects NaN and Infinity unless told otherwise', () => {
    const tensors = randomTensors();
    tensors[2].data[5] = NaN;
    expect(codeOf(() => decodeTensors(encodeTensors(tensors)))).toBe('CODEC_NON_FINITE');
    tensors[2].data[5] = -Infinity;
    expect(codeOf(() => decodeTensors(encodeTensors(tensors)))).toBe('CODEC_NON_FINITE');
    expect(decodeTensors(encodeTensors(tensors), { requireFinite: false })[2].data[5]).toBe(-Infinity);
  });

  it('checks the manifest when one is expected', () => {
    const tensors = randomTensors();
    const bytes = encodeTensors(tensors);
    const expected = manifestOf(tensors);
    expect(decodeTensors(bytes, { expected })).toHaveLength(4);
    expect(codeOf(() => decodeTensors(bytes, { expected: expected.slice(1) }))).toBe('MODEL_SHAPE_MISMATCH');
    const reshaped = expected.map((e, i) => (i === 0 ? { ...e, shape: [4, 3] } : e));
    expect(codeOf(() => decodeTensors(bytes, { expected: reshaped }))).toBe('MODEL_SHAPE_MISMATCH');
  });

  it('encodes 10M parameters (40 MB) exactly', () => {
    const data = new Float32Array(10_000_000);
    for (let i = 0; i < data.length; i += 997) data[i] = i;
    const bytes = encodeTensors([{ name: 'big', shape: [10_000, 1_000], data }]);
    const back = decodeTensors(bytes, { zeroCopy: true });
    expect(back[0].data.length).toBe(10_000_000);
    expect(back[0].data[997 * 5000]).toBe(997 * 5000);
  });

  it('refuses to encode a tensor whose data does not match its shape', () => {
    expect(codeOf(() => encodeTensors([{ name: 'w', shape: [2, 2], data: new Float32Array(3) }]))).toBe(
      'CODEC_MALFORMED',
    );
  });
});
