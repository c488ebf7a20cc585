import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  generateHeKeyHolderKeys,
  HeKeyHolder,
  type HeKeyHolderKeys,
  heKeyHolderSpecFields,
} from '../client/heKeyHolder';
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../client/keyHolder';
import { createBuyerClient, createJob, downloadModel, uploadValidationSet } from '../client/buyer';
import { datasetToCsv } from '../shared/data/csvWriter';
import { evaluateModel } from '../shared/ml/evaluate';
import { buildModel } from '../shared/ml/modelZoo';
import { setNamedWeights } from '../shared/ml/weights';
import { JobSpecSchema, type ChainSpec, type JobSpecInput } from '../shared/schemas/jobSpec';
import type { UnboundJobSpecInput } from '../contracts/escrowBinding';
import type { CoordinatorConfigInput } from '../coordinator/config';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { contributionReport } from '../coordinator/contribution/contributionReport';
import { separatesClients } from '../coordinator/contribution/settlementScores';
import { loadOrCreateIdentity } from '../client/keyFile';
import type { RoundCompletedEvent } from '../coordinator/ports';
import type { ExampleOptions, ExampleTask } from './exampleTask';
import { formatPartition } from './partitionOption';
import type { SoloAttack } from '../client/plantedBehaviour';

const REPO_ROOT = resolve(__dirname, '..');

/** One committed round as the demo reports it. */
export interface RoundSummary {
  round: number;
  participants: number;
  selected: number;
  validationAccuracy: number;
  validationLoss: number;
  trainLoss: number;
  seconds: number;
  /** Failed attempts of this round before it committed (dropouts, deadlines). */
  failedAttempts: number;
  /** Jobs with --dp-epsilon: the epsilon spent after this round. */
  epsilon?: number;
}

/** `--dp-epsilon`: client-level differential privacy for the demo's job (docs/privacy.md). */
export interface FederationPrivacy {
  epsilon: number;
  delta: number;
  noise: 'central' | 'distributed';
}

/** What a DP job spent, as `--json` reports it: epsilon is what the rounds actually run spent. */
export interface FederationPrivacyResult {
  epsilon: number;
  delta: number;
  noiseMultiplier: number;
  /** The last round's real sampling rate. */
  samplingRate: number;
  /** Rounds the accountant composed (every revealed attempt). */
  rounds: number;
  noise: 'central' | 'distributed';
  /** The budget (--dp-epsilon). */
  epsilonBudget: number;
  /** The last round's clipping norm and noised clipped fraction. */
  clippingNorm: number;
  clippedFraction: number;
}

/** The result of one example federation; the stable part is what `--json` prints. */
export interface FederationResult {
  example: string;
  clients: number;
  rounds: number;
  partition: string;
  seed: number;
  backend: string;
  secureAggregation: string;
  accuracyByRound: number[];
  finalAccuracy: number;
  roundSeconds: number[];
  status: string;
  jobId: string;
  modelHash: string;
  finalTestLoss: number;
  testExamples: number;
  wallSeconds: number;
  clientBackends: string[];
  roundDetails: RoundSummary[];
  /** Contribution scoring of the job (coordinator/contribution): every client's score and payout share, by client index. */
  contributors: FederationContributor[];
  /** Present with --attackers: how many clients were planted attackers, and which attack they played. */
  attackers?: number;
  attack?: SoloAttack;
  /** How the scores were computed, e.g. "shapley (loss)"; "skipped" if the job could not be scored. */
  contributionMethod: string;
  /** Why the job ended early or failed (e.g. PRIVACY_BUDGET_EXHAUSTED: ...), when it says. */
  reason?: string;
  /** Jobs with --dp-epsilon: the privacy spent. */
  privacy?: FederationPrivacyResult;
}

/** One client's contribution score as the demo reports it. */
export interface FederationContributor {
  id: string;
  index: number;
  score: number;
  share: number;
  /** Private modes: the least-squares estimate the score is the lower confidence bound of. */
  estimate?: number;
  /** Present on the clients planted with --free-rider. */
  freeRider?: true;
  /** Present on the clients planted with --attackers: the attack they played. */
  attacker?: SoloAttack;
}

export interface FederationOptions extends ExampleOptions {
  backend: string;
  /** Aggregation mode of the job. @default "secagg" */
  secureAggregation?: 'none' | 'secagg' | 'paillier' | 'he';
  /**
   * A paid job: `bind` funds the escrow job for the finished spec and returns its signed `chain`
   * field (before the job is created), and the coordinator's chain settings.
   */
  chain?: { bind(spec: UnboundJobSpecInput): Promise<ChainSpec>; coordinator: CoordinatorConfigInput };
  /** Runs after the job finished, before the coordinator stops (settlement and claims for paid jobs). */
  afterJob?: (coordinator: Coordinator, jobId: string, dataDir: string) => Promise<void>;
  /** Paillier modulus size for `paillier` (the demo's in-process key holder generates the key pair). @default 2048 */
  paillierKeyBits?: number;
  outDir: string;
  /** Called after each committed round (live progress). */
  onRound?: (round: RoundSummary) => void;
  onLog?: (line: string) => void;
  /** Plant this many free-riders (the last client indices send the global model back unchanged). @default 0 */
  freeRiders?: number;
  /** Train with client-level DP (adaptive clipping from the example's privacyClippingNorm). */
  privacy?: FederationPrivacy;
  /** Research: plant this many attackers playing `attack` (the indices just before the free-riders). @default 0 */
  attackers?: number;
  /** The planted attackers' attack (client/plantedBehaviour.ts SoloAttack). @default "sign-flip" */
  attack?: SoloAttack;
}

/**
 * Runs a complete local federation for an example: an in-process coordinator on 127.0.0.1 (port 0),
 * the buyer's job and validation set over REST, one OS process per client, and at the end the
 * buyer's evaluation of the downloaded model on the held-out test set. Cleans up every process it
 * started, by PID.
 */
export async function runFederation(task: ExampleTask, options: FederationOptions): Promise<FederationResult> {
  const started = Date.now();
  const dataDir = join(options.outDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  /** The planted free-riders are the last client indices. */
  const isFreeRider = (i: number) => i >= options.clients - (options.freeRiders ?? 0);
  /** The planted attackers are the indices just before the free-riders. */
  const attackers = options.attackers ?? 0;
  const attack: SoloAttack = options.attack ?? 'sign-flip';
  const isAttacker = (i: number) => !isFreeRider(i) && i >= options.clients - (options.freeRiders ?? 0) - attackers;
  const rounds: RoundSummary[] = [];
  let privacySpent: FederationPrivacyResult | undefined;
  let store: Awaited<ReturnType<typeof startCoordinator>>['store'] | null = null;
  const onRoundCompleted = async (e: RoundCompletedEvent) => {
    const attempts = store
      ? (await store.listRounds(e.job.id)).filter((r) => r.round === e.round.round && r.status === 'failed').length
      : 0;
    const m = e.round.metrics;
    const summary: RoundSummary = {
      round: e.round.round,
      participants: e.round.participants.length,
      selected: e.round.selected.length,
      validationAccuracy: m.validation_accuracy ?? NaN,
      validationLoss: m.validation_loss ?? NaN,
      trainLoss: m.train_loss ?? NaN,
      seconds: (m.durationMs ?? 0) / 1000,
      failedAttempts: attempts,
      ...(e.round.privacy ? { epsilon: e.round.privacy.epsilon } : {}),
    };
    const p = e.round.privacy;
    if (p) {
      privacySpent = {
        epsilon: p.epsilon,
        delta: p.delta,
        noiseMultiplier: p.noiseMultiplier,
        samplingRate: p.samplingRate,
        rounds: p.rounds,
        noise: p.noise,
        epsilonBudget: p.epsilonBudget,
        clippingNorm: p.clippingNorm,
        clippedFraction: p.clippedFraction,
      };
    }
    rounds.push(summary);
    options.onRound?.(summary);
  };
  // Payouts follow contribution scoring (the coordinator's default).
  const coordinator = await startCoordinator(
    { port: 0, logLevel: 'error', backend: options.backend as never, ...options.chain?.coordinator },
    {
      onRoundCompleted,
    },
  );
  store = coordinator.store;
  const children: ChildProcess[] = [];
  let keyHolder: KeyHolder | HeKeyHolder | null = null;
  try {
    const mode = options.secureAggregation ?? 'secagg';
    // paillier: the buyer is the key holder; it generates the key pair and puts the public key in the spec.
    const keys = mode === 'paillier' ? await generateKeyHolderKeys(options.paillierKeyBits ?? 2048) : undefined;
    // he: likewise, with a lattice key pair (the default parameter set).
    const heKeys = mode === 'he' ? await generateHeKeyHolderKeys() : undefined;
    const unbound = withAttackers(
      withPrivacy(
        withAggregation(task.jobSpec(options), mode, task.clientData(options, 0).count, keys, heKeys),
        task,
        options.privacy,
      ),
      attackers,
    );
    // A paid job: the buyer funds the escrow job for exactly this spec and signs the binding.
    const spec = options.chain ? { ...unbound, chain: await options.chain.bind(unbound) } : unbound;
    // The buyer signs every request with its own key (created on first run beside the clients' keys),
    // so it owns the job: only it can upload the validation set and read private results.
    const buyer = createBuyerClient({
      url: coordinator.url,
      identity: loadOrCreateIdentity(join(dataDir, 'buyer.key')),
    });
    const job = await createJob(buyer, { spec });
    await uploadValidationSet(buyer, {
      jobId: job.id,
      data: datasetToCsv(task.validationSet(options.seed), task.input),
    });
    options.onLog?.(`coordinator ${coordinator.url} (evaluation backend ${coordinator.backend}), job ${job.id}`);
    if (keys) {
      const holder = new KeyHolder({ url: coordinator.url, jobId: job.id, keys });
      keyHolder = holder;
      const joined = new Promise<void>((resolve, reject) => {
        holder.once('joined', () => resolve());
        holder.run().catch(reject);
      });
      await joined;
      holder.on('refused', (m: string) => options.onLog?.(`key holder refused: ${m}`));
      options.onLog?.(
        `key holder ${keys.identity.clientId.slice(0, 16)}… joined (${keys.privateKey.publicKey.bitLength}-bit Paillier key)`,
      );
    }
    if (heKeys) {
      const holder = new HeKeyHolder({ url: coordinator.url, jobId: job.id, keys: heKeys });
      keyHolder = holder;
      await new Promise<void>((resolve, reject) => {
        holder.once('joined', () => resolve());
        holder.run().catch(reject);
      });
      holder.on('refused', (m: string) => options.onLog?.(`key holder refused: ${m}`));
      options.onLog?.(`key holder ${heKeys.identity.clientId.slice(0, 16)}… joined (${heKeys.parameterSet} key)`);
    }

    const clientBackends: string[] = [];
    const log = createWriteStream(join(options.outDir, 'clients.log'));
    for (let i = 0; i < options.clients; i++) {
      const child = spawn(
        process.execPath,
        [
          '-r',
          'tsx/cjs',
          join(REPO_ROOT, task.clientEntry),
          '--coordinator',
          coordinator.url,
          '--job',
          job.id,
          '--index',
          String(i),
          '--clients',
          String(options.clients),
          '--partition',
          formatPartition(options.partition),
          '--seed',
          String(options.seed),
          '--data-dir',
          dataDir,
          '--backend',
          options.backend,
          ...(isFreeRider(i) ? ['--planted', 'free-rider'] : []),
          ...(isAttacker(i) ? ['--attack', attack] : []),
          // The demo's operator chose `none`, so its providers consent to plaintext.
          ...(mode === 'none' ? ['--allow-plaintext'] : []),
        ],
        { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(child);
      let buffered = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        log.write(chunk);
        buffered += chunk.toString('utf8');
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          try {
            const event = JSON.parse(line) as { event: string; backend?: string };
            if (event.event === 'backend' && event.backend) clientBackends.push(event.backend);
          } catch {
            // not a JSON line: kept in the log only
          }
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => log.write(chunk));
    }

    // A paid job starts recruiting once the coordinator has seen the escrow funded.
    for (
      const until = Date.now() + 120_000;
      (await coordinator.jobs.getJob(job.id)).status === 'pending';
      await new Promise((r) => setTimeout(r, 50))
    ) {
      if (Date.now() > until)
        throw new Error(
          `the coordinator did not see the escrow funded within 120 s: ${JSON.stringify(coordinator.chain.status(await coordinator.jobs.getJob(job.id)).lastRpcError)}`,
        );
    }
    // If every client process dies, say so now instead of waiting out the job's quorum timeouts.
    const jobDone = coordinator.jobs.waitForJob(job.id);
    const clientsGone = Promise.all(
      children.map((c) => new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r())))),
    );
    let finished = await Promise.race([jobDone, clientsGone.then(() => null)]);
    finished ??= await Promise.race([jobDone, new Promise<null>((r) => setTimeout(() => r(null), 3_000))]);
    if (!finished)
      throw new Error(
        `every client process exited before the job finished; see ${join(options.outDir, 'clients.log')}`,
      );
    const last = finished.currentRound;
    // The buyer's view: download the final global model and test it on data no one trained on.
    const { tensors } = await downloadModel(buyer, { jobId: job.id, round: last });
    const parsedSpec = JobSpecSchema.parse(spec);
    const model = await buildModel(parsedSpec.model, parsedSpec.input, parsedSpec.seed);
    setNamedWeights(model, tensors);
    const test = await evaluateModel(model, task.testSet(options.seed));
    model.dispose();
    await Promise.all(children.map((c) => waitForExit(c, 30_000)));
    log.end();
    await coordinator.contributions.whenIdle(job.id);
    const report = await contributionReport(coordinator.store, job.id);
    const byId = new Map(report.clients.map((c) => [c.clientId, c]));
    const contributors: FederationContributor[] = [];
    for (let i = 0; i < options.clients; i++) {
      const id = loadOrCreateIdentity(join(dataDir, `client-${i}.key`)).clientId;
      const c = byId.get(id);
      contributors.push({
        id,
        index: i,
        score: c?.score ?? 0,
        share: c?.share ?? 0,
        ...(c?.estimate !== undefined ? { estimate: c.estimate } : {}),
        ...(isFreeRider(i) ? { freeRider: true as const } : {}),
        ...(isAttacker(i) ? { attacker: attack } : {}),
      });
    }
    await options.afterJob?.(coordinator, job.id, dataDir);

    return {
      example: task.name,
      clients: options.clients,
      rounds: options.rounds,
      partition: formatPartition(options.partition),
      seed: options.seed,
      backend: clientBackends[0] ?? coordinator.backend,
      secureAggregation: parsedSpec.secureAggregation,
      accuracyByRound: rounds.map((r) => r.validationAccuracy),
      finalAccuracy: test.accuracy,
      roundSeconds: rounds.map((r) => r.seconds),
      status: finished.status,
      jobId: job.id,
      modelHash: finished.modelHash,
      finalTestLoss: test.loss,
      testExamples: test.numExamples,
      wallSeconds: (Date.now() - started) / 1000,
      clientBackends,
      roundDetails: rounds,
      contributors,
      ...(finished.failureReason ? { reason: finished.failureReason } : {}),
      ...(privacySpent ? { privacy: privacySpent } : {}),
      ...(attackers > 0 ? { attackers, attack } : {}),
      contributionMethod:
        report.status === 'skipped'
          ? 'skipped'
          : !separatesClients(report)
            ? `participation (${report.metric}; the coordinator saw only each round's total: use 6+ clients for SecAgg+ cohorts, or --secure-aggregation none)`
            : `${report.method} (${report.metric})`,
    };
  } finally {
    keyHolder?.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await coordinator.close();
  }
}

/**
 * The job spec with the chosen aggregation mode. For secagg and paillier, a client's weight saturates at
 * maxExampleWeight examples: set it from the largest client's share (client 0's, partitions are
 * near-equal for iid; doubled for skewed splits) so small clients keep quantisation resolution.
 */
function withAggregation(
  spec: JobSpecInput,
  mode: 'none' | 'secagg' | 'paillier' | 'he',
  clientExamples: number,
  keys?: KeyHolderKeys,
  heKeys?: HeKeyHolderKeys,
): JobSpecInput {
  if (mode === 'none') return { ...spec, secureAggregation: 'none' };
  if (mode === 'he') {
    if (!heKeys) throw new Error("he needs the key holder's keys");
    return {
      ...spec,
      secureAggregation: 'he',
      he: { ...heKeyHolderSpecFields(heKeys), maxExampleWeight: Math.max(1, 2 * clientExamples) },
    };
  }
  if (mode === 'paillier') {
    if (!keys) throw new Error("paillier needs the key holder's keys");
    return {
      ...spec,
      secureAggregation: 'paillier',
      paillier: { ...keyHolderSpecFields(keys), maxExampleWeight: Math.max(1, 2 * clientExamples) },
    };
  }
  // Cohorts of 3 from 6 clients on: contribution scoring then tells clients apart without seeing an update.
  const cohorts = (spec.minClients ?? 0) >= 6 ? { cohortSize: 3 } : {};
  return {
    ...spec,
    secureAggregation: 'secagg',
    secagg: { ...spec.secagg, maxExampleWeight: Math.max(1, 2 * clientExamples), ...cohorts },
  };
}

/**
 * The job spec with a `privacy` block for --dp-epsilon: the budget and delta given, adaptive clipping
 * (Andrew et al. 2021) from the example's typical update norm, the noise multiplier derived from the
 * budget and the planned rounds by the coordinator (assertPrivacyUsable).
 */
function withPrivacy(spec: JobSpecInput, task: ExampleTask, privacy: FederationPrivacy | undefined): JobSpecInput {
  if (!privacy) return spec;
  return {
    ...spec,
    privacy: {
      epsilon: privacy.epsilon,
      delta: privacy.delta,
      noise: privacy.noise,
      adaptiveClipping: { initialNorm: task.privacyClippingNorm },
    },
  };
}

/**
 * With planted attackers a round must be able to commit without them: a SecAgg+ cohort whose sum is
 * refused takes its cohortSize members out of the round, and an attacker the server step names sits
 * out the retry. So the quorum leaves room for that (at least 3 under secagg, 2 otherwise).
 */
function withAttackers(spec: JobSpecInput, attackers: number): JobSpecInput {
  if (attackers === 0) return spec;
  const secagg = spec.secureAggregation === 'secagg';
  const cohortSize = secagg ? ((spec.secagg as { cohortSize?: number } | undefined)?.cohortSize ?? 0) : 0;
  const spare = cohortSize > 0 ? cohortSize * attackers : attackers;
  return { ...spec, minClients: Math.max(secagg ? 3 : 2, (spec.minClients ?? 2) - spare) };
}

function waitForExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
