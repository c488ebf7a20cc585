import { TributaryError } from '../errors';
import type { InputSpec } from '../schemas/jobSpec';

/** Largest magnitude a float32 holds; bigger values would silently become Infinity. */
const FLOAT32_MAX = 3.4028234663852886e38;
const DECIMAL = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/** Parses a decimal number written as text; NaN unless it is a plain finite decimal within float32 range. */
export function parseDecimal(text: string): number {
  // Fast path for the most common cell in image-like data.
  if (text === '0') return 0;
  if (!DECIMAL.test(text)) return NaN;
  const v = Number(text);
  return Math.abs(v) <= FLOAT32_MAX ? v : NaN;
}

/** A value as it should appear in an error message: quoted, and cut short if long. */
export function showValue(value: unknown): string {
  let s: string;
  try {
    s = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    s = String(value);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Names for display: the first few, then how many more. */
export function listNames(names: readonly string[], max = 5): string {
  const shown = names
    .slice(0, max)
    .map((n) => JSON.stringify(n))
    .join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/** Checks a parsed label: an integer in [0, numClasses). `where` is e.g. "Line 7". */
export function checkLabel(value: number, raw: unknown, input: InputSpec, where: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= input.numClasses) {
    throw new TributaryError(
      'DATA_LABEL_OUT_OF_RANGE',
      `${where}: label ${JSON.stringify(input.labelColumn)} must be an integer in [0, ${input.numClasses}), got ${showValue(raw)}.`,
    );
  }
  return value;
}

/** True for a JSON number that a float32 holds without becoming Infinity. */
export function isFiniteFloat32(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= FLOAT32_MAX;
}

/** The error for a feature value that is not a finite number. */
export function notNumeric(where: string, column: string, raw: unknown): TributaryError {
  return new TributaryError(
    'DATA_NOT_NUMERIC',
    `${where}, column ${JSON.stringify(column)}: expected a finite number, got ${showValue(raw)}.`,
  );
}
