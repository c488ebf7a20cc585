import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { audienceOf, defaultAudiences } from '../shared/identity/audience';
import type { CoordinatorModeOverrides } from './aggregation/registry';
import { ChainService } from './chain/chainService';
import type { ScoresFor } from './chain/participationScores';
import { ContributionScorer } from './contribution/contributionScorer';
import { settlementScores } from './contribution/settlementScores';
import { parseCoordinatorConfig, type CoordinatorConfig, type CoordinatorConfigInput } from './config';
import { TensorflowModels } from './evaluation/tensorflowModels';
import { createRestApi, docsRouter, type RestApi } from './http/routes';
import { createRestAccess } from './http/restAccess';
import type { RateLimitStore } from './http/rateLimits';
import { Metrics } from './observability/metrics';
import { AuditLog } from './observability/auditLog';
import { type ClusterRedis, connectClusterRedis } from './cluster/clusterRedis';
import { JobLeases } from './cluster/jobLeases';
import { JobManager } from './jobs/jobManager';
import { createLogger, type Logger } from './logger';
import { payoutAdmission } from './chain/payoutAdmission';
import { assertInvitedListingsFit, assertMayJoin } from './marketplace/jobAccess';
import type { RoundCompletedEvent } from './ports';
import { createStore } from './store/createStore';
import type { Store } from './store/store';
import { loadOrCreateTranscriptKey } from './transcript/coordinatorIdentity';
import { RoundTranscripts } from './transcript/roundTranscripts';
import { ClientDirectory } from './transport/clientDirectory';
import { SocketServer } from './transport/socketServer';
import { generateIdentity } from '../shared/identity/keyPair';

export interface StartOptions {
  /** Use this store instead of the one the config selects (the caller then owns closing it). */
  store?: Store;
  logger?: Logger;
  /** Called after each committed round (contracts and contribution scoring plug in here). */
  onRoundCompleted?: (event: RoundCompletedEvent) => void | Promise<void>;
  /**
   * Contributor scores for chain payouts at job end. @default contribution scores where the job was
   * scored, else participation (rounds completed per client); see contribution/settlementScores.ts
   */
  scoresFor?: ScoresFor;
  /** Where REST rate-limit counters live, per limiter. @default in process; share one (e.g. Redis) across processes. */
  rateLimitStore?: (limiter: 'ip' | 'identity') => RateLimitStore;
  /**
   * Aggregation-mode factories that replace the registered ones of the same name, for this
   * coordinator only: a test seam (a deliberately malicious coordinator half, or one that records
   * what it reveals, behind the real transport and round runner). Production never sets it.
   * @default none: the registry's factories (coordinator/aggregation/registry.ts)
   */
  modes?: CoordinatorModeOverrides;
}

/** A running coordinator. */
export interface Coordinator {
  readonly config: CoordinatorConfig;
  /** Base URL, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly port: number;
  readonly store: Store;
  readonly jobs: JobManager;
  readonly directory: ClientDirectory;
  /** Which TF.js backend evaluates global models. */
  readonly backend: string;
  /** The socket.io server (for observability: tests record every byte it receives). */
  readonly io: SocketServer['io'];
  /** Contribution scoring of every job with a validation set (`whenIdle(jobId)` waits for its queued rounds). */
  readonly contributions: ContributionScorer;
  /** Escrow integration: funding watch, per-round commits, settlement, payout proofs (jobs with a `chain` config). */
  readonly chain: ChainService;
  /** Prometheus metrics (GET /metrics); the runner, socket edge and chain worker report here. */
  readonly metrics: Metrics;
  /** The audit trail of state-changing actions (GET /v1/jobs/:id/audit). */
  readonly audit: AuditLog;
  /** The REST API: its /v1 router and OpenAPI document. */
  readonly rest: RestApi;
  /** Signed round and scoring transcripts (`publicKey`: the coordinator's Ed25519 transcript key). */
  readonly transcripts: RoundTranscripts;
  /** This node's job leases when it runs as one node of a cluster (config.cluster). */
  readonly cluster?: JobLeases;
  close(): Promise<void>;
}

/** Starts the coordinator: store, TF.js backend, REST under /v1, socket.io, and resumes running jobs. */
export async function startCoordinator(
  input: CoordinatorConfigInput = {},
  options: StartOptions = {},
): Promise<Coordinator> {
  const config = parseCoordinatorConfig(input);
  const logger = options.logger ?? createLogger(config.logLevel);
  const ownsStore = !options.store;
  const store = options.store ?? (await createStore({ mongodbUri: config.mongodbUri, dbName: config.dbName }));
  // A cluster with Redis: the socket.io adapter and the shared handshake nonces (docs/cluster.md).
  let redis: ClusterRedis | undefined;
  try {
    redis = config.redisUrl ? await connectClusterRedis(config.redisUrl, logger) : undefined;
  } catch (err) {
    if (ownsStore) await store.close();
    throw err;
  }
  const models = await TensorflowModels.create(config.backend, store);
  const directory = new ClientDirectory();
  const metrics = new Metrics();
  metrics.connectedClients(() => directory.connectedCount);
  const transcriptKey = config.transcriptKeyFile
    ? loadOrCreateTranscriptKey(config.transcriptKeyFile)
    : generateIdentity();
  if (!config.transcriptKeyFile) {
    logger.info('transcripts are signed with a key made for this run (set --transcript-key to keep it)', {
      transcriptKey: transcriptKey.clientId,
    });
  }
  const transcripts = new RoundTranscripts(store, transcriptKey);
  const contributions = new ContributionScorer({
    store,
    logger,
    validationSets: models.validationSets,
    onScoringTime: (seconds) => metrics.scoring(seconds),
    onScored: async (scored) => {
      await transcripts.sealScoring(scored);
    },
  });
  // The public URL is known once listening (port 0 picks one); leases hand it to clients (JOB_ELSEWHERE).
  let publicUrl = config.publicUrl ?? '';
  const cluster = config.cluster
    ? new JobLeases(store, logger, () => publicUrl, {
        leaseTtlMs: config.leaseTtlMs,
        ...(config.nodeId ? { nodeId: config.nodeId } : {}),
      })
    : undefined;
  const jobs = new JobManager({
    store,
    directory,
    logger,
    chunkBytes: config.chunkBytes,
    evaluator: models,
    models,
    limits: {
      maxModelParameters: config.maxModelParameters,
      maxScoringEvaluationsPerRound: config.maxScoringEvaluationsPerRound,
    },
    onRoundPhase: (state, seconds) => metrics.roundPhase(state.toLowerCase(), seconds),
    sealer: transcripts,
    modes: options.modes,
    ...(cluster ? { cluster } : {}),
  });
  const audit = new AuditLog(store);
  const chain = new ChainService({
    config,
    store,
    logger,
    jobs,
    onSettlementPosted: (e) =>
      audit.record({
        action: 'job.settlement.posted',
        actor: 'operator',
        jobId: e.jobId,
        digests: { root: e.root.replace(/^0x/, '').toLowerCase() },
        details: { totalWei: e.totalWei, scoreLabel: e.scoreLabel, txHash: e.txHash },
      }),
    scoresFor: options.scoresFor ?? settlementScores(store, contributions),
    onTransaction: (kind, seconds, outcome) => metrics.chainTransaction(kind, seconds, outcome),
    // Clustered: each paid job's chain worker runs under its own lease, on whichever node holds it.
    ...(cluster
      ? {
          leases: new JobLeases(
            store,
            logger,
            () => publicUrl,
            { leaseTtlMs: config.leaseTtlMs, nodeId: cluster.nodeId },
            Date.now,
            'chain',
          ),
        }
      : {}),
  });
  // What other parts add to jobs, in order: creation rules, admission rules, observers.
  jobs.checkCreation((spec) => chain.assertUsable(spec));
  jobs.checkCreation((spec) => assertInvitedListingsFit(spec, store));
  jobs.admit(async ({ job, clientId }) => {
    await assertMayJoin(job.id, job.spec, clientId, store);
    return undefined;
  });
  jobs.admit(payoutAdmission);
  // The chain only wakes its worker: commits never hold up the next round. Scoring only enqueues.
  jobs.observe(chain.observer);
  jobs.observe(contributions.observer);
  // A job's evaluation model and cached validation set are freed when it ends.
  jobs.observe({ jobEnded: (job) => models.release(job.id) });
  if (options.onRoundCompleted) jobs.observe({ roundCommitted: options.onRoundCompleted });

  const app = express();
  app.disable('x-powered-by');
  // REST access control and observability (coordinator/auth, coordinator/http, coordinator/observability).
  const access = createRestAccess({
    config,
    store,
    audience: () => publicUrl,
    audit,
    ...(redis ? { sharedNonces: redis } : {}),
  });
  const rest = createRestApi({
    jobs,
    store,
    ...(cluster ? { cluster } : {}),
    ...(chain.leases ? { chainLeases: chain.leases } : {}),
    directory,
    logger,
    metrics,
    ...access,
    modelTopology: (job) => models.topology(job.spec),
    transcriptKey: transcripts.publicKey,
    listingWindowMs: config.authWindowMs,
    maxListingsPerProvider: config.maxListingsPerProvider,
    chain,
    limits: {
      maxJsonBytes: config.maxJsonBytes,
      maxValidationSetBytes: config.maxRestBodyBytes,
      maxActiveJobsPerIdentity: config.maxActiveJobsPerIdentity,
      maxConcurrentUploads: config.maxConcurrentUploads,
    },
    largeBodies: { thresholdBytes: 64 * 1024, perIdentity: 1, perIp: 2, total: config.maxConcurrentLargeBodies },
    rateLimits: {
      perIp: config.rateLimitPerIp,
      perIdentity: config.rateLimitPerIdentity,
      windowMs: config.rateLimitWindowMs,
      ...(options.rateLimitStore ? { store: options.rateLimitStore } : {}),
    },
  });
  app.use('/v1', rest.router);
  app.use('/docs', docsRouter());
  app.get('/metrics', async (req, res) => {
    if (config.metricsToken && req.headers.authorization !== `Bearer ${config.metricsToken}`) {
      res
        .status(401)
        .json({ error: { code: 'AUTH_REQUIRED', message: 'GET /metrics needs the metrics bearer token.' } });
      return;
    }
    const { contentType, body } = await metrics.exposition();
    res.type(contentType).send(body);
  });
  // Resume before listening, so a client that reconnects at once finds its job's runner. A cluster
  // node takes leases only once listening: a lease names the URL clients are sent to.
  if (!cluster) await jobs.resumeRunningJobs();
  // Chain jobs pick up from the chain and the store: funding watches, missing commits, settlement.
  // Clustered, once listening: a chain worker may activate a job, and its job lease names this URL.
  if (!cluster) await chain.resume();
  const httpServer = createServer(app);
  // The origins handshakes may name: known once listening (port 0 picks one), plus configured public URLs.
  let audiences: ReadonlySet<string> = new Set(
    [...config.publicUrls, ...(config.publicUrl ? [config.publicUrl] : [])].map(audienceOf),
  );
  const sockets = new SocketServer(httpServer, directory, jobs, {
    ...(redis ? { cluster: redis } : {}),
    authWindowMs: config.authWindowMs,
    logger,
    audiences: () => audiences,
    onMessage: (event, outcome, bytes) => {
      metrics.message(event, outcome);
      metrics.bytes('socket', 'in', bytes);
    },
    connectionsPerIpPerMinute: config.socketConnectionsPerIpPerMinute,
    connectionsPerKeyPerMinute: config.socketConnectionsPerKeyPerMinute,
    onRateLimited: (limiter) => metrics.rateLimitHit(limiter),
  });
  if (redis) sockets.io.adapter(redis.adapter);
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.port, config.host, () => resolve());
  });
  const port = (httpServer.address() as AddressInfo).port;
  audiences = new Set([...audiences, ...defaultAudiences(config.host, port)]);
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  publicUrl ||= url;
  if (cluster) {
    await jobs.joinCluster();
    await chain.resume();
  }
  logger.info('coordinator listening', {
    url,
    store: store.kind,
    backend: models.backend,
    ...(cluster ? { node: cluster.nodeId } : {}),
  });

  let closing: Promise<void> | null = null;
  return {
    config,
    url,
    port,
    store,
    jobs,
    directory,
    backend: models.backend,
    io: sockets.io,
    contributions,
    chain,
    metrics,
    audit: access.audit,
    rest,
    transcripts,
    ...(cluster ? { cluster } : {}),
    close() {
      closing ??= (async () => {
        // The chain first: a worker must not activate a job while the runners stop.
        await chain.stop();
        await jobs.stop();
        await contributions.close();
        await sockets.close();
        await redis?.close();
        await rest.close();
        await access.parser.close();
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => httpServer.close(() => resolve()));
        if (ownsStore) await store.close();
        models.dispose();
      })();
      return closing;
    },
  };
}
