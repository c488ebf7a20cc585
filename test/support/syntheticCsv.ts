import { writeFileSync } from 'node:fs';

/**
 * Writes a CSV of `rows` examples with features f0..f{n-1} and a 0/1 label that is a linear function
 * of the features (so a small model learns it). Deterministic under `seed`.
 */
export function writeSeparableCsv(path: string, rows: number, features: number, seed: number, canaryRow?: number[]): void {
  let s = seed >>> 0 || 1;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const header = [...Array.from({ length: features }, (_, i) => `f${i}`), 'label'].join(',');
  const lines = [header];
  for (let r = 0; r < rows; r++) {
    const x = Array.from({ length: features }, () => rand() * 2 - 1);
    const score = x.reduce((acc, v, i) => acc + v * (i % 2 === 0 ? 1 : -0.5), 0);
    lines.push([...x.map((v) => v.toFixed(5)), score > 0 ? 1 : 0].join(','));
  }
  if (canaryRow) lines.push([...canaryRow, 1].join(','));
  writeFileSync(path, lines.join('\n') + '\n');
}
