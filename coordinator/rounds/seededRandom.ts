/** A reproducible uniform [0,1) generator for client sampling: mulberry32 seeded from the job seed, round and attempt. */
export function seededRandom(...parts: number[]): () => number {
  let state = 0x9e3779b9;
  for (const p of parts) state = Math.imul(state ^ (p >>> 0), 0x85ebca6b) ^ (state >>> 13);
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
