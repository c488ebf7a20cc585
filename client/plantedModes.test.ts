import { generateIdentity } from '../shared/identity/keyPair';
import type { NamedTensor } from '../shared/codec/tensors';
import { separableDataset } from '../test/support/syntheticCsv';
import { AttackerClient } from './plantedClient';
import {
  DEFAULT_ATTACK_OPTIONS,
  FLOAT32_MAX,
  SOLO_ATTACKS,
  soloAttackDelta,
  soloAttackExamples,
} from './plantedBehaviour';
import { plantedModeFor } from './plantedModes';

const tensor = (values: number[]): NamedTensor => ({
  name: 'w',
  shape: [values.length],
  data: Float32Array.from(values),
});

describe("issue 13's attacks on the aggregate (research only)", () => {
  const global = [tensor([0, 0, 0])];
  const trained = [tensor([0.1, -0.2, 0.3])];

  it('overflow sends FLT_MAX everywhere and claims inflatedExamples; negative-weight sends the reversed delta', () => {
    expect(Array.from(soloAttackDelta('overflow', global, trained, 1)[0].data)).toEqual([
      FLOAT32_MAX,
      FLOAT32_MAX,
      FLOAT32_MAX,
    ]);
    expect(soloAttackExamples('overflow', 40)).toBe(DEFAULT_ATTACK_OPTIONS.inflatedExamples);
    expect(soloAttackExamples('weight-inflation', 40)).toBe(DEFAULT_ATTACK_OPTIONS.inflatedExamples);
    expect(soloAttackExamples('negative-weight', 40)).toBe(40);
    expect(soloAttackExamples('sign-flip', 40)).toBe(40);
    expect(Array.from(soloAttackDelta('negative-weight', global, trained, 1)[0].data)).toEqual(
      Array.from(Float32Array.from([-1, 2, -3])),
    );
  });

  it('a lone attacker plays every attack but alie (its colluders share deltas)', () => {
    expect(SOLO_ATTACKS).not.toContain('alie');
    expect(SOLO_ATTACKS).toEqual(expect.arrayContaining(['weight-inflation', 'overflow', 'negative-weight']));
    const options = {
      url: 'http://127.0.0.1:1',
      jobId: 'j',
      identity: generateIdentity(),
      dataset: separableDataset(4, 3, 1),
    };
    expect(() => new AttackerClient(options, 'alie' as never, { numClasses: 2, seed: 1 })).toThrow(/lone attacker/);
  });

  it('only the attacks on the aggregate run a modified client half, and only where the mode carries them', () => {
    expect(plantedModeFor('sign-flip', 'secagg')).toBeUndefined();
    expect(plantedModeFor('weight-inflation', 'paillier')).toBeUndefined();
    expect(plantedModeFor('negative-weight', 'none')).toBeUndefined();
    expect(plantedModeFor('overflow', 'paillier')).toBeUndefined(); // clipped by its own encryptor instead
    expect(plantedModeFor('negative-weight', 'secagg')?.name).toBe('secagg');
    expect(plantedModeFor('overflow', 'secagg')?.name).toBe('secagg');
    expect(plantedModeFor('negative-weight', 'paillier')?.name).toBe('paillier');
  });
});
