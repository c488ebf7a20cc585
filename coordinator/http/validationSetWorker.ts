import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { encodeTensors } from '../../shared/codec/modelCodec';
import { parseDatasetText } from '../../shared/data/loadDataset';
import { TributaryError } from '../../shared/errors';
import type { InputSpec } from '../../shared/schemas/jobSpec';

/*
 * Worker thread of ValidationSetParser: turns an uploaded CSV / JSON-lines validation set into dataset
 * codec bytes ("x" [count, ...shape], "y" [count]) off the coordinator's event loop.
 * In:  { id, bytes: ArrayBuffer (UTF-8 text, transferred), format: 'csv' | 'jsonl', input: InputSpec }
 * Out: { id, bytes: ArrayBuffer (transferred), examples, sha256 } or { id, error: { code, message } }
 */

interface ParseRequest {
  id: number;
  bytes: ArrayBuffer;
  format: 'csv' | 'jsonl';
  input: InputSpec;
}

parentPort?.on('message', (request: ParseRequest) => {
  try {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(request.bytes);
    } catch {
      throw new TributaryError('DATA_FORMAT_UNSUPPORTED', 'The body is not UTF-8 text.');
    }
    const dataset = parseDatasetText(text, request.format, request.input);
    const encoded = encodeTensors([
      { name: 'x', shape: [dataset.count, ...dataset.exampleShape], data: dataset.x },
      { name: 'y', shape: [dataset.count], data: Float32Array.from(dataset.y) },
    ]);
    const sha256 = createHash('sha256').update(encoded).digest('hex');
    const out = encoded.buffer.slice(encoded.byteOffset, encoded.byteOffset + encoded.byteLength) as ArrayBuffer;
    parentPort!.postMessage({ id: request.id, bytes: out, examples: dataset.count, sha256 }, [out]);
  } catch (err) {
    const e =
      err instanceof TributaryError
        ? err
        : new TributaryError('VALIDATION_SET_INVALID', String((err as Error)?.message));
    parentPort!.postMessage({ id: request.id, error: { code: e.code, message: e.message } });
  }
});
