import { decodeBinaryJson, encodeBinaryJson } from '../../../shared/codec/binaryJson';
import { SecAggOptionsSchema } from '../../../shared/schemas/jobSpec';
import type { SecAggRequest } from '../../../shared/schemas/messages';
import { EVENTS } from '../../../shared/schemas/protocol';
import { quantize, type SecAggParameters, secaggPolicyFor, weightUpdate } from '../../../shared/secagg';
import { makeClient, makeIdentities } from '../../../shared/secagg/testHarness';
import { ClientDirectory } from '../../transport/clientDirectory';
import { SecAggSession } from './secaggSession';

const manifest = [
  { name: 'w', shape: [2, 2] },
  { name: 'b', shape: [2] },
];
// Client ids are Ed25519 public keys (sorted, so c0..c3 name them in order).
const identities = [...makeIdentities(4).values()];
const ids = identities.map((i) => i.clientId);
const [c0, c1, c2, c3] = ids;
const deltas: Record<string, number[]> = {
  [c0]: [0.1, -0.2, 0.3, 0.05, 0, 1],
  [c1]: [-0.1, 0.2, 0.1, 0.05, 0.5, -1],
  [c2]: [0.2, 0.2, -0.3, 0.0, 0.25, 0.5],
  [c3]: [0.0, 0.1, 0.2, -0.4, -0.5, 0],
};
const examples: Record<string, number> = { [c0]: 10, [c1]: 30, [c2]: 20, [c3]: 40 };

/**
 * Clients answering over a fake directory; `silent` never answer a stage, `leaveAt` disconnect at one.
 * `partBytes` sends every masked vector in parts of that many bytes; `beforeParts` runs first (a
 * client misbehaving with its parts) and may throw nothing.
 */
function setup(
  opts: {
    silent?: Record<string, string>;
    leaveAt?: Record<string, string>;
    partBytes?: number;
    beforeParts?: (id: string, reply: string, vector: Uint8Array, session: SecAggSession) => void;
  } = {},
) {
  const directory = new ClientDirectory();
  const options = SecAggOptionsSchema.parse({ stageTimeoutMs: 200, maxExampleWeight: 100 });
  const session = new SecAggSession({
    jobId: 'job1',
    round: 1,
    attempt: 0,
    selected: ids,
    manifest,
    options,
    minClients: 3,
    trainingDeadline: 0,
    directory,
  });
  // The job runner forwards the directory's leaves to the session the same way.
  directory.onChange((e) => e.type === 'left' && session.markDropped(e.clientId, e.reason ?? 'disconnected'));
  const policy = secaggPolicyFor(options, 3, 7);
  const clients = new Map(identities.map((identity) => [identity.clientId, makeClient(identity, policy, 'job1:1:0')]));
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
            const replyText = encodeBinaryJson(rest);
            if (maskedVector && opts.partBytes) {
              opts.beforeParts?.(id, replyText, maskedVector, session);
              const count = Math.ceil(maskedVector.length / opts.partBytes);
              for (let index = 0; index < count; index++) {
                const data = maskedVector.subarray(index * opts.partBytes, (index + 1) * opts.partBytes);
                session.receive(
                  id,
                  { attempt: 0, stage: request.stage, reply: replyText, part: { index, count } },
                  data,
                );
              }
            } else {
              session.receive(id, { attempt: 0, stage: request.stage, reply: replyText }, maskedVector);
            }
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
    // Sums come back in examples (ratio × maxExampleWeight): w_i = examples_i here (all below 100).
    const r = examples[id];
    deltas[id].forEach((v, i) => (sum[i] += v * r));
    weight += r;
  }
  return { sum, weight };
}

/** Both phases, as the collection runs them once the round's quorum held. */
async function runSession(session: SecAggSession) {
  await session.collect();
  return session.unmask();
}

describe('SecAggSession', () => {
  it('runs the four stages over the directory and yields the weighted sum per tensor', async () => {
    const { session, errors } = setup();
    const result = await runSession(session);
    expect(errors).toEqual([]);
    expect(result.participants).toEqual(ids);
    expect(result.failures).toEqual([]);
    const { sum, weight } = expectedMean(ids);
    expect(result.updates.clientCount).toBe(4);
    expect(result.updates.totalWeight).toBeCloseTo(weight, 2);
    expect(result.updates.weightedDeltaSum.map((t) => t.length)).toEqual([4, 2]);
    const flat = [...result.updates.weightedDeltaSum[0], ...result.updates.weightedDeltaSum[1]];
    flat.forEach((v, i) => expect(Math.abs(v - sum[i])).toBeLessThanOrEqual((100 * 4 * 8) / 2 ** 22 + 1e-5));
  });

  it('assembles masked vectors sent in parts, refusing out-of-order, inconsistent or oversize parts without losing the rest', async () => {
    const refused: string[] = [];
    const attempt = (f: () => void) => {
      try {
        f();
        refused.push('accepted');
      } catch (err) {
        refused.push(`${(err as { code: string }).code}: ${(err as Error).message}`);
      }
    };
    // 7 values = 28 bytes: parts of 12, 12 and 4 bytes.
    const { session, errors } = setup({
      partBytes: 12,
      beforeParts: (id, reply, vector, s) => {
        if (id !== c0) return;
        const stage = 'collect-masked-vectors' as const;
        const part =
          (index: number, count: number, data: Uint8Array, text = reply) =>
          () =>
            s.receive(id, { attempt: 0, stage, reply: text, part: { index, count } }, data);
        attempt(part(1, 3, vector.subarray(12, 24))); // part 1 before part 0
        attempt(part(0, 3, vector.subarray(0, 12))); // fine: part 0 kept
        attempt(part(0, 3, vector.subarray(0, 12))); // part 0 again
        attempt(part(1, 4, vector.subarray(12, 24))); // another count
        attempt(part(1, 3, vector.subarray(12, 24), encodeBinaryJson({ x: 1 }))); // another reply
        attempt(part(1, 3, new Uint8Array(20))); // 12 + 20 > 28 bytes
        attempt(part(1, 3, new Uint8Array(0))); // empty
        // The refusals kept part 0: starting again at part 0 is now out of order too.
        attempt(part(0, 3, vector.subarray(0, 12)));
        // Completing the vector in order is accepted.
        attempt(part(1, 3, vector.subarray(12, 24)));
        attempt(part(2, 3, vector.subarray(24, 28)));
      },
    });
    const result = await runSession(session);
    // c0 completed its vector inside beforeParts; the loop's own part 0 then comes out of order.
    expect(errors.map((e) => (e as { code: string }).code)).toEqual(['SECAGG_MESSAGE_INVALID']);
    expect(refused.map((r) => r.split(':')[0])).toEqual([
      'SECAGG_MESSAGE_INVALID',
      'accepted',
      'SECAGG_MESSAGE_INVALID',
      'SECAGG_MESSAGE_INVALID',
      'SECAGG_MESSAGE_INVALID',
      'SECAGG_MESSAGE_INVALID',
      'SECAGG_MESSAGE_INVALID',
      'SECAGG_MESSAGE_INVALID',
      'accepted',
      'accepted',
    ]);
    expect(refused[0]).toMatch(/expected masked-vector part 0, got part 1/);
    expect(refused[5]).toMatch(/add up to exactly 28 bytes/);
    expect(result.participants).toEqual(ids);
    const { sum } = expectedMean(ids);
    const flat = [...result.updates.weightedDeltaSum[0], ...result.updates.weightedDeltaSum[1]];
    flat.forEach((v, i) => expect(Math.abs(v - sum[i])).toBeLessThanOrEqual((100 * 4 * 8) / 2 ** 22 + 1e-5));
  });

  it('turns a client that leaves after share-keys into a dropout and sums the others', async () => {
    const { session } = setup({ leaveAt: { [c2]: 'collect-masked-vectors' } });
    const result = await runSession(session);
    expect(result.participants).toEqual([c0, c1, c3]);
    expect(result.failures).toEqual([{ clientId: c2, reason: 'DISCONNECTED at collect-masked-vectors: gone' }]);
    expect(result.updates.totalWeight).toBeCloseTo(expectedMean([c0, c1, c3]).weight, 2);
  });

  it('withdraws a survivor that left after sending its masked vector, before the consistency check: the others are summed', async () => {
    const { session } = setup();
    expect(await session.collect()).toEqual(ids);
    session.markDropped(c2, 'gone'); // while other cohorts were still collecting
    expect(session.prepareReveal()).toEqual([c0, c1, c3]);
    const result = await session.unmask();
    expect(result.participants).toEqual([c0, c1, c3]);
    expect(result.failures).toEqual([{ clientId: c2, reason: 'DISCONNECTED at consistency-check: gone' }]);
    expect(result.updates.totalWeight).toBeCloseTo(expectedMean([c0, c1, c3]).weight, 2);
  });

  it('aborts when a survivor does not sign the survivor set: its self mask cannot come off without it', async () => {
    const { session } = setup({ silent: { [c1]: 'consistency-check' } });
    await session.collect();
    await expect(session.unmask()).rejects.toMatchObject({
      code: 'ROUND_QUORUM_NOT_MET',
      message: expect.stringMatching(/did not sign the survivor set/),
    });
  });

  it('records a silent client after the stage timeout', async () => {
    const { session } = setup({ silent: { [c3]: 'setup' } });
    const result = await runSession(session);
    expect(result.participants).toEqual([c0, c1, c2]);
    expect(result.failures[0]).toMatchObject({
      clientId: c3,
      reason: expect.stringMatching(/SECAGG_DROPOUT at setup/),
    });
  });

  it('aborts with ROUND_QUORUM_NOT_MET when fewer than minClients survive', async () => {
    const { session } = setup({ silent: { [c1]: 'setup', [c3]: 'share-keys' } });
    await expect(runSession(session)).rejects.toMatchObject({ code: 'ROUND_QUORUM_NOT_MET' });
    expect(session.failures.map((f) => f.clientId).sort()).toEqual([c1, c3]);
  });

  it('refuses replies for another attempt, stage or client, and ones carrying misplaced data', async () => {
    const { session } = setup({ silent: { [c0]: 'setup', [c1]: 'setup', [c2]: 'setup', [c3]: 'setup' } });
    const running = runSession(session).catch((e) => e);
    const body = {
      attempt: 0,
      stage: 'setup' as const,
      reply: encodeBinaryJson({ stage: 'setup', roundId: 'job1:1:0', clientId: c0 }),
    };
    expect(() => session.receive(c0, { ...body, attempt: 1 }, undefined)).toThrow(
      expect.objectContaining({ code: 'ROUND_WRONG' }),
    );
    expect(() => session.receive('zz', body, undefined)).toThrow(
      expect.objectContaining({ code: 'ROUND_NOT_SELECTED' }),
    );
    expect(() => session.receive(c0, { ...body, stage: 'unmask' }, undefined)).toThrow(
      expect.objectContaining({ code: 'SECAGG_STAGE_OUT_OF_ORDER' }),
    );
    expect(() => session.receive(c1, body, undefined)).toThrow(/another client/);
    expect(() => session.receive(c0, body, new Uint8Array(4))).toThrow(
      expect.objectContaining({ code: 'SECAGG_MESSAGE_INVALID' }),
    );
    expect(() => session.receive(c0, { ...body, reply: '{' }, undefined)).toThrow(
      expect.objectContaining({ code: 'SECAGG_MESSAGE_INVALID' }),
    );
    expect(() => session.receive(c0, body, undefined)).toThrow(
      expect.objectContaining({ code: 'SECAGG_MESSAGE_INVALID' }),
    ); // no keys
    expect(await running).toMatchObject({ code: 'ROUND_QUORUM_NOT_MET' });
  });
});
