import { TributaryError } from '../../shared/errors';
import { parameterCount } from '../../shared/ml/parameterCount';
import { contributionOptionsOf, LIMITS, type JobSpec } from '../../shared/schemas/jobSpec';

/** Operator caps on what one job may ask for, checked from the spec before anything is built. */
export interface JobLimits {
  /** Most parameters a job's model may have. @default LIMITS.maxParameters */
  maxModelParameters: number;
  /**
   * Most model evaluations contribution scoring may spend on one round: 2^exactUpTo for exact Shapley,
   * maxEvaluations for GTG-Shapley. @default 2048
   */
  maxScoringEvaluationsPerRound: number;
}

export const DEFAULT_JOB_LIMITS: JobLimits = {
  maxModelParameters: LIMITS.maxParameters,
  maxScoringEvaluationsPerRound: 2048,
};

/**
 * MODEL_TOO_LARGE when the spec's model has more parameters than allowed, JOB_SPEC_INVALID when its
 * scoring would cost more evaluations per round than the operator allows (or the model's size cannot
 * be computed). Pure arithmetic on the spec: runs before any weight is allocated. Returns the count.
 */
export function assertJobWithinLimits(spec: JobSpec, limits: JobLimits = DEFAULT_JOB_LIMITS): number {
  const parameters = parameterCount(spec.model, spec.input);
  if (parameters > limits.maxModelParameters) {
    throw new TributaryError(
      'MODEL_TOO_LARGE',
      `The model would have ${parameters} parameters; this coordinator accepts at most ${limits.maxModelParameters}. Use a smaller model.`,
      { details: { parameters, maxParameters: limits.maxModelParameters } },
    );
  }
  if (spec.contribution) {
    const scoring = contributionOptionsOf(spec);
    const evaluations = Math.max(2 ** scoring.exactUpTo, scoring.maxEvaluations);
    if (evaluations > limits.maxScoringEvaluationsPerRound) {
      throw new TributaryError(
        'JOB_SPEC_INVALID',
        `Invalid job spec: contribution: scoring could take ${evaluations} model evaluations per round (2^exactUpTo = ${2 ** scoring.exactUpTo}, maxEvaluations = ${scoring.maxEvaluations}); this coordinator allows at most ${limits.maxScoringEvaluationsPerRound}.`,
        { details: { evaluations, maxEvaluations: limits.maxScoringEvaluationsPerRound } },
      );
    }
  }
  return parameters;
}
