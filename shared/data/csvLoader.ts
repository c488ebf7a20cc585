import { TributaryError } from '../errors';
import type { InputSpec } from '../schemas/jobSpec';
import { type Dataset, DatasetBuilder, exampleSize } from './dataset';
import { CsvParser } from './csvParser';
import { checkLabel, listNames, notNumeric, parseDecimal } from './parseValues';

/** Consumes text chunk by chunk and returns the validated dataset at the end. */
export interface DatasetReader {
  push(chunk: string): void;
  end(): Dataset;
}

interface ColumnPlan {
  header: string[];
  labelIndex: number;
  featureIndices: Int32Array;
}

/**
 * Maps header columns to the input spec. Feature columns are `input.featureColumns` when given
 * (other columns are ignored, e.g. an id column) or else every column but the label, in header order;
 * their number must equal product(input.shape).
 */
function planColumns(header: string[], input: InputSpec): ColumnPlan {
  const size = exampleSize(input.shape);
  const seen = new Map<string, number>();
  const duplicates: string[] = [];
  header.forEach((name, i) => {
    if (seen.has(name)) duplicates.push(name);
    else seen.set(name, i);
  });
  const labelIndex = seen.get(input.labelColumn);
  if (labelIndex === undefined) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `The CSV header has no label column ${JSON.stringify(input.labelColumn)}; it has ${header.length} columns: ${listNames(header)}.`,
    );
  }
  let featureIndices: number[];
  if (input.featureColumns) {
    const missing = input.featureColumns.filter((c) => !seen.has(c));
    if (missing.length > 0) {
      throw new TributaryError(
        'DATA_COLUMNS_MISMATCH',
        `The CSV header lacks ${missing.length} of the job's ${input.featureColumns.length} feature columns: ${listNames(missing)}.`,
      );
    }
    featureIndices = input.featureColumns.map((c) => seen.get(c) as number);
  } else {
    featureIndices = header.map((_, i) => i).filter((i) => i !== labelIndex);
    if (featureIndices.length !== size) {
      const features = featureIndices.map((i) => header[i]);
      const detail =
        featureIndices.length > size
          ? `${featureIndices.length - size} extra (last columns: ${listNames(features.slice(size), 5)})`
          : `${size - featureIndices.length} missing`;
      throw new TributaryError(
        'DATA_COLUMNS_MISMATCH',
        `The job expects ${size} feature columns (shape [${input.shape}]) besides the label ${JSON.stringify(input.labelColumn)}; ` +
          `the CSV header has ${featureIndices.length}: ${detail}.`,
      );
    }
  }
  const usedDuplicates = duplicates.filter(
    (d) => d === input.labelColumn || featureIndices.some((i) => header[i] === d),
  );
  if (usedDuplicates.length > 0) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `The CSV header repeats the column(s) ${listNames(usedDuplicates)}.`,
    );
  }
  return { header, labelIndex, featureIndices: Int32Array.from(featureIndices) };
}

/** A reader for CSV with a header row, validated against the job's input spec row by row. */
export function createCsvReader(input: InputSpec): DatasetReader {
  const builder = new DatasetBuilder(input.shape);
  let plan: ColumnPlan | undefined;
  const parser = new CsvParser((fields, line) => {
    if (!plan) {
      plan = planColumns(
        fields.map((f) => f.trim()),
        input,
      );
      return;
    }
    if (fields.length !== plan.header.length) {
      throw new TributaryError(
        'DATA_COLUMNS_MISMATCH',
        `Line ${line}: expected ${plan.header.length} fields as in the header, got ${fields.length}.`,
      );
    }
    const rawLabel = fields[plan.labelIndex];
    const label = checkLabel(parseDecimal(rawLabel), rawLabel, input, `Line ${line}`);
    const row = builder.addExample(label);
    const { featureIndices, header } = plan;
    for (let j = 0; j < featureIndices.length; j++) {
      const col = featureIndices[j];
      const v = parseDecimal(fields[col]);
      if (Number.isNaN(v)) throw notNumeric(`Line ${line}`, header[col], fields[col]);
      row[j] = v;
    }
  });
  return {
    push: (chunk) => parser.push(chunk),
    end: () => {
      parser.end();
      if (!plan)
        throw new TributaryError(
          'DATA_FILE_EMPTY',
          'The CSV input is empty: expected a header row and at least one data row.',
        );
      if (builder.count === 0)
        throw new TributaryError('DATA_FILE_EMPTY', 'The CSV input has a header but no data rows.');
      return builder.build();
    },
  };
}

/** Parses CSV text (header row first) into a dataset validated against the input spec. */
export function parseCsvDataset(text: string, input: InputSpec): Dataset {
  const reader = createCsvReader(input);
  reader.push(text);
  return reader.end();
}
