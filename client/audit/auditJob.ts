import { createHash } from 'node:crypto';
import { canonicalSpecHash, type HashedSpec } from '../../contracts/escrowBinding';
import { metricOf } from '../../coordinator/chain/chainJobWorker';
import { encodeDataset } from '../../coordinator/evaluation/tensorflowModels';
import {
  type RoundTranscript,
  RoundTranscriptSchema,
  ScoringTranscriptSchema,
  type SignedTranscriptView,
} from '../../coordinator/transcript/transcriptSchema';
import {
  ownRealmJson,
  transcriptHash,
  verifyTranscriptSignature,
} from '../../coordinator/transcript/transcriptSigning';
import { contentHash } from '../../shared/codec/modelCodec';
import type { Dataset } from '../../shared/data/dataset';
import { parseDatasetText } from '../../shared/data/loadDataset';
import { TributaryError } from '../../shared/errors';
import { type JobSpec, JobSpecSchema } from '../../shared/schemas/jobSpec';
import type { AuditDivergence, AuditedRound, AuditReport } from './auditReport';
import { type CoordinatorRecord, readCoordinator } from './coordinatorRecord';
import { type EscrowRecord, readEscrow } from './escrowRecord';
import { CheckpointEvaluator } from './modelEvaluator';
import { checkScoring } from './scoringCheck';
import { checkSettlement, type SettledRound } from './settlementCheck';
import { differs, type ModelScore } from './tolerance';

export interface AuditJobParameters {
  /** Coordinator base URL, e.g. http://127.0.0.1:8080. */
  coordinator: string;
  /** The coordinator's job id (`job_...`). */
  jobId: string;
  /** JSON-RPC URL of the escrow's chain; required when the job is paid (has a `chain` config). */
  rpcUrl?: string;
  /** The buyer's own validation set: the text of the file it uploaded, and its format. */
  validationSet: { text: string; format: 'csv' | 'jsonl' };
  /**
   * The coordinator's transcript key (hex), pinned: every transcript must be signed by it.
   * @default for a paid job, the keys named in transcripts whose hashes the chain committed; otherwise the key the coordinator serves
   */
  coordinatorKey?: string;
  /** How far a reported metric may be from the audit's own evaluation (absolute, plus as much relative). @default 1e-4 */
  tolerance?: number;
}

export type AuditJobReturnType = AuditReport;

/**
 * Coded errors `auditJob` throws when it cannot audit (a divergence is never an error):
 * AUDIT_SOURCE_UNAVAILABLE, JOB_NOT_FOUND, CHAIN_UNAVAILABLE, CONFIG_INVALID (a paid job without
 * `rpcUrl`, a malformed pinned key), VALIDATION_SET_INVALID, JOB_SPEC_INVALID (a served spec that does
 * not parse), BACKEND_UNAVAILABLE.
 */
export type AuditJobErrorType = TributaryError;

/**
 * Audits a job as its buyer: reads every signed transcript and checkpoint from the coordinator and the
 * escrow's record from the chain, then checks, round by round and in this order, that each round
 * transcript is well formed, signed by the coordinator's key and the one the chain committed, names
 * this job and spec, continues the previous round's model, matches the model hash and metric on chain
 * and the served checkpoint, and was evaluated on the buyer's validation set with the metrics the
 * buyer's own evaluation gives; that each scoring transcript is of that round, scores exactly its
 * contributors, and that its Shapley values follow from its signed utilities (rerun with the
 * coordinator's own code), whose baseline and grand-coalition value match the buyer's evaluation of the
 * models. Finally it recomputes the contribution scores, the payout split and its Merkle root by the
 * coordinator's rules and compares them with what was posted. Every divergence is reported, in that
 * order; the first is the earliest point where the record stops holding together.
 *
 * It cannot check what it has no evidence of: what clients trained on, the utilities of coalitions
 * smaller than a whole round (they need per-client or per-cohort sums nobody publishes), or the
 * aggregate digest (the sum is never published). See docs/audit.md.
 *
 * @example
 * const report = await auditJob({ coordinator: 'http://127.0.0.1:8080', jobId, rpcUrl,
 *   validationSet: { text: readFileSync('validation.csv', 'utf8'), format: 'csv' } });
 * if (!report.clean) console.log(report.firstDivergence);
 */
export async function auditJob(params: AuditJobParameters): Promise<AuditJobReturnType> {
  const tolerance = params.tolerance ?? 1e-4;
  if (params.coordinatorKey !== undefined && !/^[0-9a-f]{64}$/.test(params.coordinatorKey)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `The pinned coordinator key must be 64 lowercase hex digits (an Ed25519 public key); got ${params.coordinatorKey.length} characters.`,
    );
  }
  const source = await readCoordinator(params.coordinator, params.jobId);
  const parsedSpec = JobSpecSchema.safeParse(source.job.spec);
  if (!parsedSpec.success) {
    const issue = parsedSpec.error.issues[0];
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `The coordinator serves a spec for ${params.jobId} that does not parse (${issue?.path.join('.')}: ${issue?.message}).`,
    );
  }
  const spec = parsedSpec.data;
  const dataset = parseValidationSet(params.validationSet, spec);
  let escrow: EscrowRecord | null = null;
  if (spec.chain) {
    if (!params.rpcUrl) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `Job ${params.jobId} is paid from escrow ${spec.chain.escrow} on chain ${spec.chain.chainId}: an audit needs its RPC URL (--rpc-url).`,
      );
    }
    escrow = await readEscrow(params.rpcUrl, spec.chain.chainId, spec.chain.escrow, BigInt(spec.chain.jobId));
  }
  const evaluator = await CheckpointEvaluator.create(spec, dataset);
  try {
    return await new JobAudit(params, tolerance, source, spec, dataset, escrow, evaluator).run();
  } finally {
    evaluator.dispose();
  }
}

function parseValidationSet(input: AuditJobParameters['validationSet'], spec: JobSpec): Dataset {
  try {
    return parseDatasetText(input.text, input.format, spec.input);
  } catch (err) {
    if (err instanceof TributaryError)
      throw new TributaryError('VALIDATION_SET_INVALID', `Your validation set: ${err.message}`, { cause: err });
    throw err;
  }
}

/** One audit run: the sources it read and what it has found so far. */
class JobAudit {
  private readonly divergences: AuditDivergence[] = [];
  private readonly notes: string[] = [];
  private readonly rounds: AuditedRound[] = [];
  private readonly settled: SettledRound[] = [];
  /** Keys named in round transcripts the chain committed: the coordinator's, vouched for by its chain key. */
  private readonly anchoredKeys = new Set<string>();
  private readonly signingKeys = new Set<string>();
  private readonly specHash: string;
  private readonly validationDigest: string;

  constructor(
    private readonly params: AuditJobParameters,
    private readonly tolerance: number,
    private readonly source: CoordinatorRecord,
    private readonly spec: JobSpec,
    dataset: Dataset,
    private readonly escrow: EscrowRecord | null,
    private readonly evaluator: CheckpointEvaluator,
  ) {
    // Of the spec as served (the coordinator hashes the spec it stored, never a re-parse).
    this.specHash = canonicalSpecHash(ownRealmJson(source.job.spec) as HashedSpec).toLowerCase();
    this.validationDigest = createHash('sha256').update(encodeDataset(dataset)).digest('hex');
  }

  async run(): Promise<AuditReport> {
    const { escrow, source } = this;
    if (escrow && this.specHash !== escrow.state.specHash.toLowerCase()) {
      this.diverge({
        check: 'spec-hash',
        claimed: `spec hash ${this.specHash} (the spec the coordinator serves)`,
        found: `spec hash ${escrow.state.specHash.toLowerCase()} (escrow job ${escrow.jobId})`,
        message: 'The coordinator runs another spec than the one the escrow pays for.',
      });
    }
    const committed = escrow ? escrow.rounds.length : source.job.currentRound;
    if (escrow && source.job.currentRound < committed) {
      this.diverge({
        check: 'rounds-on-chain',
        claimed: `${committed} rounds committed on chain`,
        found: `${source.job.currentRound} rounds served by the coordinator`,
        message: 'The chain holds rounds the coordinator does not serve.',
      });
    } else if (escrow && source.job.currentRound > committed) {
      this.notes.push(
        `rounds ${committed + 1}-${source.job.currentRound} are not committed on chain yet: only rounds 1-${committed} are audited`,
      );
    }
    const byRound = new Map<number, { round?: SignedTranscriptView; scoring?: SignedTranscriptView }>();
    for (const view of source.transcripts) {
      const entry = byRound.get(view.round) ?? {};
      entry[view.kind] = view;
      byRound.set(view.round, entry);
    }

    const initial = await source.checkpoint(0);
    let previousHash: string | null = initial ? contentHash(initial) : null;
    let before: ModelScore | null = initial ? await this.evaluate(initial, 0) : null;
    for (let round = 1; round <= committed; round++) {
      const views = byRound.get(round) ?? {};
      const checked = await this.checkRound(round, views.round, previousHash);
      const transcript = checked?.transcript ?? null;
      const checkpoint = await source.checkpoint(round);
      const checkpointHash = checkpoint ? contentHash(checkpoint) : null;
      let after: ModelScore | null = null;
      let scoring: SettledRound['scoring'] = null;
      if (checked) {
        after = await this.checkModel(round, checked.transcript, checkpoint, checkpointHash);
        scoring = await this.checkScoringOf(round, checked.transcript, checked.hash, views.scoring, before, after);
        this.settled.push({ transcript: checked.transcript, scoring });
      }
      this.rounds.push({
        round,
        transcriptHash: views.round ? transcriptHash(views.round.transcript) : null,
        modelHash: checkpointHash,
        accuracy: after?.accuracy ?? null,
        loss: after?.loss ?? null,
        scored: scoring !== null,
      });
      // The next round must start from the model committed for this one.
      previousHash =
        transcript?.modelHash ?? (escrow ? escrow.rounds[round - 1].modelHash.slice(2).toLowerCase() : null);
      before = after;
    }

    let settlement: AuditReport['settlement'] = null;
    if (escrow) {
      const s = escrow.state;
      const result = checkSettlement({
        jobId: this.params.jobId,
        spec: this.spec,
        rounds: this.settled,
        poolWei: s.budget,
        posted: escrow.posted,
        current:
          s.claimsOpenAt > 0n || s.disputed
            ? {
                root: s.payoutRoot.toLowerCase(),
                totalWei: s.payoutTotal.toString(),
                disputed: s.disputed,
                haircut: s.haircut,
              }
            : null,
      });
      settlement = result.settlement;
      for (const d of result.divergences) this.diverge(d);
      if (!escrow.posted)
        this.notes.push('the escrow is not settled yet: nothing posted to compare with the recomputed root');
      if (this.settled.length < committed)
        this.notes.push(
          `${committed - this.settled.length} committed round(s) failed their checks and are left out of the recomputed settlement`,
        );
    } else {
      this.notes.push(
        'the job has no escrow: transcripts are checked against the key the coordinator serves, and nothing is paid',
      );
    }

    return {
      jobId: this.params.jobId,
      coordinator: this.params.coordinator,
      escrow: escrow
        ? {
            address: escrow.address,
            chainId: escrow.chainId,
            jobId: escrow.jobId.toString(),
            status: escrow.state.status,
          }
        : null,
      clean: this.divergences.length === 0,
      firstDivergence: this.divergences[0] ?? null,
      divergences: this.divergences,
      notes: this.notes,
      keys: { signing: [...this.signingKeys], served: source.transcriptKey },
      rounds: this.rounds,
      settlement,
    };
  }

  private diverge(d: AuditDivergence): void {
    this.divergences.push(d);
  }

  /** Whether `key` may sign a transcript of this job: the pinned key, else any (paid: the chain vouches) or the served one. */
  private keyRule(key: string, kind: 'round' | 'scoring'): string | null {
    const pinned = this.params.coordinatorKey;
    if (pinned) return key === pinned ? null : `the pinned key ${pinned}`;
    if (!this.escrow)
      return key === this.source.transcriptKey ? null : `the key the coordinator serves, ${this.source.transcriptKey}`;
    if (kind === 'round' || this.anchoredKeys.has(key)) return null;
    return `a key named in a committed round transcript (${[...this.anchoredKeys].join(', ') || 'none'})`;
  }

  /** The round transcript's own checks; the parsed transcript when it holds together, else null. */
  private async checkRound(
    round: number,
    view: SignedTranscriptView | undefined,
    previousHash: string | null,
  ): Promise<{ transcript: RoundTranscript; hash: string } | null> {
    const onChain = this.escrow?.rounds[round - 1];
    const committedHash = onChain ? onChain.transcriptHash.slice(2).toLowerCase() : null;
    if (!view) {
      this.diverge({
        check: 'transcript-missing',
        round,
        claimed: committedHash ? `transcript ${committedHash} committed on chain` : `round ${round} committed`,
        found: 'no transcript served',
        message: `The coordinator serves no signed transcript of round ${round}.`,
      });
      return null;
    }
    const parsed = RoundTranscriptSchema.safeParse(view.transcript);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.diverge({
        check: 'transcript-malformed',
        round,
        claimed: `a ${String(view.transcript.type)} transcript`,
        found: `${issue?.path.join('.')}: ${issue?.message}`,
        message: `Round ${round}'s transcript is not a well-formed round transcript.`,
      });
      return null;
    }
    const t = parsed.data;
    const hash = transcriptHash(view.transcript);
    if (!verifyTranscriptSignature(view.transcript, t.coordinatorKey, view.signature)) {
      this.diverge({
        check: 'transcript-signature',
        round,
        claimed: `signed by ${t.coordinatorKey}`,
        found: 'the signature does not verify over the transcript as served',
        message: `Round ${round}'s transcript was altered after it was signed (or signed by another key).`,
      });
      return null;
    }
    const keyProblem = this.keyRule(t.coordinatorKey, 'round');
    if (keyProblem) {
      this.diverge({
        check: 'transcript-key',
        round,
        claimed: `signed by ${t.coordinatorKey}`,
        found: `expected ${keyProblem}`,
        message: `Round ${round}'s transcript is signed by a key that is not the coordinator's.`,
      });
      return null;
    }
    if (committedHash !== null && hash !== committedHash) {
      this.diverge({
        check: 'transcript-hash',
        round,
        claimed: `transcript ${committedHash} (committed on chain)`,
        found: `transcript ${hash} (served, signed)`,
        message: `Round ${round}'s transcript is not the one committed on chain: it was rewritten after the commit.`,
      });
      return null;
    }
    this.signingKeys.add(t.coordinatorKey);
    if (committedHash !== null) this.anchoredKeys.add(t.coordinatorKey);
    if (t.jobId !== this.params.jobId || t.round !== round || t.specHash !== this.specHash) {
      this.diverge({
        check: 'transcript-fields',
        round,
        claimed: `job ${t.jobId}, round ${t.round}, spec ${t.specHash}`,
        found: `job ${this.params.jobId}, round ${round}, spec ${this.specHash}`,
        message: `Round ${round}'s transcript is of another job, round or spec.`,
      });
      return null;
    }
    if (previousHash !== null && t.previousModelHash !== previousHash) {
      this.diverge({
        check: 'model-chain',
        round,
        claimed: `started from model ${t.previousModelHash}`,
        found: `round ${round - 1} committed model ${previousHash}`,
        message: `Round ${round} did not start from the previous round's committed model.`,
      });
    }
    if (onChain) {
      if (`0x${t.modelHash}` !== onChain.modelHash.toLowerCase()) {
        this.diverge({
          check: 'model-on-chain',
          round,
          claimed: `model ${onChain.modelHash.toLowerCase()} (on chain)`,
          found: `model 0x${t.modelHash} (transcript)`,
          message: `Round ${round}'s committed model hash is not its transcript's.`,
        });
      }
      const metric = metricOf(Object.fromEntries(Object.entries(t.metrics).map(([k, v]) => [k, v ?? Number.NaN])));
      if (BigInt(metric) !== onChain.metric) {
        this.diverge({
          check: 'metric-on-chain',
          round,
          claimed: `metric ${onChain.metric} (on chain)`,
          found: `metric ${metric} (the transcript's validation accuracy in basis points)`,
          message: `Round ${round}'s metric on chain is not its transcript's.`,
        });
      }
    }
    return { transcript: t, hash };
  }

  /** The served checkpoint against the transcript, and the buyer's own evaluation of it against the transcript's metrics. */
  private async checkModel(
    round: number,
    t: RoundTranscript,
    checkpoint: Uint8Array | null,
    checkpointHash: string | null,
  ): Promise<ModelScore | null> {
    if (!checkpoint || checkpointHash !== t.modelHash) {
      this.diverge({
        check: 'checkpoint',
        round,
        claimed: `model ${t.modelHash} (transcript)`,
        found: checkpoint ? `checkpoint bytes hashing to ${checkpointHash}` : 'no checkpoint served',
        message: `The coordinator does not serve round ${round}'s committed model.`,
      });
      return null;
    }
    const score = await this.evaluate(checkpoint, round);
    if (t.validationSet === null) {
      this.notes.push(`round ${round} was committed without a validation set: its metrics say nothing to check`);
      return score;
    }
    if (t.validationSet !== this.validationDigest) {
      this.diverge({
        check: 'validation-set',
        round,
        claimed: `evaluated on validation set ${t.validationSet}`,
        found: `your validation set is ${this.validationDigest}`,
        message: `Round ${round} was evaluated on another validation set than yours.`,
      });
      return score;
    }
    if (!score) return null;
    const reported = { accuracy: t.metrics.validation_accuracy, loss: t.metrics.validation_loss };
    for (const name of ['accuracy', 'loss'] as const) {
      const value = reported[name];
      if (typeof value !== 'number' || differs(value, score[name], this.tolerance)) {
        this.diverge({
          check: 'validation-metric',
          round,
          claimed: `validation ${name} ${value ?? 'absent'}`,
          found: `${score[name]} (your evaluation of the committed model)`,
          message: `Round ${round}'s reported validation ${name} is not what the committed model scores on your validation set.`,
        });
        break;
      }
    }
    return score;
  }

  /** The round's scoring transcript, when it verifies; its recomputed values are what the settlement uses. */
  private async checkScoringOf(
    round: number,
    t: RoundTranscript,
    roundHash: string,
    view: SignedTranscriptView | undefined,
    before: ModelScore | null,
    after: ModelScore | null,
  ): Promise<SettledRound['scoring']> {
    if (!view) {
      if (t.validationSet !== null)
        this.notes.push(`round ${round} has no scoring transcript: the settlement counts it as unscored`);
      return null;
    }
    const parsed = ScoringTranscriptSchema.safeParse(view.transcript);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.diverge({
        check: 'scoring-malformed',
        round,
        claimed: `a ${String(view.transcript.type)} transcript`,
        found: `${issue?.path.join('.')}: ${issue?.message}`,
        message: `Round ${round}'s scoring transcript is not a well-formed scoring transcript.`,
      });
      return null;
    }
    const s = parsed.data;
    if (!verifyTranscriptSignature(view.transcript, s.coordinatorKey, view.signature)) {
      this.diverge({
        check: 'scoring-signature',
        round,
        claimed: `signed by ${s.coordinatorKey}`,
        found: 'the signature does not verify over the transcript as served',
        message: `Round ${round}'s scoring transcript was altered after it was signed.`,
      });
      return null;
    }
    const keyProblem = this.keyRule(s.coordinatorKey, 'scoring');
    if (keyProblem) {
      this.diverge({
        check: 'scoring-key',
        round,
        claimed: `signed by ${s.coordinatorKey}`,
        found: `expected ${keyProblem}`,
        message: `Round ${round}'s scoring transcript is signed by a key that is not the coordinator's.`,
      });
      return null;
    }
    this.signingKeys.add(s.coordinatorKey);
    const validationMatches = t.validationSet === this.validationDigest;
    const result = await checkScoring({
      spec: this.spec,
      round: t,
      roundHash,
      scoring: s,
      before: validationMatches ? before : null,
      after: validationMatches ? after : null,
      tolerance: this.tolerance,
    });
    for (const d of result.divergences) this.diverge(d);
    this.notes.push(...result.notes);
    return result.values ? { transcript: s, values: result.values } : null;
  }

  private async evaluate(checkpoint: Uint8Array, round: number): Promise<ModelScore | null> {
    try {
      return await this.evaluator.evaluate(checkpoint);
    } catch (err) {
      this.notes.push(
        `checkpoint ${round} could not be evaluated (${err instanceof TributaryError ? err.code : 'error'}: ${(err as Error).message.slice(0, 200)})`,
      );
      return null;
    }
  }
}
