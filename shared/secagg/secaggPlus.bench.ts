/** In-process SecAgg+ round timing: `node -r tsx/cjs shared/secagg/secaggPlus.bench.ts [n] [L]`. */
import { runInMemoryRound } from './testHarness';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 30);
  const L = Number(process.argv[3] ?? 100_000);
  const ids = Array.from({ length: n }, (_, i) => `c${i}`);
  const inputs = new Map(ids.map((id, i) => [id, new Uint32Array(L).fill(i)]));
  for (const drops of [0, 2]) {
    const dropAt = new Map(ids.slice(0, drops).map((id) => [id, 'collect-masked-vectors' as const]));
    const t0 = performance.now();
    const { result } = await runInMemoryRound({ roundId: 'bench', clientIds: ids, vectorLength: L }, inputs, dropAt);
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ n, L, dropsAfterShareKeys: drops, contributors: result.contributors.length, ms: Math.round(ms) }));
  }
}
void main();
