import type { NamedTensor } from '../shared/codec/tensors';
import {
  alieDelta,
  alieZ,
  attackerDataset,
  attackerUpdate,
  DEFAULT_ATTACK_OPTIONS,
  normalQuantile,
  plantedDelta,
  stampTrigger,
} from './plantedBehaviour';

const tensor = (values: number[], name = 'w'): NamedTensor => ({
  name,
  shape: [values.length],
  data: Float32Array.from(values),
});
const global = [tensor([0, 0, 0, 0])];
const honest = [tensor([0.1, -0.2, 0.3, -0.4])];

describe('planted attackers (research only)', () => {
  it('sign-flip sends the trained delta reversed and scaled', () => {
    const d = plantedDelta('sign-flip', global, honest, 1)[0].data;
    expect(Array.from(d)).toEqual(Array.from(Float32Array.from([-1, 2, -3, 4])));
    expect(
      Array.from(plantedDelta('sign-flip', global, honest, 1, { ...DEFAULT_ATTACK_OPTIONS, signFlipScale: 1 })[0].data),
    ).toEqual(Array.from(Float32Array.from([-0.1, 0.2, -0.3, 0.4])));
  });

  it('gaussian-noise is zero-mean noise gaussianScale times the honest root mean square, seeded', () => {
    const big = [tensor(Array.from({ length: 20_000 }, (_, i) => (i % 2 ? 0.01 : -0.01)))];
    const zero = [tensor(new Array(20_000).fill(0))];
    const d = plantedDelta('gaussian-noise', zero, big, 7)[0].data;
    const rms = Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length);
    expect(rms).toBeGreaterThan(0.2 * 0.97);
    expect(rms).toBeLessThan(0.2 * 1.03);
    expect(Array.from(plantedDelta('gaussian-noise', zero, big, 7)[0].data.slice(0, 5))).toEqual(
      Array.from(d.slice(0, 5)),
    );
  });

  it('weight-inflation claims inflatedExamples with a reversed delta (issue 13’s first attack)', () => {
    const r = attackerUpdate('weight-inflation', { global, trained: honest, numExamples: 50, seed: 1 });
    expect(r.numExamples).toBe(1e9);
    expect(r.delta[0].data[0]).toBeCloseTo(-1, 6);
  });

  it('label-flip trains on labels l -> C - 1 - l and sends that delta as is', () => {
    const data = { x: new Float32Array(3), y: Int32Array.from([0, 4, 9]), count: 3, exampleShape: [1] };
    expect(Array.from(attackerDataset('label-flip', data, 10, 1).y)).toEqual([9, 5, 0]);
    expect(attackerUpdate('label-flip', { global, trained: honest, numExamples: 3, seed: 1 }).delta[0].data).toEqual(
      honest[0].data,
    );
  });

  it('backdoor stamps a 3x3 corner trigger on a fraction, relabels it to the target, and boosts the delta', () => {
    const count = 10;
    const data = {
      x: new Float32Array(count * 28 * 28),
      y: new Int32Array(count).fill(7),
      count,
      exampleShape: [28, 28, 1],
    };
    const poisoned = attackerDataset('backdoor', data, 10, 3);
    const stamped = Array.from({ length: count }, (_, i) => poisoned.x[i * 784 + 27 * 28 + 27] === 1);
    expect(stamped.filter(Boolean)).toHaveLength(5);
    stamped.forEach((s, i) => expect(poisoned.y[i]).toBe(s ? 0 : 7));
    const all = stampTrigger(data);
    expect(all.x[25 * 28 + 25]).toBe(1);
    expect(all.x[24 * 28 + 27]).toBe(0);
    expect(data.x[25 * 28 + 25]).toBe(0); // the input is not changed
    expect(
      attackerUpdate('backdoor', { global, trained: honest, numExamples: 3, seed: 1 }).delta[0].data[0],
    ).toBeCloseTo(1, 6);
  });

  it('ALIE: z_max from n and m (Baruch et al.), and every colluder sends mean - z·sd', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.326348, 5);
    expect(normalQuantile(0.65)).toBeCloseTo(0.38532, 5);
    // n = 20, m = 4: s = floor(11) - 4 = 7, z = Φ⁻¹(13/20)
    expect(alieZ(20, 4)).toBeCloseTo(0.38532, 5);
    const out = alieDelta([[tensor([1, 3])], [tensor([3, 5])]], 0.5)[0].data;
    expect(Array.from(out)).toEqual([1.5, 3.5]);
    const r = attackerUpdate('alie', {
      global,
      trained: honest,
      numExamples: 3,
      seed: 1,
      colluders: [[tensor([1, 3])], [tensor([3, 5])]],
      clients: 20,
    });
    expect(r.delta[0].data[0]).toBeCloseTo(2 - alieZ(20, 2), 6);
  });
});
