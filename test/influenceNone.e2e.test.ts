/**
 * Bounded influence in mode `none` (issue 13), end to end over real sockets: an in-process
 * coordinator on 127.0.0.1 and in-process production clients, one of them an attacker.
 * - Issue 13's first attack: a client declaring 1e9 examples with delta -5 against four honest
 *   clients sending +0.01. FedAvg counts maxExampleWeight (100,000) examples for it, not 1e9 (the
 *   step is exactly what the cap gives); `maxUpdateNorm` bounds the step to its norm; the median
 *   commits exactly the honest +0.01 and contribution scoring pays the attacker nothing.
 * - Issue 13's third attack: the planted `overflow` attacker (every delta value FLT_MAX, 1e9 examples).
 *   The server step's guard refuses it with ROUND_AGGREGATE_INVALID naming the attacker, the retry
 *   runs without it and commits, every committed model is finite, and the job completes.
 * (The second attack, a negative weight, does not apply: a plaintext example count is validated as a
 * positive integer.)
 */
import type { TributaryClient } from '../client/tributaryClient';
import type { ContributionReport } from '../coordinator/contribution/contributionReport';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import {
  EXAMPLES,
  HONEST_DELTA,
  influenceSpec,
  modelIsFinite,
  type Role,
  roundStep,
  startFederation,
  uploadValidationSet,
  worstStepError,
} from './support/influence';
import { createJob, testBuyer } from './support/rest';
import { createSignedFetch } from '../client/signedFetch';

jest.setTimeout(120_000);

const CAP = 100_000; // the default none.maxExampleWeight
const honest = (n: number): Role[] => Array.from({ length: n }, () => ({ kind: 'scripted', value: HONEST_DELTA }));
const inflated: Role = { kind: 'scripted', value: -5, examples: 1e9 };

describe('bounded influence in mode none (issue 13) end to end', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'error', backend: 'cpu' });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  /** Runs a job with these clients; the last one (the attacker) joins first, so it is in every round. */
  async function run(name: string, roles: Role[], overrides: Record<string, unknown>, validation = false) {
    const jobId = await createJob(
      coordinator.url,
      influenceSpec(name, { secureAggregation: 'none', minClients: roles.length, ...overrides }),
    );
    if (validation) await uploadValidationSet(coordinator.url, jobId);
    const started = await startFederation(coordinator.url, jobId, roles, clients, [roles.length - 1]);
    const job = await coordinator.jobs.waitForJob(jobId);
    return { jobId, job, ids: started.map((c) => c.clientId) };
  }

  it('weight inflation: FedAvg counts the capped weight, so the step is exactly what the cap allows; maxUpdateNorm bounds it', async () => {
    const { jobId, job } = await run('inflation-fedavg', [...honest(4), inflated], { rounds: 1 });
    expect(job.status).toBe('completed');
    const [round] = await coordinator.store.listRounds(jobId);
    expect(round.metrics.numExamples).toBe(CAP + 4 * EXAMPLES);
    // (4 x 100 x 0.01 + 100,000 x -5) / 100,400 = -4.98008 per weight; uncapped it would be -4.9999978.
    const capped = (4 * EXAMPLES * HONEST_DELTA + CAP * -5) / (CAP + 4 * EXAMPLES);
    expect(await worstStepError(coordinator.store, jobId, 1, capped)).toBeLessThanOrEqual(1e-6);

    const bounded = await run('inflation-norm-bound', [...honest(4), inflated], {
      rounds: 1,
      strategy: { name: 'fedavg', maxUpdateNorm: 0.5 },
    });
    expect(bounded.job.status).toBe('completed');
    const step = await roundStep(coordinator.store, bounded.jobId, 1);
    const norm = Math.hypot(...step);
    expect(norm).toBeGreaterThan(0.5 * (1 - 1e-4));
    expect(norm).toBeLessThanOrEqual(0.5 * (1 + 1e-4));
    // Scaled down, not turned: every weight still moves the attacker's way, by 0.5 / sqrt(parameters).
    for (const v of step) expect(v).toBeCloseTo(-0.5 / Math.sqrt(step.length), 5);
  });

  it('weight inflation under the median (f = 1): the committed step is the honest +0.01 and the attacker is paid nothing', async () => {
    const { jobId, job, ids } = await run(
      'inflation-median',
      [...honest(4), inflated],
      { rounds: 2, strategy: { name: 'fedavg', robust: { rule: 'median', f: 1 } } },
      true,
    );
    expect(job.status).toBe('completed');
    for (const round of [1, 2]) {
      expect(await worstStepError(coordinator.store, jobId, round, HONEST_DELTA)).toBeLessThanOrEqual(1e-7);
    }
    await coordinator.contributions.whenIdle(jobId);
    // Read as the job's owner (every client's scores are for its managers).
    const report = (await (
      await createSignedFetch(testBuyer)(`${coordinator.url}/v1/jobs/${jobId}/contributions`)
    ).json()) as ContributionReport;
    expect(report.status).toBe('scored');
    const attacker = report.clients.find((c) => c.clientId === ids[4])!;
    expect(attacker.share).toBe(0);
    for (const id of ids.slice(0, 4)) {
      expect(report.clients.find((c) => c.clientId === id)!.score).toBeGreaterThan(attacker.score);
    }
  });

  it('FLT_MAX deltas claiming 1e9 examples (planted overflow): refused with ROUND_AGGREGATE_INVALID naming the attacker, the retry commits without it, the model stays finite', async () => {
    const { jobId, job, ids } = await run(
      'overflow',
      [
        { kind: 'honest' },
        { kind: 'honest' },
        { kind: 'honest' },
        { kind: 'honest' },
        { kind: 'attacker', attack: 'overflow' },
      ],
      { rounds: 2, minClients: 4 },
      true,
    );
    const attacker = ids[4];
    expect(job.status).toBe('completed');
    const rounds = await coordinator.store.listRounds(jobId);
    for (const round of [1, 2]) {
      const attempts = rounds.filter((r) => r.round === round);
      expect(attempts.map((r) => r.status)).toEqual(['failed', 'completed']);
      const [failed, committed] = attempts;
      expect(failed.failureReason).toMatch(/^ROUND_AGGREGATE_INVALID: .*out of range alone: /);
      expect(failed.failures).toContainEqual({
        clientId: attacker,
        reason: "ROUND_AGGREGATE_INVALID: left out of this round's retry",
      });
      expect(committed.selected).not.toContain(attacker);
      expect([...committed.participants].sort()).toEqual(ids.slice(0, 4).sort());
      expect(await modelIsFinite(coordinator.store, jobId, round)).toBe(true);
      // An honest round of a small MLP: nowhere near the guard's 1e6.
      for (const v of await roundStep(coordinator.store, jobId, round)) expect(Math.abs(v)).toBeLessThan(1);
    }
  });
});
