import { writeFileSync } from 'node:fs';
import type { Dataset } from '../../shared/data/dataset';

/**
 * `count` examples with `features` values in [-1, 1) and a 0/1 label that is a linear function of
 * them (even features weigh 1, odd ones -0.5), so a small model learns it. Deterministic under `seed`.
 */
export function separableDataset(count: number, features: number, seed: number): Dataset {
  let s = seed >>> 0 || 1;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const x = new Float32Array(count * features);
  const y = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    let score = 0;
    for (let f = 0; f < features; f++) {
      const v = rand() * 2 - 1;
      x[r * features + f] = v;
      score += v * (f % 2 === 0 ? 1 : -0.5);
    }
    y[r] = score > 0 ? 1 : 0;
  }
  return { x, y, count, exampleShape: [features] };
}

/** Writes `separableDataset` as CSV (features f0..f{n-1} to 5 decimals, then `label`), plus an optional canary row. */
export function writeSeparableCsv(
  path: string,
  rows: number,
  features: number,
  seed: number,
  canaryRow?: number[],
): void {
  const data = separableDataset(rows, features, seed);
  const lines = [[...Array.from({ length: features }, (_, i) => `f${i}`), 'label'].join(',')];
  for (let r = 0; r < rows; r++) {
    const values = Array.from(data.x.subarray(r * features, (r + 1) * features), (v) => v.toFixed(5));
    lines.push([...values, data.y[r]].join(','));
  }
  if (canaryRow) lines.push([...canaryRow, 1].join(','));
  writeFileSync(path, `${lines.join('\n')}\n`);
}
