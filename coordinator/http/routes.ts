import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { decodeTensors } from '../../shared/codec/modelCodec';
import { TributaryError, toTributaryError } from '../../shared/errors';
import { JobIdSchema, PROTOCOL_VERSION } from '../../shared/schemas/messages';
import { contributionReport } from '../contribution/contributionReport';
import type { ChainService } from '../chain/chainService';
import type { JobManager } from '../jobs/jobManager';
import { requireJsonBody, wrap } from './asyncRoute';
import { ListingRegistry } from '../marketplace/listingRegistry';
import { mountListingRoutes } from '../marketplace/listingRoutes';
import type { Logger } from '../logger';
import type { JobRecord, Store } from '../store/store';
import type { ClientDirectory } from '../transport/clientDirectory';

export interface RestDeps {
  jobs: JobManager;
  store: Store;
  directory: ClientDirectory;
  logger: Logger;
  maxBodyBytes: number;
  /** Parses an uploaded validation set (CSV or JSON lines) into dataset codec bytes. */
  parseValidationSet(job: JobRecord, text: string, format: 'csv' | 'jsonl'): Uint8Array;
  /** TF.js `modelTopology` of a job's model, for the model.json download. */
  modelTopology(job: JobRecord): Promise<unknown>;
  /** How far a signed listing's time may be from the coordinator's clock (ms). @default 120000 */
  listingWindowMs?: number;
  /** Escrow integration, for the chain status and payout proofs of jobs with a `chain` config. */
  chain?: ChainService;
}

const RoundParamSchema = z.coerce.number().int().min(0);
const ListJobsQuerySchema = z.object({ status: z.enum(['pending', 'running', 'completed', 'failed']).optional() });

/** Public view of a job: no internal fields beyond what buyers and providers need. */
function jobView(job: JobRecord) {
  return {
    id: job.id,
    status: job.status,
    currentRound: job.currentRound,
    modelHash: job.modelHash,
    spec: job.spec,
    parameters: job.weightManifest.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0),
    failureReason: job.failureReason,
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
  };
}

/** REST API under /v1. Every error leaves as { error: { code, message } } with the catalog's status. */
export function createRestRouter(deps: RestDeps): Router {
  const r = express.Router();
  const json = express.json({ limit: 2 * 1024 * 1024 });
  const text = express.text({
    type: ['text/csv', 'text/plain', 'application/x-ndjson', 'application/jsonl'],
    limit: deps.maxBodyBytes,
  });

  const jobParam = (req: Request) => {
    const id = JobIdSchema.safeParse(req.params.jobId);
    if (!id.success) throw new TributaryError('JOB_NOT_FOUND', `"${String(req.params.jobId)}" is not a job id.`);
    return id.data;
  };

  r.get('/health', (_req, res) => {
    res.json({
      status: 'ok',
      protocolVersion: PROTOCOL_VERSION,
      store: deps.store.kind,
      connectedClients: deps.directory.connectedCount,
    });
  });

  r.post(
    '/jobs',
    json,
    wrap(async (req, res) => {
      requireJsonBody(req);
      const job = await deps.jobs.createJob(req.body);
      res.status(201).json(jobView(job));
    }),
  );

  r.get(
    '/jobs',
    wrap(async (req, res) => {
      const query = ListJobsQuerySchema.parse(req.query);
      res.json({ jobs: (await deps.store.listJobs(query)).map(jobView) });
    }),
  );

  r.get(
    '/jobs/:jobId',
    wrap(async (req, res) => {
      res.json(jobView(await deps.jobs.getJob(jobParam(req))));
    }),
  );

  r.get(
    '/jobs/:jobId/rounds',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      const rounds = await deps.store.listRounds(job.id);
      res.json({
        rounds: rounds.map((x) => ({
          ...x,
          startedAt: x.startedAt.toISOString(),
          finishedAt: x.finishedAt.toISOString(),
        })),
      });
    }),
  );

  r.get(
    '/jobs/:jobId/participants',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      const participants = await deps.store.listParticipants(job.id);
      res.json({
        participants: participants.map((p) => ({
          clientId: p.clientId,
          roundsCompleted: p.roundsCompleted,
          lastSeenAt: p.lastSeenAt.toISOString(),
          ...(p.payoutAddress ? { payoutAddress: p.payoutAddress } : {}),
        })),
      });
    }),
  );

  // The global model after a round in Tributary's codec (what clients download, hash-checked).
  r.get(
    '/jobs/:jobId/checkpoints/:round',
    wrap(async (req, res) => {
      const round = RoundParamSchema.parse(req.params.round);
      const bytes = await deps.jobs.modelBytes(jobParam(req), round);
      res.type('application/octet-stream').send(bytes);
    }),
  );

  // The current global model in TF.js Layers format: load with tf.loadLayersModel(`${url}/model.json`).
  r.get(
    '/jobs/:jobId/model/model.json',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      res.json({
        format: 'layers-model',
        generatedBy: 'tributary',
        convertedBy: null,
        modelTopology: await deps.modelTopology(job),
        weightsManifest: [
          {
            paths: ['weights.bin'],
            weights: job.weightManifest.map((t) => ({ name: t.name, shape: t.shape, dtype: 'float32' })),
          },
        ],
        tributary: { jobId: job.id, round: job.currentRound, modelHash: job.modelHash },
      });
    }),
  );

  r.get(
    '/jobs/:jobId/model/weights.bin',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      const tensors = decodeTensors(await deps.jobs.modelBytes(job.id, job.currentRound), { zeroCopy: true });
      res
        .type('application/octet-stream')
        .send(Buffer.concat(tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))));
    }),
  );

  // How each client's score was computed: per-round Shapley values (clients or cohorts), totals and payout shares.
  r.get(
    '/jobs/:jobId/contributions',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      res.json(await contributionReport(deps.store, job.id));
    }),
  );

  // One client's view: its total and share, and every scored round it took part in with its (cohort's) value.
  r.get(
    '/jobs/:jobId/contributions/:clientId',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      const clientId = String(req.params.clientId);
      const report = await contributionReport(deps.store, job.id);
      const client = report.clients.find((c) => c.clientId === clientId);
      if (!client) {
        throw new TributaryError(
          'CONTRIBUTION_CLIENT_UNKNOWN',
          `Job ${job.id} has no scored round with client "${clientId.slice(0, 64)}".`,
        );
      }
      const rounds = report.rounds.flatMap((r) =>
        r.values
          .filter((v) => v.members.includes(clientId))
          .map((v) => ({
            round: r.round,
            attempt: r.attempt,
            method: r.method,
            improvement: r.improvement,
            members: v.members,
            value: v.value,
          })),
      );
      res.json({ jobId: job.id, method: report.method, metric: report.metric, ...client, roundValues: rounds });
    }),
  );

  // A chain job's escrow as the coordinator sees it: funding, per-round commits, settlement, RPC errors.
  r.get(
    '/jobs/:jobId/chain',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      if (!job.spec.chain || !deps.chain) throw new TributaryError('NOT_FOUND', `Job ${job.id} has no chain config.`);
      res.json(deps.chain.status(job));
    }),
  );

  // Payouts of a settled chain job: all of them, or one address's amount and Merkle proof (for claim).
  r.get(
    '/jobs/:jobId/payouts',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      if (!deps.chain) throw new TributaryError('PAYOUT_NOT_FOUND', `Job ${job.id} has no chain config.`);
      res.json({ payouts: await deps.chain.payouts(job) });
    }),
  );

  r.get(
    '/jobs/:jobId/payouts/:address',
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      if (!deps.chain) throw new TributaryError('PAYOUT_NOT_FOUND', `Job ${job.id} has no chain config.`);
      res.json(await deps.chain.payout(job, String(req.params.address)));
    }),
  );

  r.put(
    '/jobs/:jobId/validation-set',
    text,
    wrap(async (req, res) => {
      const job = await deps.jobs.getJob(jobParam(req));
      if (typeof req.body !== 'string') {
        throw new TributaryError('VALIDATION_FAILED', 'Expected a text/csv or application/x-ndjson body.');
      }
      const format = req.is('text/csv') || req.is('text/plain') ? 'csv' : 'jsonl';
      const bytes = deps.parseValidationSet(job, req.body, format);
      await deps.store.saveValidationSet(job.id, bytes);
      const examples = decodeTensors(bytes, { zeroCopy: true })[0].shape[0];
      res.status(201).json({ jobId: job.id, examples });
    }),
  );

  // The data marketplace: signed dataset listings (coordinator/marketplace).
  mountListingRoutes(r, new ListingRegistry(deps.store, { windowMs: deps.listingWindowMs ?? 120_000 }));

  r.use((_req, _res) => {
    throw new TributaryError('NOT_FOUND', `No route ${_req.method} ${_req.originalUrl}.`);
  });

  r.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    // body-parser errors carry a status and a type; map them to catalog codes.
    const bodyError = err as { type?: string; status?: number; limit?: unknown };
    let e: TributaryError;
    if (bodyError?.type === 'entity.too.large') {
      // Each route's parser has its own limit (JSON bodies are smaller than uploads): report the one that applied.
      const limit = typeof bodyError.limit === 'number' ? bodyError.limit : deps.maxBodyBytes;
      e = new TributaryError('PAYLOAD_TOO_LARGE', `The body exceeds ${limit} bytes.`);
    } else if (bodyError?.type === 'entity.parse.failed')
      e = new TributaryError('VALIDATION_FAILED', 'The body is not valid JSON.');
    else e = toTributaryError(err);
    if (e.code === 'INTERNAL')
      deps.logger.error('REST handler failed', { message: String((err as Error)?.stack ?? err) });
    res.status(e.httpStatus).json({ error: e.toWire() });
  });
  return r;
}
