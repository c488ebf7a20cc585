import type { NamedTensor } from '../shared/codec/tensors';
import { type Dataset, exampleSize } from '../shared/data/dataset';
import { createRng, normalSample, shuffleInPlace } from '../shared/data/random';

/**
 * Research-only misbehaviours for planted federations (contribution-scoring tests, the robustness
 * benchmark and the demo's --free-rider): what a client sends instead of its honest update. None is
 * reachable from a production option: a TributaryClient misbehaves only through its research
 * `plantedBehaviour` hook.
 * - `free-rider`: the global model unchanged (a zero delta) while claiming its examples;
 * - `zeros`: an all-zero model (delta = -global);
 * - `noise`: a random delta, Gaussian per value, as large (root mean square) as the honest one it
 *   replaces, so a norm check cannot tell it apart;
 * - `sign-flip`: the trained delta reversed and scaled (-signFlipScale · honest);
 * - `gaussian-noise`: a Gaussian delta gaussianScale times the honest one's root mean square
 *   (the "Gaussian" Byzantine worker of Blanchard et al. 2017, section 5).
 * The attacks that need more than the delta (declared examples, poisoned data, colluders) are the
 * PlantedAttack functions below.
 */
export type PlantedBehaviour = 'free-rider' | 'zeros' | 'noise' | 'sign-flip' | 'gaussian-noise';
export const PLANTED_BEHAVIOURS: readonly PlantedBehaviour[] = [
  'free-rider',
  'zeros',
  'noise',
  'sign-flip',
  'gaussian-noise',
];

/** Research attacks on robustness (issue 13): each is what a Byzantine client of the benchmark does. */
export type PlantedAttack = 'weight-inflation' | 'sign-flip' | 'gaussian-noise' | 'label-flip' | 'alie' | 'backdoor';
export const PLANTED_ATTACKS: readonly PlantedAttack[] = [
  'weight-inflation',
  'sign-flip',
  'gaussian-noise',
  'label-flip',
  'alie',
  'backdoor',
];

/** Strengths of the planted attacks; DEFAULT_ATTACK_OPTIONS holds the defaults. */
export interface AttackOptions {
  /** `sign-flip` and `weight-inflation` send -signFlipScale · honest delta. @default 10 */
  signFlipScale: number;
  /** `gaussian-noise` sends N(0, (gaussianScale · rms(honest))²) per value. @default 20 */
  gaussianScale: number;
  /** `weight-inflation` declares this many examples. @default 1e9 */
  inflatedExamples: number;
  /** `alie`: z (standard deviations); absent: z_max of Baruch et al. from n and the attacker count. */
  alieZ?: number;
  /** `backdoor`: the label triggered examples are relabelled to. @default 0 */
  backdoorTarget: number;
  /** `backdoor`: fraction of the attacker's examples stamped with the trigger. @default 0.5 */
  backdoorFraction: number;
  /** `backdoor`: the trained delta is multiplied by this (model replacement boost). @default 10 */
  backdoorBoost: number;
}

export const DEFAULT_ATTACK_OPTIONS: Readonly<AttackOptions> = Object.freeze({
  signFlipScale: 10,
  gaussianScale: 20,
  inflatedExamples: 1e9,
  backdoorTarget: 0,
  backdoorFraction: 0.5,
  backdoorBoost: 10,
});

function rmsOf(tensors: readonly NamedTensor[]): number {
  let squares = 0;
  let count = 0;
  for (const t of tensors) for (const v of t.data) (squares += v * v), count++;
  return Math.sqrt(squares / Math.max(1, count));
}

/** The delta a planted client sends instead of `honest` (its trained delta from `global`); seeded, so runs repeat. */
export function plantedDelta(
  behaviour: PlantedBehaviour,
  global: readonly NamedTensor[],
  honest: readonly NamedTensor[],
  seed: number,
  options: Readonly<AttackOptions> = DEFAULT_ATTACK_OPTIONS,
): NamedTensor[] {
  const rng = createRng(seed);
  const rms = rmsOf(honest);
  return global.map((t, i) => {
    const d = new Float32Array(t.data.length);
    const h = honest[i].data;
    if (behaviour === 'zeros') for (let j = 0; j < d.length; j++) d[j] = -t.data[j];
    if (behaviour === 'noise') for (let j = 0; j < d.length; j++) d[j] = rms * normalSample(rng);
    if (behaviour === 'sign-flip') for (let j = 0; j < d.length; j++) d[j] = -options.signFlipScale * h[j];
    if (behaviour === 'gaussian-noise')
      for (let j = 0; j < d.length; j++) d[j] = options.gaussianScale * rms * normalSample(rng);
    return { name: t.name, shape: [...t.shape], data: d };
  });
}

/** The same examples with their labels randomly permuted (the planted "shuffled labels" provider). */
export function withShuffledLabels(dataset: Dataset, seed: number): Dataset {
  return { ...dataset, y: shuffleInPlace(Int32Array.from(dataset.y), createRng(seed)) };
}

/**
 * Label flipping (Tolpegin et al., ESORICS 2020; Fang et al., USENIX Security 2020): every label l
 * becomes numClasses - 1 - l, and the client trains honestly on the flipped data.
 */
export function withFlippedLabels(dataset: Dataset, numClasses: number): Dataset {
  return { ...dataset, y: dataset.y.map((l) => numClasses - 1 - l) };
}

/**
 * The backdoor trigger: for image-shaped examples [H, W, C] a 3×3 patch of maximal values (1) in the
 * bottom-right corner of every channel; for other shapes the last 3 features set to 1.
 */
export function stampTrigger(dataset: Dataset, indices?: ArrayLike<number>): Dataset {
  const size = exampleSize(dataset.exampleShape);
  const x = Float32Array.from(dataset.x);
  const shape = dataset.exampleShape;
  const offsets: number[] = [];
  if (shape.length === 3 && shape[0] >= 3 && shape[1] >= 3) {
    const [h, w, c] = shape;
    for (let r = h - 3; r < h; r++)
      for (let col = w - 3; col < w; col++) for (let k = 0; k < c; k++) offsets.push((r * w + col) * c + k);
  } else {
    for (let k = Math.max(0, size - 3); k < size; k++) offsets.push(k);
  }
  const which = indices ?? Array.from({ length: dataset.count }, (_, i) => i);
  for (let i = 0; i < which.length; i++) for (const o of offsets) x[which[i] * size + o] = 1;
  return { ...dataset, x };
}

/**
 * A scaled backdoor (Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020,
 * section 4, model replacement): a seeded fraction of the attacker's examples get the trigger and
 * the target label; it trains on that mix (so the main task still looks learnt) and boosts the delta.
 */
export function withBackdoor(
  dataset: Dataset,
  seed: number,
  options: Readonly<AttackOptions> = DEFAULT_ATTACK_OPTIONS,
): Dataset {
  const order = shuffleInPlace(
    Array.from({ length: dataset.count }, (_, i) => i),
    createRng(seed),
  );
  const chosen = order.slice(0, Math.round(options.backdoorFraction * dataset.count));
  const stamped = stampTrigger(dataset, chosen);
  const y = Int32Array.from(dataset.y);
  for (const i of chosen) y[i] = options.backdoorTarget;
  return { ...stamped, y };
}

/** The local data a planted attacker trains on: poisoned for `label-flip` and `backdoor`, unchanged otherwise. */
export function attackerDataset(
  attack: PlantedAttack,
  dataset: Dataset,
  numClasses: number,
  seed: number,
  options: Readonly<AttackOptions> = DEFAULT_ATTACK_OPTIONS,
): Dataset {
  if (attack === 'label-flip') return withFlippedLabels(dataset, numClasses);
  if (attack === 'backdoor') return withBackdoor(dataset, seed, options);
  return dataset;
}

/**
 * Inverse of the standard normal CDF, by Acklam's rational approximation (relative error below
 * 1.2e-9 on (0, 1)), for ALIE's z.
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile needs 0 < p < 1, got ${p}`);
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
  ];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    );
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
  );
}

/**
 * ALIE's z_max (Baruch, Baruch & Goldberg, "A Little Is Enough", NeurIPS 2019, section 3): with n
 * workers of which m collude, s = floor(n/2 + 1) - m honest workers must be won over, and
 * z_max = Φ⁻¹((n - s) / n) keeps the crafted value closer to the mean than that many honest ones.
 */
export function alieZ(n: number, m: number): number {
  const s = Math.floor(n / 2 + 1) - m;
  return normalQuantile(Math.min(1 - 1e-9, Math.max(1e-9, (n - s) / n)));
}

/**
 * "A little is enough" (Baruch et al. 2019, section 3, Algorithm 1): the colluders estimate each
 * coordinate's mean μ and standard deviation σ from their own honest deltas and all send μ − z·σ,
 * which hides inside the honest spread (so distance and coordinate filters keep it) while pushing
 * every coordinate the same way. In gradient terms this is the paper's μ + z·σ (a delta is −lr·g).
 */
export function alieDelta(colluders: readonly (readonly NamedTensor[])[], z: number): NamedTensor[] {
  if (colluders.length === 0) throw new RangeError('ALIE needs at least one colluder');
  const k = colluders.length;
  return colluders[0].map((t, i) => {
    const out = new Float32Array(t.data.length);
    for (let j = 0; j < out.length; j++) {
      let mean = 0;
      for (const c of colluders) mean += c[i].data[j];
      mean /= k;
      let variance = 0;
      for (const c of colluders) variance += (c[i].data[j] - mean) ** 2;
      const sd = Math.sqrt(variance / k);
      out[j] = mean - z * sd;
    }
    return { name: t.name, shape: [...t.shape], data: out };
  });
}

/** What a planted attacker sends this round, besides its dataset (attackerDataset). */
export interface AttackRound {
  global: readonly NamedTensor[];
  /** The attacker's delta after training (on its poisoned data for `label-flip` and `backdoor`). */
  trained: readonly NamedTensor[];
  /** The attacker's true example count. */
  numExamples: number;
  seed: number;
  /** `alie`: every colluder's honest delta this round (its own included). */
  colluders?: readonly (readonly NamedTensor[])[];
  /** `alie`: clients in the round and colluding attackers, for z_max. */
  clients?: number;
}

/** The update (delta and declared examples) a planted attacker sends for one round. */
export function attackerUpdate(
  attack: PlantedAttack,
  round: AttackRound,
  options: Readonly<AttackOptions> = DEFAULT_ATTACK_OPTIONS,
): { delta: NamedTensor[]; numExamples: number } {
  const copy = () => round.trained.map((t) => ({ name: t.name, shape: [...t.shape], data: Float32Array.from(t.data) }));
  switch (attack) {
    case 'sign-flip':
    case 'gaussian-noise':
      return {
        delta: plantedDelta(attack, round.global, round.trained, round.seed, options),
        numExamples: round.numExamples,
      };
    case 'weight-inflation':
      // Issue 13's first attack: a reversed update with a claimed weight that would own a FedAvg mean.
      return {
        delta: plantedDelta('sign-flip', round.global, round.trained, round.seed, options),
        numExamples: options.inflatedExamples,
      };
    case 'label-flip':
      return { delta: copy(), numExamples: round.numExamples };
    case 'backdoor':
      return {
        delta: round.trained.map((t) => ({
          name: t.name,
          shape: [...t.shape],
          data: t.data.map((v) => v * options.backdoorBoost),
        })),
        numExamples: round.numExamples,
      };
    case 'alie': {
      const colluders = round.colluders ?? [round.trained];
      const z = options.alieZ ?? alieZ(round.clients ?? colluders.length, colluders.length);
      return { delta: alieDelta(colluders, z), numExamples: round.numExamples };
    }
  }
}

/** The largest finite Float32 (FLT_MAX): issue 13's third attack sends it as every delta value. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Issue 13's attacks on the aggregate itself (research only), beside the PlantedAttack model attacks:
 * - `overflow`: every delta value +FLT_MAX (finite, so the codec's finiteness check passes) while
 *   claiming `inflatedExamples`. Through the stock client halves: `none` uploads it as is; the private
 *   modes' clients clip it to their clipping range. The modified secagg half (client/plantedModes.ts)
 *   instead pushes every masked value half the modulus away, past anything clipping allows.
 * - `negative-weight`: the reversed delta (as `sign-flip`) with a negative weight ratio hidden inside
 *   the masked vector (secagg) or the ciphertexts (paillier) that cancels its peers' ratios, so the
 *   FedAvg division amplifies the sum. Private modes only: a plaintext example count is validated.
 */
export type AggregateAttack = 'overflow' | 'negative-weight';
export const AGGREGATE_ATTACKS: readonly AggregateAttack[] = ['overflow', 'negative-weight'];

/** Every attack one planted client can play on its own (`alie` needs colluders that share their deltas). */
export type SoloAttack = Exclude<PlantedAttack, 'alie'> | AggregateAttack;
export const SOLO_ATTACKS: readonly SoloAttack[] = [
  ...PLANTED_ATTACKS.filter((a): a is Exclude<PlantedAttack, 'alie'> => a !== 'alie'),
  ...AGGREGATE_ATTACKS,
];

/** The delta a lone planted attacker sends instead of `trained` (its delta after training on attackerDataset). */
export function soloAttackDelta(
  attack: SoloAttack,
  global: readonly NamedTensor[],
  trained: readonly NamedTensor[],
  seed: number,
  options: Readonly<AttackOptions> = DEFAULT_ATTACK_OPTIONS,
): NamedTensor[] {
  switch (attack) {
    case 'overflow':
      return global.map((t) => ({
        name: t.name,
        shape: [...t.shape],
        data: new Float32Array(t.data.length).fill(FLOAT32_MAX),
      }));
    case 'negative-weight':
      return plantedDelta('sign-flip', global, trained, seed, options);
    default:
      return attackerUpdate(attack, { global, trained, numExamples: 1, seed }, options).delta;
  }
}

/** The example count a lone planted attacker declares, given the one it trained on. */
export function soloAttackExamples(
  attack: SoloAttack,
  trainedExamples: number,
  options: Readonly<AttackOptions> = DEFAULT_ATTACK_OPTIONS,
): number {
  return attack === 'weight-inflation' || attack === 'overflow' ? options.inflatedExamples : trainedExamples;
}
