import type { InputSpec } from '../schemas/jobSpec';
import { type Dataset, exampleSize } from './dataset';

/** Header names for the feature columns: the input spec's, or f0, f1, ... */
export function featureColumnNames(input: Pick<InputSpec, 'shape' | 'featureColumns'>): string[] {
  return input.featureColumns ?? Array.from({ length: exampleSize(input.shape) }, (_, i) => `f${i}`);
}

/** The shortest decimal text that parses back to exactly this float32 value. */
export function float32ToString(v: number): string {
  if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
  for (let p = 1; p < 9; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return String(Number(s));
  }
  return v.toPrecision(9);
}

function csvField(name: string): string {
  return /[",\r\n]/.test(name) || name !== name.trim() ? `"${name.replace(/"/g, '""')}"` : name;
}

/**
 * Writes a dataset as CSV that the CSV loader reads back exactly: a header of the feature columns
 * then the label column, one row per example. Values are written with the shortest text that
 * round-trips the float32.
 */
export function datasetToCsv(
  dataset: Dataset,
  input: Pick<InputSpec, 'shape' | 'featureColumns' | 'labelColumn'>,
): string {
  const size = exampleSize(dataset.exampleShape);
  const names = featureColumnNames(input);
  if (names.length !== size) {
    throw new RangeError(`the input spec names ${names.length} feature columns but examples have ${size} values`);
  }
  const lines: string[] = [[...names, input.labelColumn].map(csvField).join(',')];
  const row = new Array<string>(size + 1);
  for (let i = 0; i < dataset.count; i++) {
    const base = i * size;
    for (let j = 0; j < size; j++) row[j] = float32ToString(dataset.x[base + j]);
    row[size] = String(dataset.y[i]);
    lines.push(row.join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** Writes a dataset as JSON lines of the `{"features": [...], "<label>": k}` form. */
export function datasetToJsonl(dataset: Dataset, input: Pick<InputSpec, 'labelColumn'>): string {
  const size = exampleSize(dataset.exampleShape);
  const lines: string[] = [];
  for (let i = 0; i < dataset.count; i++) {
    const features = Array.from(dataset.x.subarray(i * size, (i + 1) * size), (v) => Number(float32ToString(v)));
    lines.push(JSON.stringify({ features, [input.labelColumn]: dataset.y[i] }));
  }
  return `${lines.join('\n')}\n`;
}
