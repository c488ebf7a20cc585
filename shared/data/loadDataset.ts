import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { extname } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { TributaryError } from '../errors';
import type { InputSpec } from '../schemas/jobSpec';
import { createCsvReader, type DatasetReader } from './csvLoader';
import type { Dataset } from './dataset';
import { createJsonlReader } from './jsonlLoader';

/** Dataset file formats. */
export type DatasetFormat = 'csv' | 'jsonl';

/** Largest dataset file read by default: 2 GiB. */
export const DEFAULT_MAX_DATASET_BYTES = 2 * 1024 ** 3;

/** Options of loadDatasetFile. */
export interface LoadDatasetOptions {
  /** Format of the file. @default from the extension: .csv, or .jsonl / .ndjson */
  format?: DatasetFormat;
  /** Files larger than this are rejected before any byte is read. @default DEFAULT_MAX_DATASET_BYTES */
  maxBytes?: number;
}

const CHUNK_BYTES = 4 * 1024 * 1024;

/** The format implied by a file name's extension; DATA_FORMAT_UNSUPPORTED for any other. */
export function formatFromPath(path: string): DatasetFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new TributaryError(
    'DATA_FORMAT_UNSUPPORTED',
    `Cannot tell the format of "${path}" from its extension ${ext ? JSON.stringify(ext) : '(none)'}: expected .csv, .jsonl or .ndjson, or pass the format explicitly.`,
  );
}

function createReader(format: DatasetFormat, input: InputSpec): DatasetReader {
  if (format === 'csv') return createCsvReader(input);
  if (format === 'jsonl') return createJsonlReader(input);
  throw new TributaryError(
    'DATA_FORMAT_UNSUPPORTED',
    `Unknown dataset format ${JSON.stringify(format)}: expected "csv" or "jsonl".`,
  );
}

/** Parses dataset text in the given format, validated against the job's input spec. */
export function parseDatasetText(text: string, format: DatasetFormat, input: InputSpec): Dataset {
  const reader = createReader(format, input);
  reader.push(text);
  return reader.end();
}

/** Opens a dataset file for reading; CONFIG_INVALID naming the file if it cannot be opened. The caller closes it. */
export function openDatasetFile(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw new TributaryError('CONFIG_INVALID', `Cannot open the dataset file "${path}": ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Reads a CSV or JSON-lines dataset file and validates every row against the job's input spec,
 * before any training starts. The file is read in chunks, so its size is bounded by `maxBytes`
 * rather than by the longest string V8 can hold.
 */
export function loadDatasetFile(path: string, input: InputSpec, options: LoadDatasetOptions = {}): Dataset {
  const format = options.format ?? formatFromPath(path);
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_DATASET_BYTES;
  const reader = createReader(format, input);
  const fd = openDatasetFile(path);
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) {
      throw new TributaryError(
        'PAYLOAD_TOO_LARGE',
        `The dataset file "${path}" has ${size} bytes; the limit is ${maxBytes} (maxBytes).`,
      );
    }
    if (size === 0) throw new TributaryError('DATA_FILE_EMPTY', `The dataset file "${path}" is empty.`);
    const decoder = new StringDecoder('utf8');
    const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size));
    let total = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      total += n;
      // The file may grow while it is read; the bound holds for what is actually read.
      if (total > maxBytes) {
        throw new TributaryError(
          'PAYLOAD_TOO_LARGE',
          `The dataset file "${path}" grew past the limit of ${maxBytes} bytes while being read.`,
        );
      }
      reader.push(decoder.write(buffer.subarray(0, n)));
    }
    reader.push(decoder.end());
    return reader.end();
  } finally {
    closeSync(fd);
  }
}
