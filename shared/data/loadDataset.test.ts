import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InputSpec } from '../schemas/jobSpec';
import { datasetToCsv, datasetToJsonl } from './csvWriter';
import { formatFromPath, loadDatasetFile, parseDatasetText } from './loadDataset';
import { loadMnist } from './mnist';

const spec: InputSpec = { shape: [2], labelColumn: 'label', numClasses: 2 };
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tributary-data-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Bitwise equality of two typed arrays (jest's toEqual walks millions of elements slowly). */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('formatFromPath', () => {
  it('maps .csv, .jsonl and .ndjson (any case)', () => {
    expect(formatFromPath('a/b.CSV')).toBe('csv');
    expect(formatFromPath('x.jsonl')).toBe('jsonl');
    expect(formatFromPath('x.ndjson')).toBe('jsonl');
  });

  it('rejects other extensions with DATA_FORMAT_UNSUPPORTED', () => {
    expect(() => formatFromPath('data.parquet')).toThrow(
      expect.objectContaining({ code: 'DATA_FORMAT_UNSUPPORTED', message: expect.stringContaining('".parquet"') }),
    );
    expect(() => formatFromPath('data')).toThrow(expect.objectContaining({ code: 'DATA_FORMAT_UNSUPPORTED' }));
  });
});

describe('loadDatasetFile', () => {
  it('loads CSV and JSON-lines files by extension', () => {
    expect(Array.from(loadDatasetFile(write('a.csv', 'x,y,label\n1,2,1\n'), spec).x)).toEqual([1, 2]);
    expect(Array.from(loadDatasetFile(write('a.ndjson', '{"features":[3,4],"label":0}\n'), spec).x)).toEqual([3, 4]);
  });

  it('honours an explicit format over the extension', () => {
    const path = write('data.txt', '{"features":[3,4],"label":1}\n');
    expect(Array.from(loadDatasetFile(path, spec, { format: 'jsonl' }).y)).toEqual([1]);
  });

  it('rejects files over maxBytes before reading them', () => {
    const path = write('big.csv', 'x,y,label\n1,2,1\n');
    expect(() => loadDatasetFile(path, spec, { maxBytes: 10 })).toThrow(
      expect.objectContaining({
        code: 'PAYLOAD_TOO_LARGE',
        message: expect.stringContaining('16 bytes; the limit is 10'),
      }),
    );
  });

  it('reports an empty or missing file', () => {
    expect(() => loadDatasetFile(write('empty.csv', ''), spec)).toThrow(
      expect.objectContaining({ code: 'DATA_FILE_EMPTY' }),
    );
    expect(() => loadDatasetFile(join(dir, 'nope.csv'), spec)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('nope.csv') }),
    );
  });

  it('propagates row errors with their line numbers', () => {
    const path = write('bad.csv', 'x,y,label\n1,2,1\n1,oops,0\n');
    expect(() => loadDatasetFile(path, spec)).toThrow(
      expect.objectContaining({
        code: 'DATA_NOT_NUMERIC',
        message: 'Line 3, column "y": expected a finite number, got "oops".',
      }),
    );
  });

  it('round-trips MNIST digits through CSV and JSON-lines files exactly', () => {
    const mnist = loadMnist({ count: 300 });
    const input: InputSpec = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
    const fromCsv = loadDatasetFile(write('mnist.csv', datasetToCsv(mnist, input)), input);
    expect(fromCsv.count).toBe(300);
    expect(sameBytes(fromCsv.x, mnist.x)).toBe(true);
    expect(sameBytes(fromCsv.y, mnist.y)).toBe(true);
    const fromJsonl = loadDatasetFile(write('mnist.jsonl', datasetToJsonl(mnist, input)), input);
    expect(sameBytes(fromJsonl.x, mnist.x)).toBe(true);
  });

  it('reads files larger than one 4 MiB chunk, with multi-byte characters across chunk boundaries', () => {
    const input: InputSpec = { shape: [4], featureColumns: ['a', 'b', 'c', 'd'], labelColumn: 'label', numClasses: 2 };
    const rows = 100_000;
    const lines = ['note,a,b,c,d,label'];
    for (let i = 0; i < rows; i++) lines.push(`"héllo, wörld ✓ ${i}",${i},0.5,-1,2,${i % 2}`);
    const text = lines.join('\r\n');
    expect(Buffer.byteLength(text)).toBeGreaterThan(4 * 1024 * 1024);
    const ds = loadDatasetFile(write('big.csv', text), input);
    expect(ds.count).toBe(rows);
    expect(Array.from(ds.x.subarray(4 * (rows - 1)))).toEqual([rows - 1, 0.5, -1, 2]);
    expect(ds.y[rows - 1]).toBe(1);
  });
});

describe('parseDatasetText', () => {
  it('parses either format from a string', () => {
    expect(parseDatasetText('a,b,label\n1,2,0\n', 'csv', spec).count).toBe(1);
    expect(parseDatasetText('{"features":[1,2],"label":1}', 'jsonl', spec).count).toBe(1);
    expect(() => parseDatasetText('', 'xml' as never, spec)).toThrow(
      expect.objectContaining({ code: 'DATA_FORMAT_UNSUPPORTED' }),
    );
  });
});
