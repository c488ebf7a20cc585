import { decodeBinaryJson, encodeBinaryJson } from '../../shared/codec/binaryJson';
import { secaggOptionsOf } from '../../shared/schemas/jobSpec';
import { EVENTS, type SecAggRequest } from '../../shared/schemas/messages';
import { quantize, SecAggPlusClient, weightUpdate, type SecAggParameters } from '../../shared/secagg';
import { ClientDirectory } from '../transport/clientDirectory';
import { SecAggSession } from './secaggSession';

const manifest = [{ name: 'w', shape: [2, 2] }, { name: 'b', shape: [2] }];
const ids = ['c0', 'c1', 'c2', 'c3'];
const deltas: Record<string, number[]> = {
  c0: [0.1, -0.2, 0.3, 0.05, 0, 1],
  c1: [-0.1, 0.2, 0.1, 0.05, 0.5, -1],
  c2: [0.2, 0.2, -0.3, 0.0, 0.25, 0.5],
  c3: [0.0, 0.1, 0.2, -0.4, -0.5, 0],
};
const examples: Record<string, number> = { c0: 10, c1: 30, c2: 20, c3: 40 };

/** Clients answering over a fake directory; `silent` never answer a stage, `leaveAt` disconnect at one. */
function setup(opts: { silent?: Record<string, string>; leaveAt?: Record<string, string> } = {}) {
  const directory = new ClientDirectory();
  const options = secaggOptionsOf({ secagg: { stageTimeoutMs: 200, maxExampleWeight: 100 } });
  const session = new SecAggSession({
    jobId: 'job1', round: 1, attempt: 0, selected: ids, manifest, options, minClients: 3, trainingDeadline: 0, directory,
  });
  // The job runner forwards the directory's leaves to the session the same way.
  directory.onChange((e) => e.type === 'left' && session.markDropped(e.clientId, e.reason ?? 'disconnected'));
  const clients = new Map(ids.map((id) => [id, new SecAggPlusClient(id)]));
  const params = new Map<string, SecAggParameters>();
  const errors: unknown[] = [];
  for (const id of ids) {
    const link = {
      clientId: id,
      send: (event: string, payload: unknown) => {
        expect(event).toBe(EVENTS.secaggRequest);
        const request = payload as SecAggRequest;
        if (opts.silent?.[id] === request.stage) return;
        if (opts.leaveAt?.[id] === request.stage) {
          setImmediate(() => directory.disconnect(id, link, 'gone'));
          return;
        }
        void (async () => {
          const message = decodeBinaryJson(request.payload) as { params?: SecAggParameters };
          if (message.params) params.set(id, message.params);
          let input: Uint32Array | undefined;
          if (request.stage === 'collect-masked-vectors') {
            input = quantize(weightUpdate(deltas[id], examples[id], options.maxExampleWeight), params.get(id)!).values;
          }
          const reply = await clients.get(id)!.handle(message, input);
          const { maskedVector, ...rest } = reply as typeof reply & { maskedVector?: Uint8Array };
          try {
            session.receive(id, { attempt: 0, stage: request.stage, reply: encodeBinaryJson(rest) }, maskedVector);
          } catch (err) {
            errors.push(err);
          }
        })();
      },
    };
    directory.connect(link);
    directory.join(id, 'job1');
  }
  return { session, errors, directory };
}

function expectedMean(contributors: string[]): { sum: number[]; weight: number } {
  const sum = new Array(6).fill(0);
  let weight = 0;
  for (const id of contributors) {
    const r = examples[id] / 100;
    deltas[id].forEach((v, i) => (sum[i] += v * r));
    weight += r;
  }
  return { sum, weight };
}

describe('SecAggSession', () => {
  it('runs the four stages over the directory and yields the weighted sum per tensor', async () => {
    const { session, errors } = setup();
    const result = await session.run();
    expect(errors).toEqual([]);
    expect(result.participants).toEqual(ids);
    expect(result.failures).toEqual([]);
    const { sum, weight } = expectedMean(ids);
    expect(result.updates.clientCount).toBe(4);
    expect(result.updates.totalExamples).toBeCloseTo(weight, 4);
    expect(result.updates.weightedDeltaSum.map((t) => t.length)).toEqual([4, 2]);
    const flat = [...result.updates.weightedDeltaSum[0], ...result.updates.weightedDeltaSum[1]];
    flat.forEach((v, i) => expect(Math.abs(v - sum[i])).toBeLessThanOrEqual((4 * 8) / 2 ** 22 + 1e-7));
  });

  it('turns a client that leaves after share-keys into a dropout and sums the others', async () => {
    const { session } = setup({ leaveAt: { c2: 'collect-masked-vectors' } });
    const result = await session.run();
    expect(result.participants).toEqual(['c0', 'c1', 'c3']);
    expect(result.failures).toEqual([{ clientId: 'c2', reason: 'DISCONNECTED at collect-masked-vectors: gone' }]);
    expect(result.updates.totalExamples).toBeCloseTo(expectedMean(['c0', 'c1', 'c3']).weight, 4);
  });

  it('records a silent client after the stage timeout', async () => {
    const { session } = setup({ silent: { c3: 'setup' } });
    const result = await session.run();
    expect(result.participants).toEqual(['c0', 'c1', 'c2']);
    expect(result.failures[0]).toMatchObject({ clientId: 'c3', reason: expect.stringMatching(/SECAGG_DROPOUT at setup/) });
  });

  it('aborts with ROUND_QUORUM_NOT_MET when fewer than minClients survive', async () => {
    const { session } = setup({ silent: { c1: 'setup', c3: 'share-keys' } });
    await expect(session.run()).rejects.toMatchObject({ code: 'ROUND_QUORUM_NOT_MET' });
    expect(session.failures.map((f) => f.clientId).sort()).toEqual(['c1', 'c3']);
  });

  it('refuses replies for another attempt, stage or client, and ones carrying misplaced data', async () => {
    const { session } = setup({ silent: { c0: 'setup', c1: 'setup', c2: 'setup', c3: 'setup' } });
    const running = session.run().catch((e) => e);
    const body = { attempt: 0, stage: 'setup' as const, reply: encodeBinaryJson({ stage: 'setup', roundId: 'job1:1:0', clientId: 'c0' }) };
    expect(() => session.receive('c0', { ...body, attempt: 1 }, undefined)).toThrow(expect.objectContaining({ code: 'ROUND_WRONG' }));
    expect(() => session.receive('zz', body, undefined)).toThrow(expect.objectContaining({ code: 'ROUND_NOT_SELECTED' }));
    expect(() => session.receive('c0', { ...body, stage: 'unmask' }, undefined)).toThrow(expect.objectContaining({ code: 'SECAGG_STAGE_OUT_OF_ORDER' }));
    expect(() => session.receive('c1', body, undefined)).toThrow(/another client/);
    expect(() => session.receive('c0', body, new Uint8Array(4))).toThrow(expect.objectContaining({ code: 'SECAGG_MESSAGE_INVALID' }));
    expect(() => session.receive('c0', { ...body, reply: '{' }, undefined)).toThrow(expect.objectContaining({ code: 'SECAGG_MESSAGE_INVALID' }));
    expect(() => session.receive('c0', body, undefined)).toThrow(expect.objectContaining({ code: 'SECAGG_MESSAGE_INVALID' })); // no keys
    expect(await running).toMatchObject({ code: 'ROUND_QUORUM_NOT_MET' });
  });
});
