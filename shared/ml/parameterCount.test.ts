import * as tfl from '@tensorflow/tfjs-layers';
import { codeOf } from '../../test/support/codeOf';
import { JobSpecSchema, LIMITS, type InputSpec, type ModelSpec } from '../schemas/jobSpec';
import { TOPOLOGY_LIMITS } from '../schemas/topologyBounds';
import { selectBackend } from './backend';
import { buildModel } from './modelZoo';
import { parameterCount } from './parameterCount';

beforeAll(async () => {
  await selectBackend('cpu');
});

/** The topology TF.js itself serialises for `model`, as a buyer would send it. */
const topologyOf = (model: tfl.LayersModel) =>
  JSON.parse(JSON.stringify(model.toJSON(null, false))) as Record<string, unknown>;

async function expectSameAsTfjs(spec: ModelSpec, input: InputSpec): Promise<void> {
  const model = await buildModel(spec, input, 0);
  try {
    expect(parameterCount(spec, input)).toBe(model.countParams());
  } finally {
    model.dispose();
  }
}

describe('parameter count from the spec', () => {
  it.each<[string, ModelSpec, InputSpec]>([
    ['mlp default', { kind: 'builtin', name: 'mlp' }, { shape: [13], numClasses: 3, labelColumn: 'label' }],
    [
      'mlp deep',
      { kind: 'builtin', name: 'mlp', hiddenUnits: [32, 16, 8] },
      { shape: [4, 5], numClasses: 7, labelColumn: 'label' },
    ],
    [
      'mnist-cnn 28x28x1',
      { kind: 'builtin', name: 'mnist-cnn' },
      { shape: [28, 28, 1], numClasses: 10, labelColumn: 'label' },
    ],
    [
      'mnist-cnn flat 784',
      { kind: 'builtin', name: 'mnist-cnn' },
      { shape: [784], numClasses: 10, labelColumn: 'label' },
    ],
    [
      'mnist-cnn 33x20x3',
      { kind: 'builtin', name: 'mnist-cnn' },
      { shape: [33, 20, 3], numClasses: 4, labelColumn: 'label' },
    ],
  ])('built-in %s equals TF.js countParams()', async (_name, spec, input) => {
    await expectSameAsTfjs(spec, input);
  });

  const image: InputSpec = { shape: [20, 20, 3], numClasses: 5, labelColumn: 'label' };
  const sequence: InputSpec = { shape: [12], numClasses: 4, labelColumn: 'label' };
  const flat: InputSpec = { shape: [16], numClasses: 3, labelColumn: 'label' };

  it.each<[string, () => tfl.LayersModel, InputSpec]>([
    [
      'conv / batch-norm / pooling / dense',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.conv2d({ inputShape: [20, 20, 3], filters: 6, kernelSize: [3, 5], strides: 2, padding: 'same' }),
            tfl.layers.batchNormalization(),
            tfl.layers.maxPooling2d({ poolSize: 2 }),
            tfl.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, useBias: false }),
            tfl.layers.separableConv2d({ kernelSize: 2, filters: 7, padding: 'same' }),
            tfl.layers.averagePooling2d({ poolSize: 2, strides: 1 }),
            tfl.layers.flatten(),
            tfl.layers.dropout({ rate: 0.1 }),
            tfl.layers.dense({ units: 5, activation: 'softmax' }),
          ],
        }),
      image,
    ],
    [
      'global pooling and layer norm',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.conv2d({ inputShape: [20, 20, 3], filters: 8, kernelSize: 3, dilationRate: 2 }),
            tfl.layers.layerNormalization(),
            tfl.layers.globalAveragePooling2d({}),
            tfl.layers.dense({ units: 5, activation: 'softmax' }),
          ],
        }),
      image,
    ],
    [
      'embedding and recurrent layers',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.embedding({ inputDim: 50, outputDim: 6, inputLength: 12 }),
            // Glorot, not the default orthogonal recurrent initializer (slow QR; same parameter count).
            tfl.layers.lstm({ units: 5, returnSequences: true, recurrentInitializer: 'glorotUniform' }),
            tfl.layers.gru({ units: 4, returnSequences: true, recurrentInitializer: 'glorotUniform' }),
            tfl.layers.simpleRNN({ units: 3, recurrentInitializer: 'glorotUniform' }),
            tfl.layers.dense({ units: 4, activation: 'softmax' }),
          ],
        }),
      sequence,
    ],
    [
      'conv1d over a reshaped vector',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.reshape({ inputShape: [16], targetShape: [-1, 2] }),
            tfl.layers.conv1d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }),
            tfl.layers.maxPooling1d({ poolSize: 2 }),
            tfl.layers.globalMaxPooling1d({}),
            tfl.layers.dense({ units: 3, activation: 'softmax' }),
          ],
        }),
      flat,
    ],
    [
      'functional with branches, concatenate and add',
      () => {
        const inp = tfl.input({ shape: [16] });
        const a = tfl.layers.dense({ units: 8 }).apply(inp) as tfl.SymbolicTensor;
        const b = tfl.layers.dense({ units: 8, useBias: false }).apply(inp) as tfl.SymbolicTensor;
        const sum = tfl.layers.add().apply([a, b]) as tfl.SymbolicTensor;
        const joined = tfl.layers.concatenate().apply([sum, inp]) as tfl.SymbolicTensor;
        const out = tfl.layers.dense({ units: 3, activation: 'softmax' }).apply(joined) as tfl.SymbolicTensor;
        return tfl.model({ inputs: inp, outputs: out });
      },
      flat,
    ],
  ])('layers-json %s equals TF.js countParams()', async (_name, make, input) => {
    const model = make();
    const spec: ModelSpec = { kind: 'layers-json', topology: topologyOf(model) };
    model.dispose();
    await expectSameAsTfjs(spec, input);
  });

  it('refuses topologies it cannot count, with a coded error and no build', () => {
    const dense = topologyOf(
      tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [16], units: 3, activation: 'softmax' })] }),
    );
    const unknownClass = structuredClone(dense) as { config: { layers: Array<{ class_name: string }> } };
    unknownClass.config.layers[0].class_name = 'Conv3D';
    expect(codeOf(() => parameterCount({ kind: 'layers-json', topology: unknownClass }, flat))).toBe(
      'JOB_SPEC_INVALID',
    );
    expect(codeOf(() => parameterCount({ kind: 'layers-json', topology: { class_name: 'Nonsense' } }, flat))).toBe(
      'JOB_SPEC_INVALID',
    );
    const noShape = { class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { units: 3 } }] } };
    expect(codeOf(() => parameterCount({ kind: 'layers-json', topology: noShape }, flat))).toBe('JOB_SPEC_INVALID');
  });

  it('counts a 60M-parameter spec without allocating it', () => {
    const huge: ModelSpec = { kind: 'builtin', name: 'mlp', hiddenUnits: [60_000, 1000] };
    const before = process.memoryUsage().rss;
    const parameters = parameterCount(huge, { shape: [1000], numClasses: 10, labelColumn: 'label' });
    expect(parameters).toBe(1000 * 60_000 + 60_000 + 60_000 * 1000 + 1000 + 1000 * 10 + 10);
    expect(parameters).toBeGreaterThan(LIMITS.maxParameters);
    // Generous: building it would take about 500 MB.
    expect(process.memoryUsage().rss - before).toBeLessThan(50 * 1024 * 1024);
  });
});

describe('topology structure bounds (in the job spec schema)', () => {
  const spec = (topology: unknown) => ({
    name: 'deep',
    model: { kind: 'layers-json', topology },
    input: { shape: [2], numClasses: 2 },
    rounds: 1,
  });

  it('refuses a deeply nested topology with a coded issue, not a stack overflow', () => {
    let deep: unknown = {};
    for (let i = 0; i < 200_000; i++) deep = { n: deep };
    const parsed = JobSpecSchema.safeParse(spec({ class_name: 'Sequential', config: deep }));
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues[0].message).toMatch(/nested deeper than 32/);
    let arrays: unknown = [];
    for (let i = 0; i < 200_000; i++) arrays = [arrays];
    expect(JobSpecSchema.safeParse(spec({ config: arrays })).error!.issues[0].message).toMatch(/nested deeper/);
  });

  it('refuses topologies over the byte and value limits', () => {
    expect(TOPOLOGY_LIMITS.maxBytes).toBe(LIMITS.maxTopologyBytes);
    const big = { class_name: 'Sequential', config: { blob: 'x'.repeat(LIMITS.maxTopologyBytes) } };
    expect(JobSpecSchema.safeParse(spec(big)).error!.issues[0].message).toMatch(/larger than/);
    const many = { class_name: 'Sequential', config: { list: new Array(TOPOLOGY_LIMITS.maxNodes).fill(0) } };
    expect(JobSpecSchema.safeParse(spec(many)).error!.issues[0].message).toMatch(/more than/);
  });
});
