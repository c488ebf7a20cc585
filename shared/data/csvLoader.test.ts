import { TributaryError } from '../errors';
import type { InputSpec } from '../schemas/jobSpec';
import { parseCsvDataset } from './csvLoader';
import { datasetToCsv, float32ToString } from './csvWriter';

const spec = (over: Partial<InputSpec> = {}): InputSpec => ({
  shape: [3],
  labelColumn: 'label',
  numClasses: 3,
  ...over,
});

function codeOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof TributaryError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a TributaryError');
}

describe('parseCsvDataset', () => {
  it('reads every column but the label as features, in header order', () => {
    const ds = parseCsvDataset('a,label,b,c\n1,0,2,3\n-4.5,2,5e-1,+6\n', spec());
    expect(ds.count).toBe(2);
    expect(ds.exampleShape).toEqual([3]);
    expect(Array.from(ds.x)).toEqual([1, 2, 3, -4.5, 0.5, 6]);
    expect(Array.from(ds.y)).toEqual([0, 2]);
  });

  it('reads the named feature columns in the spec order and ignores other columns', () => {
    const ds = parseCsvDataset('id,c,b,a,label\n7,3,2,1,1\n', spec({ featureColumns: ['a', 'b', 'c'] }));
    expect(Array.from(ds.x)).toEqual([1, 2, 3]);
    expect(Array.from(ds.y)).toEqual([1]);
  });

  it('handles quoted fields, quoted header names and CRLF line ends', () => {
    const ds = parseCsvDataset(
      '"x, first","y ""2""",z,label\r\n"1.5"," 2 ",3,"1"\r\n4,5,6,0\r\n',
      spec({ featureColumns: ['x, first', 'y "2"', 'z'] }),
    );
    expect(Array.from(ds.x)).toEqual([1.5, 2, 3, 4, 5, 6]);
    expect(Array.from(ds.y)).toEqual([1, 0]);
  });

  it('uses a custom label column and multi-dimensional shapes', () => {
    const ds = parseCsvDataset('p0,p1,p2,p3,digit\n0,1,2,3,1\n', spec({ shape: [2, 2], labelColumn: 'digit' }));
    expect(ds.exampleShape).toEqual([2, 2]);
    expect(Array.from(ds.x)).toEqual([0, 1, 2, 3]);
  });

  it('DATA_FILE_EMPTY: no text, or a header without rows', () => {
    expect(codeOf(() => parseCsvDataset('', spec())).code).toBe('DATA_FILE_EMPTY');
    expect(codeOf(() => parseCsvDataset('\n\n', spec())).code).toBe('DATA_FILE_EMPTY');
    const e = codeOf(() => parseCsvDataset('a,b,c,label\n', spec()));
    expect(e).toEqual({ code: 'DATA_FILE_EMPTY', message: expect.stringContaining('no data rows') });
  });

  it('DATA_COLUMNS_MISMATCH: missing label column', () => {
    const e = codeOf(() => parseCsvDataset('a,b,c,target\n1,2,3,0\n', spec()));
    expect(e.code).toBe('DATA_COLUMNS_MISMATCH');
    expect(e.message).toContain('"label"');
  });

  it('DATA_COLUMNS_MISMATCH: names the missing feature columns', () => {
    const e = codeOf(() => parseCsvDataset('a,label\n1,0\n', spec({ featureColumns: ['a', 'b', 'c'] })));
    expect(e.code).toBe('DATA_COLUMNS_MISMATCH');
    expect(e.message).toContain('"b", "c"');
  });

  it('DATA_COLUMNS_MISMATCH: too many or too few feature columns for the shape', () => {
    const extra = codeOf(() => parseCsvDataset('a,b,c,d,label\n1,2,3,4,0\n', spec()));
    expect(extra.code).toBe('DATA_COLUMNS_MISMATCH');
    expect(extra.message).toMatch(/expects 3 feature columns.*has 4: 1 extra.*"d"/);
    const missing = codeOf(() => parseCsvDataset('a,b,label\n1,2,0\n', spec()));
    expect(missing.code).toBe('DATA_COLUMNS_MISMATCH');
    expect(missing.message).toContain('1 missing');
  });

  it('DATA_COLUMNS_MISMATCH: a row with the wrong number of fields, naming its line', () => {
    const e = codeOf(() => parseCsvDataset('a,b,c,label\n1,2,3,0\n1,2,0\n', spec()));
    expect(e).toEqual({ code: 'DATA_COLUMNS_MISMATCH', message: 'Line 3: expected 4 fields as in the header, got 3.' });
  });

  it('DATA_COLUMNS_MISMATCH: a repeated column that is used', () => {
    expect(
      codeOf(() => parseCsvDataset('a,a,b,c,label\n1,2,3,4,0\n', spec({ featureColumns: ['a', 'b', 'c'] }))),
    ).toEqual({
      code: 'DATA_COLUMNS_MISMATCH',
      message: 'The CSV header repeats the column(s) "a".',
    });
  });

  it.each([
    ['abc', '"abc"'],
    ['', '""'],
    ['NaN', '"NaN"'],
    ['Infinity', '"Infinity"'],
    ['1e999', '"1e999"'],
    ['0x10', '"0x10"'],
    ['1,5', '"1,5"'],
  ])('DATA_NOT_NUMERIC: %p names line and column', (value, shown) => {
    const e = codeOf(() => parseCsvDataset(`a,b,c,label\n1,2,3,0\n4,"${value}",6,1\n`, spec()));
    expect(e).toEqual({
      code: 'DATA_NOT_NUMERIC',
      message: `Line 3, column "b": expected a finite number, got ${shown}.`,
    });
  });

  it.each([['3'], ['-1'], ['1.5'], ['cat'], ['']])(
    'DATA_LABEL_OUT_OF_RANGE: label %p names line and value',
    (label) => {
      const e = codeOf(() => parseCsvDataset(`a,b,c,label\n1,2,3,${label}\n`, spec()));
      expect(e.code).toBe('DATA_LABEL_OUT_OF_RANGE');
      expect(e.message).toBe(`Line 2: label "label" must be an integer in [0, 3), got ${JSON.stringify(label)}.`);
    },
  );

  it('reports the physical line of a record after a quoted multi-line field', () => {
    const e = codeOf(() => parseCsvDataset('a,b,c,label\n"1\n",2,3,0\n1,x,3,0\n', spec()));
    expect(e.message).toMatch(/^Line 4,/);
  });

  it('round-trips datasetToCsv exactly, including float32 values', () => {
    const x = new Float32Array([0.1, -2.5e-8, 3.4e38, 1 / 3, 0, 255]);
    const ds = { x, y: new Int32Array([2, 0]), count: 2, exampleShape: [3] };
    const back = parseCsvDataset(datasetToCsv(ds, spec()), spec());
    expect(Array.from(back.x)).toEqual(Array.from(x));
    expect(Array.from(back.y)).toEqual([2, 0]);
    const named = parseCsvDataset(
      datasetToCsv(ds, spec({ featureColumns: ['q,1', 'r', 's'] })),
      spec({ featureColumns: ['q,1', 'r', 's'] }),
    );
    expect(Array.from(named.x)).toEqual(Array.from(x));
  });

  it('writes the shortest text for float32 values', () => {
    expect(float32ToString(Math.fround(0.1))).toBe('0.1');
    expect(float32ToString(Math.fround(1 / 3))).toBe('0.33333334');
    expect(float32ToString(7)).toBe('7');
  });
});
