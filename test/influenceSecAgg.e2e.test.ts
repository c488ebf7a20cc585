/**
 * Bounded influence in mode `secagg` with cohorts (issue 13), end to end over real sockets: an
 * in-process coordinator on 127.0.0.1 and in-process production clients in SecAgg+ cohorts of 3,
 * one of them an attacker. The coordinator never sees an update, only each cohort's sum.
 * - Issue 13's second attack: the planted `negative-weight` attacker runs a modified client half that
 *   hides a negative weight ratio in its masked vector, cancelling its cohort's summed weight to one
 *   quantisation step (the division would amplify the sum ~10^6-fold). Its cohort's sum is refused
 *   (ROUND_AGGREGATE_INVALID, the cohort's members named), the other cohort commits the honest step,
 *   and the model never moves by the attack.
 * - Issue 13's third attack inside SecAgg+: the planted `overflow` attacker pushes every masked value
 *   half the modulus away; its cohort's sum is refused the same way.
 * - Through the stock client half (the attacker only lies about its update): 1e9 examples with delta
 *   -5 count as maxExampleWeight (FedAvg's step is exactly what the cap gives), and FLT_MAX deltas are
 *   clipped by the attacker's own client to the clipping range, so the median over cohort means
 *   commits exactly the honest step and contribution scoring pays the attacker nothing.
 */
import type { TributaryClient } from '../client/tributaryClient';
import type { ContributionReport } from '../coordinator/contribution/contributionReport';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { RoundRecord } from '../coordinator/store/store';
import { FLOAT32_MAX } from '../client/plantedBehaviour';
import {
  EXAMPLES,
  HONEST_DELTA,
  influenceSpec,
  modelIsFinite,
  type Role,
  startFederation,
  uploadValidationSet,
  worstStepError,
} from './support/influence';
import { createJob, testBuyer } from './support/rest';
import { createSignedFetch } from '../client/signedFetch';

jest.setTimeout(180_000);

const MAX_EXAMPLE_WEIGHT = 1000;
/** The quantisation error of a cohort's mean step of +0.01 is ~1e-5; the attacks would move weights by >= 1. */
const STEP_TOLERANCE = 1e-4;
const honest = (n: number): Role[] => Array.from({ length: n }, () => ({ kind: 'scripted', value: HONEST_DELTA }));

describe('bounded influence in mode secagg with cohorts (issue 13) end to end', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'error', backend: 'cpu' });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  async function run(
    name: string,
    roles: Role[],
    overrides: Record<string, unknown>,
    options: { first?: number[]; validation?: boolean } = {},
  ) {
    const jobId = await createJob(
      coordinator.url,
      influenceSpec(name, {
        secureAggregation: 'secagg',
        secagg: { cohortSize: 3, maxExampleWeight: MAX_EXAMPLE_WEIGHT, stageTimeoutMs: 10_000 },
        ...overrides,
      }),
    );
    if (options.validation) await uploadValidationSet(coordinator.url, jobId);
    const started = await startFederation(coordinator.url, jobId, roles, clients, options.first);
    const job = await coordinator.jobs.waitForJob(jobId);
    const rounds = await coordinator.store.listRounds(jobId);
    return { jobId, job, rounds, ids: started.map((c) => c.clientId) };
  }

  /**
   * Five honest clients, then the attacker (so round 1 may start without it; from then on the six
   * form two cohorts). Checks every round the attacker was selected in: its cohort's sum was refused
   * with `what`, the other cohort's committed; every committed step is the honest +0.01.
   */
  async function expectCohortRefused(attack: 'negative-weight' | 'overflow', what: RegExp) {
    const roles: Role[] = [...honest(5), { kind: 'attacker', attack }];
    const { jobId, job, rounds, ids } = await run(
      attack,
      roles,
      { rounds: 3, minClients: 3 },
      { first: [0, 1, 2, 3, 4] },
    );
    const attacker = ids[5];
    expect(job.status).toBe('completed');
    const attacked = rounds.filter((r) => r.selected.includes(attacker));
    expect(attacked.length).toBeGreaterThanOrEqual(1);
    for (const r of attacked) {
      expect(r.status).toBe('completed');
      expect(r.selected).toHaveLength(6);
      expect(r.participants).toHaveLength(3);
      expect(r.participants).not.toContain(attacker);
      expect(r.cohorts).toEqual([r.participants]);
      const refused = r.failures.filter((f) => f.reason.includes('ROUND_AGGREGATE_INVALID'));
      expect(refused.map((f) => f.clientId)).toContain(attacker);
      expect(refused).toHaveLength(3);
      for (const f of refused) {
        expect(f.reason).toMatch(
          /^SECAGG_COHORT_ABORTED \(cohort \d\): ROUND_AGGREGATE_INVALID: Not using SecAgg\+ cohort \d's sum/,
        );
        expect(f.reason).toMatch(what);
      }
    }
    for (const r of rounds.filter((x) => x.status === 'completed')) {
      expect(r.participants).not.toContain(attacker);
      expect(await modelIsFinite(coordinator.store, jobId, r.round)).toBe(true);
      expect(await worstStepError(coordinator.store, jobId, r.round, HONEST_DELTA)).toBeLessThanOrEqual(STEP_TOLERANCE);
    }
  }

  it('a negative weight ratio hidden in the masked vector (planted negative-weight): the cohort is refused, the model moves by the honest step only', async () => {
    // Cancelled to one step of 2^-22: below the 3 / 1000 three honest clients give at least.
    await expectCohortRefused('negative-weight', /its summed weight is 2\.38\d*e-7 .* between 0\.003000 and 3\.000/);
  });

  it('masked values pushed half the modulus away (planted overflow): the cohort is refused, the model stays finite', async () => {
    await expectCohortRefused('overflow', /value \d+ of its sum is .* reach at most/);
  });

  it('weight inflation through the stock client half: FedAvg counts maxExampleWeight, so the step is exactly what the cap gives', async () => {
    const roles: Role[] = [...honest(5), { kind: 'scripted', value: -5, examples: 1e9 }];
    const { jobId, job, rounds, ids } = await run('inflation', roles, { rounds: 1, minClients: 3 }, { first: [5] });
    expect(job.status).toBe('completed');
    const [round] = rounds as [RoundRecord];
    expect(round.participants).toContain(ids[5]);
    const others = round.participants.length - 1;
    // The attacker counts maxExampleWeight (ratio 1), not 1e9: the step is (k x 100 x 0.01 - 1000 x 5) / (1000 + 100 k).
    expect(round.metrics.numExamples).toBe(MAX_EXAMPLE_WEIGHT + others * EXAMPLES);
    const capped =
      (others * EXAMPLES * HONEST_DELTA - MAX_EXAMPLE_WEIGHT * 5) / (MAX_EXAMPLE_WEIGHT + others * EXAMPLES);
    expect(await worstStepError(coordinator.store, jobId, 1, capped)).toBeLessThanOrEqual(1e-3);
  });

  it('FLT_MAX deltas claiming 1e9 through the stock half are clipped by the attacker itself; the median over cohort means commits the honest step and pays it nothing', async () => {
    const roles: Role[] = [...honest(8), { kind: 'scripted', value: FLOAT32_MAX, examples: 1e9 }];
    const { jobId, job, rounds, ids } = await run(
      'overflow-median',
      roles,
      { rounds: 2, minClients: 9, strategy: { name: 'fedavg', robust: { rule: 'median', f: 1 } } },
      { validation: true },
    );
    expect(job.status).toBe('completed');
    for (const r of rounds) {
      expect(r.status).toBe('completed');
      expect(r.participants).toHaveLength(9);
      expect(r.cohorts).toHaveLength(3);
      expect(await modelIsFinite(coordinator.store, jobId, r.round)).toBe(true);
      // The attacker's cohort mean is ~+6.7 (its clipped +8 at ratio 1 among two +0.01 at 0.1): outvoted.
      expect(await worstStepError(coordinator.store, jobId, r.round, HONEST_DELTA)).toBeLessThanOrEqual(STEP_TOLERANCE);
    }
    await coordinator.contributions.whenIdle(jobId);
    // Read as the job's owner (every client's scores are for its managers).
    const report = (await (
      await createSignedFetch(testBuyer)(`${coordinator.url}/v1/jobs/${jobId}/contributions`)
    ).json()) as ContributionReport;
    expect(report.status).toBe('scored');
    expect(report.clients.find((c) => c.clientId === ids[8])?.share ?? 0).toBe(0);
  });
});
