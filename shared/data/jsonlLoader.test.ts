import { TributaryError } from '../errors';
import type { InputSpec } from '../schemas/jobSpec';
import { datasetToJsonl } from './csvWriter';
import { parseJsonlDataset } from './jsonlLoader';

const spec = (over: Partial<InputSpec> = {}): InputSpec => ({
  shape: [3],
  labelColumn: 'label',
  numClasses: 3,
  ...over,
});

function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof TributaryError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a TributaryError');
}

describe('parseJsonlDataset', () => {
  it('reads the features-array form, skipping blank lines and CRLF', () => {
    const ds = parseJsonlDataset('{"features":[1,2,3],"label":0}\r\n\r\n{"features":[4,5.5,-6],"label":2}', spec());
    expect(ds.count).toBe(2);
    expect(Array.from(ds.x)).toEqual([1, 2, 3, 4, 5.5, -6]);
    expect(Array.from(ds.y)).toEqual([0, 2]);
  });

  it('reads the keyed form using the spec feature columns', () => {
    const ds = parseJsonlDataset(
      '{"b":2,"a":1,"c":3,"y":1,"extra":"ignored"}\n',
      spec({ featureColumns: ['a', 'b', 'c'], labelColumn: 'y' }),
    );
    expect(Array.from(ds.x)).toEqual([1, 2, 3]);
    expect(Array.from(ds.y)).toEqual([1]);
  });

  it('reads features nested as the shape', () => {
    const ds = parseJsonlDataset('{"features":[[1,2],[3,4]],"label":1}\n', spec({ shape: [2, 2] }));
    expect(Array.from(ds.x)).toEqual([1, 2, 3, 4]);
  });

  it('round-trips datasetToJsonl', () => {
    const x = new Float32Array([0.1, 2, 3, 1 / 3, 5, 6]);
    const ds = parseJsonlDataset(
      datasetToJsonl({ x, y: new Int32Array([1, 2]), count: 2, exampleShape: [3] }, spec()),
      spec(),
    );
    expect(Array.from(ds.x)).toEqual(Array.from(x));
  });

  it('DATA_FORMAT_UNSUPPORTED: malformed JSON names the line', () => {
    const e = errorOf(() =>
      parseJsonlDataset('{"features":[1,2,3],"label":0}\n\n{"features":[1,2,3],"label":0\n', spec()),
    );
    expect(e.code).toBe('DATA_FORMAT_UNSUPPORTED');
    expect(e.message).toMatch(/^Line 3 is not valid JSON/);
  });

  it('DATA_FORMAT_UNSUPPORTED: a line that is not an object', () => {
    expect(errorOf(() => parseJsonlDataset('[1,2,3]\n', spec()))).toEqual({
      code: 'DATA_FORMAT_UNSUPPORTED',
      message: 'Line 1: expected a JSON object, got an array.',
    });
  });

  it('DATA_FILE_EMPTY: no records', () => {
    expect(errorOf(() => parseJsonlDataset('\n \n', spec())).code).toBe('DATA_FILE_EMPTY');
  });

  it('DATA_COLUMNS_MISMATCH: wrong feature count, missing keys, missing label, keyed form without feature columns', () => {
    expect(errorOf(() => parseJsonlDataset('{"features":[1,2],"label":0}', spec()))).toEqual({
      code: 'DATA_COLUMNS_MISMATCH',
      message: 'Line 1: "features" has 2 values; the job expects 3 (shape [3]).',
    });
    expect(errorOf(() => parseJsonlDataset('{"a":1,"label":0}', spec({ featureColumns: ['a', 'b', 'c'] })))).toEqual({
      code: 'DATA_COLUMNS_MISMATCH',
      message: 'Line 1: the object lacks the feature key(s) "b", "c".',
    });
    expect(errorOf(() => parseJsonlDataset('{"features":[1,2,3]}', spec())).message).toBe(
      'Line 1: the object has no label key "label".',
    );
    expect(errorOf(() => parseJsonlDataset('{"a":1,"b":2,"c":3,"label":0}', spec())).code).toBe(
      'DATA_COLUMNS_MISMATCH',
    );
    expect(errorOf(() => parseJsonlDataset('{"features":[[1,2],[3]],"label":0}', spec({ shape: [2, 2] }))).code).toBe(
      'DATA_COLUMNS_MISMATCH',
    );
  });

  it('DATA_NOT_NUMERIC: names line and column', () => {
    expect(errorOf(() => parseJsonlDataset('{"features":[1,"2",3],"label":0}', spec()))).toEqual({
      code: 'DATA_NOT_NUMERIC',
      message: 'Line 1, column "features[1]": expected a finite number, got "2".',
    });
    expect(
      errorOf(() => parseJsonlDataset('{"a":1,"b":null,"c":3,"label":0}', spec({ featureColumns: ['a', 'b', 'c'] }))),
    ).toEqual({
      code: 'DATA_NOT_NUMERIC',
      message: 'Line 1, column "b": expected a finite number, got null.',
    });
    expect(errorOf(() => parseJsonlDataset('{"features":[1,1e999,3],"label":0}', spec())).code).toBe(
      'DATA_NOT_NUMERIC',
    );
  });

  it('DATA_LABEL_OUT_OF_RANGE: names line and value', () => {
    for (const label of ['3', '-1', '0.5', '"1"', 'null']) {
      const e = errorOf(() =>
        parseJsonlDataset(`{"features":[1,2,3],"label":0}\n{"features":[1,2,3],"label":${label}}`, spec()),
      );
      expect(e).toEqual({
        code: 'DATA_LABEL_OUT_OF_RANGE',
        message: `Line 2: label "label" must be an integer in [0, 3), got ${label}.`,
      });
    }
  });
});
