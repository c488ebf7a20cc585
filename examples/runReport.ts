import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FederationResult } from './federation';

/** Writes a run's results to `dir`: summary.json, rounds.csv and chart.html (self-contained SVG). */
export function writeRunReport(dir: string, result: FederationResult): string[] {
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, 'summary.json'), join(dir, 'rounds.csv'), join(dir, 'chart.html')];
  writeFileSync(files[0], `${JSON.stringify(result, null, 2)}\n`);
  // Jobs with --dp-epsilon add the epsilon spent after each round.
  const dp = result.privacy !== undefined;
  const header = `round,participants,selected,validation_accuracy,validation_loss,train_loss,seconds,failed_attempts${dp ? ',epsilon' : ''}`;
  const rows = result.roundDetails.map((r) =>
    [
      r.round,
      r.participants,
      r.selected,
      r.validationAccuracy,
      r.validationLoss,
      r.trainLoss,
      r.seconds,
      r.failedAttempts,
      ...(dp ? [r.epsilon ?? ''] : []),
    ].join(','),
  );
  writeFileSync(files[1], `${[header, ...rows].join('\n')}\n`);
  writeFileSync(files[2], chartHtml(result));
  return files;
}

interface Series {
  label: string;
  color: string;
  values: number[];
}

/** One line chart as an SVG string: rounds on x, `series` on y, with axes, ticks and a legend. */
function lineChart(title: string, yLabel: string, series: Series[], yRange?: [number, number]): string {
  const w = 560;
  const h = 300;
  const m = { left: 56, right: 16, top: 36, bottom: 44 };
  const n = Math.max(1, ...series.map((s) => s.values.length));
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  let [lo, hi] = yRange ?? [Math.min(...all, 0), Math.max(...all, 1e-9)];
  if (hi - lo < 1e-9) hi = lo + 1;
  if (!yRange) hi += (hi - lo) * 0.05;
  const x = (i: number) => m.left + (n === 1 ? (w - m.left - m.right) / 2 : (i * (w - m.left - m.right)) / (n - 1));
  const y = (v: number) => m.top + (1 - (v - lo) / (hi - lo)) * (h - m.top - m.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="system-ui, sans-serif" font-size="12">`,
    `<text x="${w / 2}" y="20" text-anchor="middle" font-size="15" font-weight="600">${title}</text>`,
  ];
  for (let t = 0; t <= 5; t++) {
    const v = lo + ((hi - lo) * t) / 5;
    const yy = y(v);
    parts.push(`<line x1="${m.left}" x2="${w - m.right}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
    parts.push(
      `<text x="${m.left - 6}" y="${yy + 4}" text-anchor="end" fill="#555">${Math.abs(hi - lo) >= 5 ? v.toFixed(0) : v.toFixed(2)}</text>`,
    );
  }
  for (let i = 0; i < n; i++) {
    parts.push(`<text x="${x(i)}" y="${h - m.bottom + 16}" text-anchor="middle" fill="#555">${i + 1}</text>`);
  }
  parts.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${h - m.bottom}" stroke="#333"/>`);
  parts.push(`<line x1="${m.left}" x2="${w - m.right}" y1="${h - m.bottom}" y2="${h - m.bottom}" stroke="#333"/>`);
  parts.push(`<text x="${(m.left + w - m.right) / 2}" y="${h - 8}" text-anchor="middle">round</text>`);
  parts.push(
    `<text x="14" y="${(m.top + h - m.bottom) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(m.top + h - m.bottom) / 2})">${yLabel}</text>`,
  );
  // A series with no values (e.g. training loss, which secagg clients do not report) gets no line or legend.
  series = series.filter((s) => s.values.some(Number.isFinite));
  series.forEach((s, k) => {
    const points = s.values
      .map((v, i) => (Number.isFinite(v) ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : null))
      .filter(Boolean);
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2.5" points="${points.join(' ')}"/>`);
    for (const p of points) {
      const [px, py] = (p as string).split(',');
      parts.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="${s.color}"/>`);
    }
    // Legend top right, where the curves (rising accuracy, falling loss) are least likely to be.
    const lx = w - m.right - 150 * (series.length - k);
    parts.push(`<rect x="${lx}" y="${m.top + 6}" width="14" height="4" fill="${s.color}"/>`);
    parts.push(`<text x="${lx + 20}" y="${m.top + 12}">${s.label}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function chartHtml(r: FederationResult): string {
  const acc = r.roundDetails.map((d) => 100 * d.validationAccuracy);
  const lo = Math.max(0, Math.floor(Math.min(...acc.filter(Number.isFinite), 100) / 10) * 10 - 10);
  const accuracy = lineChart(
    'Validation accuracy',
    'accuracy (%)',
    [{ label: 'validation', color: '#1f77b4', values: acc }],
    [lo, 100],
  );
  const loss = lineChart('Loss', 'loss', [
    { label: 'validation', color: '#d62728', values: r.roundDetails.map((d) => d.validationLoss) },
    { label: "clients' training", color: '#ff7f0e', values: r.roundDetails.map((d) => d.trainLoss) },
  ]);
  const rows = r.roundDetails
    .map(
      (d) =>
        `<tr><td>${d.round}</td><td>${d.participants}/${d.selected}</td><td>${(100 * d.validationAccuracy).toFixed(2)} %</td><td>${d.validationLoss.toFixed(4)}</td><td>${d.trainLoss.toFixed(4)}</td><td>${d.seconds.toFixed(1)}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tributary run: ${r.example}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}.charts{display:flex;flex-wrap:wrap;gap:16px}
table{border-collapse:collapse;margin-top:16px}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}.meta{color:#555}</style></head>
<body><h1>Tributary federation: ${r.example}</h1>
<p class="meta">${r.clients} clients, ${r.rounds} rounds, partition ${r.partition}, seed ${r.seed}, backend ${r.backend}, secure aggregation ${r.secureAggregation}.
Final test accuracy <b>${(100 * r.finalAccuracy).toFixed(2)} %</b> on ${r.testExamples} held-out examples; ${r.wallSeconds.toFixed(1)} s in all.</p>
<div class="charts">${accuracy}${loss}</div>
<table><tr><th>round</th><th>participants</th><th>validation accuracy</th><th>validation loss</th><th>training loss</th><th>seconds</th></tr>
${rows}</table></body></html>
`;
}
