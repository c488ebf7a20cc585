import { TributaryError } from '../errors';
import type { InputSpec } from '../schemas/jobSpec';
import type { DatasetReader } from './csvLoader';
import { type Dataset, DatasetBuilder } from './dataset';
import { checkLabel, isFiniteFloat32, listNames, notNumeric } from './parseValues';

/**
 * Writes a `features` value into `row`: either a flat array of product(shape) numbers, or arrays
 * nested exactly as `shape` (read row-major).
 */
function writeFeatures(features: unknown, row: Float32Array, input: InputSpec, where: string): void {
  const size = row.length;
  if (!Array.isArray(features)) {
    throw new TributaryError('DATA_COLUMNS_MISMATCH', `${where}: "features" must be an array of ${size} numbers.`);
  }
  if (features.length === size && (features.length === 0 || !Array.isArray(features[0]))) {
    for (let j = 0; j < size; j++) {
      const v = features[j];
      if (!isFiniteFloat32(v)) throw notNumeric(where, `features[${j}]`, v);
      row[j] = v;
    }
    return;
  }
  if (!Array.isArray(features[0]) || input.shape.length < 2) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `${where}: "features" has ${features.length} values; the job expects ${size} (shape [${input.shape}]).`,
    );
  }
  let at = 0;
  const walk = (value: unknown, depth: number, path: string): void => {
    const dim = input.shape[depth];
    if (!Array.isArray(value) || value.length !== dim) {
      throw new TributaryError(
        'DATA_COLUMNS_MISMATCH',
        `${where}: nested "features" must have shape [${input.shape}]; features${path} is not an array of length ${dim}.`,
      );
    }
    for (let k = 0; k < dim; k++) {
      if (depth + 1 < input.shape.length) {
        walk(value[k], depth + 1, `${path}[${k}]`);
      } else {
        const v = value[k];
        if (!isFiniteFloat32(v)) throw notNumeric(where, `features${path}[${k}]`, v);
        row[at++] = v;
      }
    }
  };
  walk(features, 0, '');
}

/** Validates one parsed JSON-lines record and appends it to the builder. */
function addRecord(record: unknown, lineNo: number, input: InputSpec, builder: DatasetBuilder): void {
  const where = `Line ${lineNo}`;
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw new TributaryError(
      'DATA_FORMAT_UNSUPPORTED',
      `${where}: expected a JSON object, got ${Array.isArray(record) ? 'an array' : typeof record}.`,
    );
  }
  const obj = record as Record<string, unknown>;
  if (!Object.hasOwn(obj, input.labelColumn)) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `${where}: the object has no label key ${JSON.stringify(input.labelColumn)}.`,
    );
  }
  const rawLabel = obj[input.labelColumn];
  const label = checkLabel(typeof rawLabel === 'number' ? rawLabel : NaN, rawLabel, input, where);
  const useArray = Object.hasOwn(obj, 'features') && !input.featureColumns?.includes('features');
  if (!useArray && !input.featureColumns) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `${where}: the object has no "features" array, and the job's input spec names no feature columns to read instead.`,
    );
  }
  const row = builder.addExample(label);
  if (useArray) {
    writeFeatures(obj.features, row, input, where);
    return;
  }
  const columns = input.featureColumns as string[];
  const missing = columns.filter((c) => !Object.hasOwn(obj, c));
  if (missing.length > 0) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `${where}: the object lacks the feature key(s) ${listNames(missing)}.`,
    );
  }
  for (let j = 0; j < columns.length; j++) {
    const v = obj[columns[j]];
    if (!isFiniteFloat32(v)) throw notNumeric(where, columns[j], v);
    row[j] = v;
  }
}

/**
 * A reader for JSON lines: one object per non-empty line, either `{"features": [...], "<label>": k}`
 * or keyed by the input spec's feature column names plus the label.
 */
export function createJsonlReader(input: InputSpec): DatasetReader {
  const builder = new DatasetBuilder(input.shape);
  let partial = '';
  let lineNo = 0;
  let started = false;
  const handleLine = (raw: string) => {
    lineNo++;
    const text = raw.trim();
    if (text === '') return;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (err) {
      throw new TributaryError(
        'DATA_FORMAT_UNSUPPORTED',
        `Line ${lineNo} is not valid JSON: ${(err as Error).message}.`,
        { cause: err },
      );
    }
    addRecord(record, lineNo, input, builder);
  };
  return {
    push(chunk) {
      if (!started && chunk.length > 0) {
        started = true;
        if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
      }
      let from = 0;
      for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', from)) {
        handleLine(partial + chunk.slice(from, nl));
        partial = '';
        from = nl + 1;
      }
      partial += chunk.slice(from);
    },
    end() {
      if (partial !== '') handleLine(partial);
      partial = '';
      if (builder.count === 0) throw new TributaryError('DATA_FILE_EMPTY', 'The JSON-lines input has no records.');
      return builder.build();
    },
  };
}

/** Parses JSON-lines text into a dataset validated against the input spec. */
export function parseJsonlDataset(text: string, input: InputSpec): Dataset {
  const reader = createJsonlReader(input);
  reader.push(text);
  return reader.end();
}
