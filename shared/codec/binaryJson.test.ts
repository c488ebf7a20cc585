import { decodeBinaryJson, encodeBinaryJson } from './binaryJson';

describe('binaryJson', () => {
  it('round-trips Uint8Arrays and Buffers nested in objects and arrays', () => {
    const value = { a: new Uint8Array([0, 1, 255]), b: [{ c: Buffer.from('hi') }], d: 'text', e: 3 };
    const back = decodeBinaryJson(encodeBinaryJson(value)) as {
      a: Uint8Array;
      b: Array<{ c: Uint8Array }>;
      d: string;
      e: number;
    };
    expect(back.a).toBeInstanceOf(Uint8Array);
    expect([...back.a]).toEqual([0, 1, 255]);
    expect(Buffer.from(back.b[0].c).toString()).toBe('hi');
    expect(back.d).toBe('text');
    expect(back.e).toBe(3);
  });

  it('revives only the exact {"$b64": canonical base64} shape', () => {
    expect(decodeBinaryJson('{"$b64":"AAE=","x":1}')).toEqual({ $b64: 'AAE=', x: 1 });
    expect(decodeBinaryJson('{"$b64":"not base64!"}')).toEqual({ $b64: 'not base64!' });
    expect(decodeBinaryJson('{"$b64":5}')).toEqual({ $b64: 5 });
    expect(decodeBinaryJson('{"$b64":""}')).toEqual(new Uint8Array(0));
  });
});
