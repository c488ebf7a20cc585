import { privacyPlanOf } from '../../shared/aggregation/privateUpdate';
import { totalParameters } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import { clippedFraction, nextClippingNorm } from '../../shared/privacy/adaptiveClipping';
import { addGaussianNoise, noisedCount } from '../../shared/privacy/gaussianNoise';
import { cryptoRandom, type RandomStream } from '../../shared/privacy/randomSource';
import { RdpAccountant } from '../../shared/privacy/rdpAccountant';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { PrivacyPlan } from '../../shared/schemas/privacySpec';
import type { CoordinatorAggregationMode, Revealed, RoundPrivacyContext } from '../aggregation/aggregationMode';
import type { JobPrivacyState, JobRecord, RoundPrivacyRecord } from '../store/store';

/**
 * Job-creation check of a `privacy` block against the rest of the job (JOB_SPEC_INVALID, nothing
 * stored): the mode must be able to add the noise where the block says (`privacyNoise`), and no robust
 * rule may run, since robust rules need each client's or cohort's update and under DP only the noised
 * sum may leave the aggregation. The block itself is checked by assertPrivacyUsable (privacyPlanOf).
 */
export function assertPrivacyHonoured(
  spec: JobSpec,
  mode: Pick<CoordinatorAggregationMode, 'name' | 'privacyNoise'>,
): void {
  const privacy = spec.privacy;
  if (!privacy) return;
  const supported = mode.privacyNoise ?? [];
  if (!supported.includes(privacy.noise)) {
    const can =
      supported.length > 0
        ? `it can add ${supported.map((n) => `"${n}"`).join(' or ')} noise`
        : 'it cannot honour a privacy block';
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `privacy.noise: aggregation mode "${mode.name}" cannot add "${privacy.noise}" noise; ${can}.`,
      { details: { path: 'privacy.noise', mode: mode.name, supported } },
    );
  }
  if (spec.strategy.robust !== undefined) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `strategy.robust (${spec.strategy.robust.rule}) needs each client's or each cohort's update, but a job with a privacy block releases only the noised sum; drop one of the two.`,
      { details: { path: 'strategy.robust' } },
    );
  }
}

/** A new DP job's state: nothing spent, C at the spec's fixed or initial norm. */
export function initialPrivacyState(plan: PrivacyPlan): JobPrivacyState {
  const clippingNorm = plan.clipping.mode === 'fixed' ? plan.clipping.norm : plan.clipping.initialNorm;
  return { accountant: new RdpAccountant().toState(), clippingNorm };
}

/** What `privatise` hands on: the sums that may leave the coordinator, and the round record's privacy block. */
export interface Privatised {
  revealed: Revealed;
  record: RoundPrivacyRecord;
}

/**
 * A DP job's privacy at the coordinator: client-level DP-FedAvg (McMahan, Ramage, Talwar & Zhang, ICLR
 * 2018) with the clipped-count of Andrew et al. (NeurIPS 2021) and a Rényi-DP accountant of the sampled
 * Gaussian mechanism (Mironov 2017; docs/privacy.md). One per running job, owned by its round runner,
 * which never names a mode. Per round attempt:
 *
 * 1. `exhaustedAt(q)`, once the clients are selected: the PRIVACY_BUDGET_EXHAUSTED error when one more
 *    round at the real sampling rate q would spend more than the budget (the runner completes the job
 *    with it as the reason), else null.
 * 2. `roundContext()`: the plan and the round's C, for the task (`config.clippingNorm`) and the mode.
 * 3. `privatise(revealed, q)`, right after the mode revealed the sums and before anything looks at them:
 *    with `central` noise the coordinator adds N(0, (z_Delta C)^2) to every coordinate of the sum and
 *    N(0, sigma_b^2) to the unclipped count, here and only here; with `distributed` noise the clients
 *    added it and the mode decoded the noised sum. The parts are dropped (only the noised sum may
 *    leave), the accountant is stepped with (q, z), and C moves under adaptive clipping.
 * 4. `state()`: what the runner persists at once, before the round goes on.
 *
 * Every revealed attempt is charged, committed or not: whatever follows (a refused strategy step, a
 * retry) depends on the noised sum. Persisting before the commit over-counts a round a crash interrupts
 * (it is charged again when it reruns) rather than ever under-counting. Noise comes from node:crypto's
 * CSPRNG; tests may pass a seeded stream.
 */
export class JobPrivacy {
  private readonly accountant: RdpAccountant;
  private norm: number;

  constructor(
    readonly plan: PrivacyPlan,
    state: JobPrivacyState,
    private readonly random: RandomStream = cryptoRandom(),
  ) {
    this.accountant = RdpAccountant.fromState(state.accountant);
    if (!(state.clippingNorm > 0 && Number.isFinite(state.clippingNorm))) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `the stored clipping norm must be a positive finite number, got ${state.clippingNorm}`,
      );
    }
    this.norm = state.clippingNorm;
  }

  /** The job's privacy (undefined without a privacy block), from its stored state; INTERNAL if a DP job lost its state. */
  static of(job: JobRecord, random?: RandomStream): JobPrivacy | undefined {
    const plan = privacyPlanOf(job.spec, totalParameters(job.weightManifest));
    if (!plan) return undefined;
    if (!job.privacy) {
      throw new TributaryError('INTERNAL', `Job ${job.id} has a privacy block but no stored privacy state.`);
    }
    return new JobPrivacy(plan, job.privacy, random);
  }

  /** C of the next round. */
  get clippingNorm(): number {
    return this.norm;
  }

  /** The epsilon spent so far at the plan's delta. */
  get epsilonSpent(): number {
    return this.accountant.rounds === 0 ? 0 : this.accountant.epsilon(this.plan.delta);
  }

  /** PRIVACY_BUDGET_EXHAUSTED when one more round at sampling rate q would exceed the budget; null when it fits. */
  exhaustedAt(samplingRate: number): TributaryError | null {
    const { epsilon, delta, noiseMultiplier } = this.plan;
    if (this.accountant.roundsWithin(epsilon, delta, samplingRate, noiseMultiplier) >= 1) return null;
    const spent = this.epsilonSpent;
    return new TributaryError(
      'PRIVACY_BUDGET_EXHAUSTED',
      `the job has spent epsilon ${spent.toPrecision(4)} of its budget ${epsilon} (delta ${delta.toPrecision(3)}) in ${this.accountant.rounds} round(s); one more at sampling rate ${samplingRate.toPrecision(3)} and noise multiplier ${noiseMultiplier.toPrecision(4)} would exceed it`,
      { details: { epsilonSpent: spent, epsilon, delta, rounds: this.accountant.rounds, samplingRate } },
    );
  }

  /** What the round's task and collection get. */
  roundContext(): RoundPrivacyContext {
    return { plan: this.plan, clippingNorm: this.norm };
  }

  /** Noises (central) or checks (distributed) a revealed sum, charges the round, moves C; see the class comment. */
  privatise(revealed: Revealed, samplingRate: number): Privatised {
    const { plan } = this;
    const reported = revealed.privacy;
    if (!reported) {
      throw new TributaryError('INTERNAL', 'The aggregation mode revealed no unclipped count for a DP round.');
    }
    if (reported.noised !== (plan.noise === 'distributed')) {
      throw new TributaryError(
        'INTERNAL',
        `The job adds ${plan.noise} noise, but the mode revealed a sum ${reported.noised ? 'with' : 'without'} noise.`,
      );
    }
    const clippingNorm = this.norm;
    const contributors = revealed.sum.clientCount;
    let unclipped = reported.unclippedCount;
    if (plan.noise === 'central') {
      const stddev = plan.updateNoiseMultiplier * clippingNorm;
      for (const tensor of revealed.sum.weightedDeltaSum) addGaussianNoise(tensor, stddev, this.random);
      unclipped = noisedCount(unclipped, plan.clippedCountNoise, this.random);
    }
    this.accountant.step(samplingRate, plan.noiseMultiplier);
    if (plan.clipping.mode === 'adaptive') {
      this.norm = nextClippingNorm(clippingNorm, unclipped, contributors, plan.clipping);
    }
    const { parts: _parts, partKind: _kind, privacy: _privacy, ...noised } = revealed;
    return {
      revealed: noised,
      record: {
        noise: plan.noise,
        epsilon: this.accountant.epsilon(plan.delta),
        delta: plan.delta,
        epsilonBudget: plan.epsilon,
        noiseMultiplier: plan.noiseMultiplier,
        samplingRate,
        clippingNorm,
        clippedFraction: clippedFraction(unclipped, contributors),
        rounds: this.accountant.rounds,
      },
    };
  }

  /** The state to persist with the job. */
  state(): JobPrivacyState {
    return { accountant: this.accountant.toState(), clippingNorm: this.norm };
  }
}
