/** The REST edge on a live coordinator: bad bodies get 400 with a code, and every route answers in the catalog's shape. */
import { PROTOCOL_VERSION } from '../shared/schemas/messages';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { createSignedFetch } from '../client/signedFetch';
import { decodeTensors } from '../shared/codec/modelCodec';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { testBuyer } from './support/rest';

jest.setTimeout(300_000);

describe('REST API', () => {
  let c: Coordinator;
  // Requests signed by the buyer's Ed25519 key (RFC 9421), as the SDK sends them.
  const signed = createSignedFetch(testBuyer);
  const post = (path: string, body: string, type = 'application/json') =>
    signed(`${c.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
  const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;
  const spec = {
    name: 'rest',
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
    input: { shape: [2], numClasses: 2 },
    rounds: 1,
    quorumTimeoutMs: 120_000,
  };

  beforeAll(async () => {
    c = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu' });
  });
  afterAll(async () => c?.close());

  it('reports health', async () => {
    const res = await fetch(`${c.url}/v1/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: 'ok',
      protocolVersion: PROTOCOL_VERSION,
      store: 'memory',
      connectedClients: 0,
    });
  });

  it('rejects bad job bodies with 400 and a code naming the problem, creating nothing', async () => {
    const before = (await c.store.listJobs()).length;
    let res = await post('/v1/jobs', '{"name": ');
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('VALIDATION_FAILED');
    res = await post('/v1/jobs', JSON.stringify({ ...spec, rounds: 0 }));
    expect(res.status).toBe(400);
    const e = await errorOf(res);
    expect(e.code).toBe('JOB_SPEC_INVALID');
    expect(e.message).toMatch(/rounds/);
    res = await post('/v1/jobs', JSON.stringify({ ...spec, minClients: 5, maxClients: 2 }));
    expect((await errorOf(res)).message).toMatch(/minClients/);
    res = await post('/v1/jobs', JSON.stringify({ ...spec, model: { kind: 'builtin', name: 'resnet' } }));
    expect((await errorOf(res)).code).toBe('JOB_SPEC_INVALID');
    res = await post(
      '/v1/jobs',
      JSON.stringify({ ...spec, model: { kind: 'layers-json', topology: { class_name: 'Nonsense' } } }),
    );
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('JOB_SPEC_INVALID');
    res = await post('/v1/jobs', JSON.stringify(spec), 'text/plain');
    expect((await errorOf(res)).code).toBe('VALIDATION_FAILED');
    res = await post('/v1/jobs', JSON.stringify({ ...spec, name: 'x'.repeat(3 * 1024 * 1024) }));
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe('PAYLOAD_TOO_LARGE');
    expect((await c.store.listJobs()).length).toBe(before);
  });

  it('creates, lists and reads jobs; unknown ids and routes are 404 with codes', async () => {
    const created = await post('/v1/jobs', JSON.stringify(spec));
    expect(created.status).toBe(201);
    const job = (await created.json()) as {
      id: string;
      status: string;
      parameters: number;
      spec: { minClients: number; secureAggregation: string };
    };
    expect(job.status).toBe('running');
    expect(job.parameters).toBe(2 * 4 + 4 + 4 * 2 + 2);
    // New jobs aggregate securely unless they opt out; SecAgg+ needs a quorum of at least 3.
    expect(job.spec.secureAggregation).toBe('secagg');
    expect(job.spec.minClients).toBe(3);
    const list = (await (await fetch(`${c.url}/v1/jobs?status=running`)).json()) as { jobs: Array<{ id: string }> };
    // A public job (the default without a chain config) is listed and readable without an identity.
    expect(list.jobs.map((j) => j.id)).toContain(job.id);
    expect((await fetch(`${c.url}/v1/jobs?status=bogus`)).status).toBe(400);
    expect((await (await fetch(`${c.url}/v1/jobs/${job.id}`)).json()) as { id: string }).toMatchObject({ id: job.id });
    expect((await (await fetch(`${c.url}/v1/jobs/${job.id}/rounds`)).json()) as unknown).toEqual({
      rounds: [],
      nextCursor: null,
    });
    let res = await fetch(`${c.url}/v1/jobs/job_nope`);
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe('JOB_NOT_FOUND');
    res = await fetch(`${c.url}/v1/jobs/..%2F..%2Fetc`);
    expect((await errorOf(res)).code).toBe('JOB_NOT_FOUND');
    res = await fetch(`${c.url}/v1/jobs/${job.id}/checkpoints/7`);
    expect((await errorOf(res)).code).toBe('JOB_NO_MODEL');
    expect((await fetch(`${c.url}/v1/jobs/${job.id}/checkpoints/-1`)).status).toBe(400);
    res = await fetch(`${c.url}/v1/nothing-here`);
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe('NOT_FOUND');

    // The initial model is downloadable in TF.js format.
    // JSON.parse here, not Response.json(): tfjs-layers checks `instanceof Array`, which fails across jest's realms.
    const modelJson = JSON.parse(await (await fetch(`${c.url}/v1/jobs/${job.id}/model/model.json`)).text()) as {
      format: string;
      modelTopology: { class_name?: string };
      weightsManifest: Array<{ paths: string[]; weights: Array<{ name: string; shape: number[] }> }>;
    };
    expect(modelJson.format).toBe('layers-model');
    expect(modelJson.weightsManifest[0].paths).toEqual(['weights.bin']);
    const bin = await (await fetch(`${c.url}/v1/jobs/${job.id}/model/weights.bin`)).arrayBuffer();
    expect(bin.byteLength).toBe(job.parameters * 4);
    // TF.js itself loads it, with the same weights as the coordinator's checkpoint.
    const loaded = await tfl.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: modelJson.modelTopology as object,
        weightSpecs: modelJson.weightsManifest[0].weights as tf.io.WeightsManifestEntry[],
        weightData: bin,
      }),
    );
    const checkpoint = decodeTensors(await c.jobs.modelBytes(job.id, 0));
    const loadedWeights = loaded.getWeights();
    expect(loadedWeights).toHaveLength(checkpoint.length);
    for (let i = 0; i < checkpoint.length; i++)
      expect(Array.from(await loadedWeights[i].data())).toEqual(Array.from(checkpoint[i].data));
    const out = loaded.predict(tf.tensor2d([[0.5, -1]])) as tf.Tensor;
    expect(out.shape).toEqual([1, 2]);
    loaded.dispose();
  });

  it('checks the validation set against the input spec', async () => {
    const job = (await (await post('/v1/jobs', JSON.stringify(spec))).json()) as { id: string };
    const put = (body: string, type = 'text/csv') =>
      signed(`${c.url}/v1/jobs/${job.id}/validation-set`, { method: 'PUT', headers: { 'content-type': type }, body });
    let res = await put('f0,f1,label\n0.5,1,0\n1,2,3\n');
    expect(res.status).toBe(400);
    let e = await errorOf(res);
    expect(e.code).toBe('VALIDATION_SET_INVALID');
    expect(e.message).toMatch(/label/i);
    res = await put('f0,label\n0.5,0\n');
    expect((await errorOf(res)).code).toBe('VALIDATION_SET_INVALID');
    res = await put('f0,f1,label\n');
    expect((await errorOf(res)).code).toBe('VALIDATION_SET_INVALID');
    expect(await c.store.loadValidationSet(job.id)).toBeNull();
    res = await put('f0,f1,label\n0.5,1,0\n1,2,1\n');
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ jobId: job.id, examples: 2, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    res = await put('{"features":[1,2],"label":1}\n', 'application/x-ndjson');
    expect(res.status).toBe(201);
    e = await errorOf(await put('{"features":[1,2],"label":1}\nnot json\n', 'application/x-ndjson'));
    expect(e.code).toBe('VALIDATION_SET_INVALID');
  });
});
