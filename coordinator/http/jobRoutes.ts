import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { decodeTensors } from '../../shared/codec/modelCodec';
import { TributaryError } from '../../shared/errors';
import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import { JobIdSchema } from '../../shared/schemas/messages';
import { assertManager, assertOwner, assertReader } from '../auth/jobPermissions';
import { type Principal, requirePrincipal, requireScope } from '../auth/principal';
import type { ChainService } from '../chain/chainService';
import { contributionReport } from '../contribution/contributionReport';
import type { JobManager } from '../jobs/jobManager';
import type { Logger } from '../logger';
import { assertInvitedListingsFit } from '../marketplace/jobAccess';
import { type AuditLog, canonicalJson, sha256Hex } from '../observability/auditLog';
import { isManagedBy, visibilityOf } from '../store/records';
import type { JobRecord, ParticipantRecord, RoundRecord, Store } from '../store/store';
import { type ApiDocument, mountRoute, queryOf } from './apiRoute';
import {
  AccessBodySchema,
  AddressParamsSchema,
  AuditListSchema,
  CancelBodySchema,
  ChainStatusSchema,
  ClientContributionSchema,
  ClientParamsSchema,
  ContributionReportSchema,
  DelegatesBodySchema,
  JobListSchema,
  JobParamsSchema,
  JobViewSchema,
  ListJobsQuerySchema,
  ModelJsonSchema,
  PageQuerySchema,
  ParticipantListSchema,
  PayoutListSchema,
  PayoutSchema,
  RoundListSchema,
  RoundParamsSchema,
  ValidationSetUploadedSchema,
} from '../../shared/schemas/restApi';
import { jsonBody, optionalJsonBody, rawBody } from './body';
import { offsetPage, pageOf, readTimeCursor, timeCursor } from './pagination';
import type { ValidationSetParser } from './validationSetParser';

/** What the job routes need. */
export interface JobRoutesDeps {
  jobs: JobManager;
  store: Store;
  logger: Logger;
  audit: AuditLog;
  parser: ValidationSetParser;
  /** TF.js `modelTopology` of a job's model, for the model.json download. */
  modelTopology(job: JobRecord): Promise<unknown>;
  chain?: ChainService;
  /** Admits a large body before it is read (bodyGate.ts); runs after each route's authorisation. */
  gate: RequestHandler;
  limits: {
    /** Largest JSON body (job specs), bytes. */
    maxJsonBytes: number;
    /** Largest validation-set upload, bytes. */
    maxValidationSetBytes: number;
    /** Pending or running jobs one identity may own. */
    maxActiveJobsPerIdentity: number;
    /** Validation-set uploads parsed or queued at once, all jobs together. */
    maxConcurrentUploads: number;
  };
}

const UPLOAD_TYPES = ['text/csv', 'text/plain', 'application/x-ndjson', 'application/jsonl'];

const parametersOf = (job: JobRecord) => job.weightManifest.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);

/** A job in a list. */
export function jobSummary(job: JobRecord) {
  return {
    id: job.id,
    name: job.spec.name,
    status: job.status,
    visibility: visibilityOf(job),
    currentRound: job.currentRound,
    rounds: job.spec.rounds,
    parameters: parametersOf(job),
    secureAggregation: job.spec.secureAggregation,
    owner: job.owner ?? null,
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
  };
}

/** One job, whole; its delegates only for its managers. */
export function jobView(job: JobRecord, principal: Principal | null | undefined) {
  return {
    ...jobSummary(job),
    modelHash: job.modelHash,
    spec: job.spec,
    ...(job.failureReason !== undefined ? { failureReason: job.failureReason } : {}),
    ...(principal && isManagedBy(job, principal.id) ? { delegates: job.delegates ?? [] } : {}),
  };
}

function roundView(r: RoundRecord) {
  return { ...r, startedAt: r.startedAt.toISOString(), finishedAt: r.finishedAt.toISOString() };
}

function roundSummary(r: RoundRecord) {
  return {
    round: r.round,
    attempt: r.attempt,
    status: r.status,
    selectedCount: r.selected.length,
    participantCount: r.participants.length,
    metrics: r.metrics,
    ...(r.modelHash !== undefined ? { modelHash: r.modelHash } : {}),
    ...(r.failureReason !== undefined ? { failureReason: r.failureReason } : {}),
    startedAt: r.startedAt.toISOString(),
    finishedAt: r.finishedAt.toISOString(),
  };
}

/** Mounts the /jobs routes on the /v1 router. Every check that can refuse runs before anything is read or written. */
export function mountJobRoutes(r: Router, doc: ApiDocument, deps: JobRoutesDeps): void {
  const { jobs, store, audit, limits } = deps;
  const tag = 'jobs';

  /** The job named in the path; JOB_NOT_FOUND for an unknown or malformed id. */
  const jobOf = async (req: Request): Promise<JobRecord> => {
    const id = JobIdSchema.safeParse(req.params.jobId);
    if (!id.success)
      throw new TributaryError('JOB_NOT_FOUND', `"${String(req.params.jobId).slice(0, 64)}" is not a job id.`);
    return jobs.getJob(id.data);
  };
  /** Loads the job into res.locals.job after checking the caller may read it. */
  const readable = (what: string) => async (req: Request, res: Response, next: NextFunction) => {
    const job = await jobOf(req);
    await assertReader(job, req.principal, store, what);
    res.locals.job = job;
    next();
  };
  const jobIn = (res: Response) => res.locals.job as JobRecord;
  /** QUOTA_EXCEEDED once `owner` has its quota of pending or running jobs. */
  const assertJobQuota = async (owner: string) => {
    const active = await store.countJobs({ owner, statuses: ['pending', 'running'] });
    if (active >= limits.maxActiveJobsPerIdentity) {
      throw new TributaryError(
        'QUOTA_EXCEEDED',
        `This identity owns ${active} pending or running jobs; at most ${limits.maxActiveJobsPerIdentity} are allowed. Cancel or finish one first.`,
        { details: { resource: 'jobs', limit: limits.maxActiveJobsPerIdentity } },
      );
    }
  };
  const writeAudit = (entry: Parameters<AuditLog['record']>[0]) =>
    audit
      .record(entry)
      .catch((err) => deps.logger.error('audit write failed', { action: entry.action, message: String(err) }));

  mountRoute(
    r,
    doc,
    {
      method: 'post',
      path: '/jobs',
      tag,
      auth: 'required',
      summary: 'Create a job',
      description: `The caller becomes the job's owner. Quota: ${limits.maxActiveJobsPerIdentity} pending or running jobs per identity. The model's size is computed from the spec and refused (413 MODEL_TOO_LARGE) before any weight exists.`,
      body: { contentType: 'application/json', schema: JobSpecSchema },
      responses: { 201: { description: 'The job as created.', schema: JobViewSchema } },
    },
    async (req, _res, next) => {
      const principal = requirePrincipal(req.principal, 'Creating a job');
      requireScope(principal, 'jobs:write');
      // Refused before the body is read (and jobs created before claim slots existed count here).
      await assertJobQuota(principal.id);
      next();
    },
    ...jsonBody(limits.maxJsonBytes, deps.gate),
    async (req, res) => {
      const principal = req.principal!;
      // The quota and the escrow binding are claimed in the store with the job (jobClaims.ts): a burst
      // of creations, at one node or several, cannot all pass them.
      const job = await jobs.createJob(req.body, {
        owner: principal.id,
        maxActiveJobs: limits.maxActiveJobsPerIdentity,
      });
      await writeAudit({
        action: 'job.created',
        actor: principal,
        jobId: job.id,
        digests: { spec: sha256Hex(canonicalJson(job.spec)), model: job.modelHash },
        details: { visibility: visibilityOf(job) },
      });
      res.status(201).json(jobView(job, principal));
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs',
      tag,
      auth: 'optional',
      summary: 'List jobs, newest first',
      description:
        'Public jobs, and the private jobs the caller owns or is a delegate of. Paged; view=summary by default.',
      query: ListJobsQuerySchema,
      responses: { 200: { description: 'One page of jobs.', schema: JobListSchema } },
    },
    async (req, res) => {
      const query = queryOf(ListJobsQuerySchema, req);
      const { view, limit } = pageOf(query, 'summary');
      const principal = req.principal;
      const mayListPrivate = principal && (principal.scopes === 'all' || principal.scopes.includes('jobs:read'));
      if (query.mine === 'true') requirePrincipal(principal, 'mine=true');
      const after = query.cursor !== undefined ? readTimeCursor(query.cursor) : undefined;
      const found = await store.listJobsPage({
        ...(query.status ? { status: query.status } : {}),
        visibleTo: mayListPrivate ? principal.id : null,
        ...(query.mine === 'true' ? { managedBy: principal!.id } : {}),
        ...(after ? { after: { createdAt: after.at, id: after.id } } : {}),
        limit: limit + 1,
      });
      const page = found.slice(0, limit);
      const last = page[page.length - 1];
      res.json({
        jobs: page.map((j) => (view === 'full' ? jobView(j, principal) : jobSummary(j))),
        nextCursor: found.length > limit && last ? timeCursor(last.createdAt, last.id) : null,
      });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId',
      tag,
      auth: 'optional',
      summary: 'One job',
      description:
        "Anyone with a job's id reads its status and spec (providers need the spec to join); a private job is unlisted, and its model, checkpoints, rounds and participants answer only its owner, delegates and participants. Delegates are shown to managers only.",
      params: JobParamsSchema,
      responses: { 200: { description: 'The job.', schema: JobViewSchema } },
    },
    async (req, res) => {
      res.json(jobView(await jobOf(req), req.principal));
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'post',
      path: '/jobs/:jobId/cancel',
      tag,
      auth: 'required',
      summary: 'Cancel a pending or running job (owner or delegate)',
      params: JobParamsSchema,
      body: { contentType: 'application/json', schema: CancelBodySchema },
      responses: { 200: { description: 'The job, now failed with the reason given.', schema: JobViewSchema } },
    },
    async (req, res, next) => {
      res.locals.principal = assertManager(await jobOf(req), req.principal, 'jobs:write', 'Cancelling a job');
      next();
    },
    // The body is optional: a bare POST cancels with the default reason.
    optionalJsonBody(limits.maxJsonBytes, deps.gate),
    async (req, res) => {
      const { reason, signature } = CancelBodySchema.parse(req.body);
      const principal = res.locals.principal as Principal;
      const jobId = String(req.params.jobId);
      const job = await jobOf(req);
      // A paid job's budget is the escrow buyer's: only its EIP-712 signature cancels it (chain side).
      if (job.spec.chain && (!deps.chain || !signature)) {
        throw new TributaryError(
          'ESCROW_BINDING_INVALID',
          `Job ${jobId} is paid from an escrow: cancelling it needs the escrow buyer's CancelJob signature (body.signature).`,
        );
      }
      const cancelled =
        job.spec.chain && deps.chain && signature
          ? await deps.chain.cancelJob(job, signature)
          : await jobs.cancelJob(jobId, `Cancelled by ${principal.id}${reason ? `: ${reason}` : '.'}`);
      await writeAudit({
        action: 'job.cancelled',
        actor: principal,
        jobId,
        digests: {},
        details: reason ? { reason } : {},
      });
      res.json(jobView(cancelled, principal));
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'put',
      path: '/jobs/:jobId/access',
      tag,
      auth: 'required',
      summary: "Change who may join as a provider (the job's invitations; owner or delegate)",
      params: JobParamsSchema,
      body: { contentType: 'application/json', schema: AccessBodySchema },
      responses: { 200: { description: 'The job with its new access policy.', schema: JobViewSchema } },
    },
    async (req, res, next) => {
      res.locals.principal = assertManager(await jobOf(req), req.principal, 'jobs:write', 'Changing invitations');
      next();
    },
    ...jsonBody(limits.maxJsonBytes, deps.gate),
    async (req, res) => {
      const { access } = AccessBodySchema.parse(req.body);
      const job = await jobOf(req);
      if (job.status !== 'pending' && job.status !== 'running') {
        throw new TributaryError(
          'JOB_NOT_RUNNING',
          `Job ${job.id} is ${job.status}; its invitations can no longer change.`,
        );
      }
      await assertInvitedListingsFit({ ...job.spec, access }, store);
      const updated = await store.updateJob(job.id, { access });
      await writeAudit({
        action: 'job.access.changed',
        actor: res.locals.principal as Principal,
        jobId: job.id,
        digests: {
          access: sha256Hex(canonicalJson(access)),
          previous: sha256Hex(canonicalJson(job.spec.access ?? null)),
        },
        details: { mode: access.mode },
      });
      res.json(jobView(updated, req.principal));
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'put',
      path: '/jobs/:jobId/delegates',
      tag,
      auth: 'required',
      summary: 'Set the identities that may manage the job (owner only)',
      params: JobParamsSchema,
      body: { contentType: 'application/json', schema: DelegatesBodySchema },
      responses: { 200: { description: 'The job with its delegates.', schema: JobViewSchema } },
    },
    async (req, res, next) => {
      res.locals.principal = assertOwner(await jobOf(req), req.principal, 'Setting delegates', 'jobs:write');
      next();
    },
    ...jsonBody(limits.maxJsonBytes, deps.gate),
    async (req, res) => {
      const { delegates } = DelegatesBodySchema.parse(req.body);
      const job = await jobOf(req);
      const updated = await store.updateJob(job.id, { delegates });
      await writeAudit({
        action: 'job.delegates.changed',
        actor: res.locals.principal as Principal,
        jobId: job.id,
        digests: { delegates: sha256Hex(canonicalJson(delegates)) },
        details: { count: delegates.length },
      });
      res.json(jobView(updated, req.principal));
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/audit',
      tag,
      auth: 'required',
      summary: "The job's audit trail, oldest first (owner only)",
      params: JobParamsSchema,
      query: PageQuerySchema,
      responses: { 200: { description: 'One page of audit entries.', schema: AuditListSchema } },
    },
    async (req, res) => {
      assertOwner(await jobOf(req), req.principal, 'Reading the audit trail', 'jobs:read');
      const query = queryOf(PageQuerySchema, req);
      const { view, limit } = pageOf(query, 'full');
      const after = query.cursor !== undefined ? readTimeCursor(query.cursor) : undefined;
      const found = await store.listAudit({
        jobId: String(req.params.jobId),
        ...(after ? { after } : {}),
        limit: limit + 1,
      });
      const page = found.slice(0, limit);
      const last = page[page.length - 1];
      res.json({
        entries: page.map((e) =>
          view === 'full'
            ? { ...e, at: e.at.toISOString() }
            : {
                id: e.id,
                action: e.action,
                actor: e.actor,
                at: e.at.toISOString(),
                ...(e.jobId ? { jobId: e.jobId } : {}),
              },
        ),
        nextCursor: found.length > limit && last ? timeCursor(last.at, last.id) : null,
      });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/rounds',
      tag,
      auth: 'optional',
      summary: 'Round attempts, in order',
      params: JobParamsSchema,
      query: PageQuerySchema,
      responses: { 200: { description: 'One page of round attempts.', schema: RoundListSchema } },
    },
    readable('Reading rounds'),
    async (req, res) => {
      const query = queryOf(PageQuerySchema, req);
      const { view, limit } = pageOf(query, 'full');
      const { page, next } = offsetPage(await store.listRounds(jobIn(res).id), query.cursor, limit);
      res.json({ rounds: page.map((x) => (view === 'full' ? roundView(x) : roundSummary(x))), nextCursor: next });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/participants',
      tag,
      auth: 'optional',
      summary: 'Clients that joined the job',
      description: "Payout addresses are shown to the job's managers and to each participant for itself.",
      params: JobParamsSchema,
      query: PageQuerySchema,
      responses: { 200: { description: 'One page of participants.', schema: ParticipantListSchema } },
    },
    readable('Reading participants'),
    async (req, res) => {
      const query = queryOf(PageQuerySchema, req);
      const { view, limit } = pageOf(query, 'full');
      const job = jobIn(res);
      const principal = req.principal;
      const manager = principal ? isManagedBy(job, principal.id) : false;
      const { page, next } = offsetPage(await store.listParticipants(job.id), query.cursor, limit);
      const shown = (p: ParticipantRecord) => ({
        clientId: p.clientId,
        roundsCompleted: p.roundsCompleted,
        ...(view === 'full' ? { joinedAt: p.joinedAt.toISOString(), lastSeenAt: p.lastSeenAt.toISOString() } : {}),
        ...(p.payoutAddress && (manager || principal?.clientId === p.clientId)
          ? { payoutAddress: p.payoutAddress }
          : {}),
      });
      res.json({ participants: page.map(shown), nextCursor: next });
    },
  );

  // The global model after a round in Tributary's codec (what clients download, hash-checked).
  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/checkpoints/:round',
      tag: 'models',
      auth: 'optional',
      summary: "The global model after a round (Tributary's codec)",
      params: RoundParamsSchema,
      responses: { 200: { description: 'Model codec bytes.', contentType: 'application/octet-stream' } },
    },
    readable('Downloading checkpoints'),
    async (req, res) => {
      const round = Number(req.params.round);
      if (!/^[0-9]{1,9}$/.test(String(req.params.round))) {
        throw new TributaryError(
          'VALIDATION_FAILED',
          `Invalid input: round: expected a round number >= 0, got "${String(req.params.round).slice(0, 12)}".`,
        );
      }
      res.type('application/octet-stream').send(await jobs.modelBytes(jobIn(res).id, round));
    },
  );

  // The current global model in TF.js Layers format: load with tf.loadLayersModel(`${url}/model.json`).
  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/model/model.json',
      tag: 'models',
      auth: 'optional',
      summary: 'The current global model, TF.js Layers format (topology and manifest)',
      params: JobParamsSchema,
      responses: { 200: { description: 'model.json', schema: ModelJsonSchema } },
    },
    readable('Downloading the model'),
    async (_req, res) => {
      const job = jobIn(res);
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
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/model/weights.bin',
      tag: 'models',
      auth: 'optional',
      summary: 'The current global model weights (float32, manifest order)',
      params: JobParamsSchema,
      responses: { 200: { description: 'weights.bin', contentType: 'application/octet-stream' } },
    },
    readable('Downloading the model'),
    async (_req, res) => {
      const job = jobIn(res);
      const tensors = decodeTensors(await jobs.modelBytes(job.id, job.currentRound), { zeroCopy: true });
      res
        .type('application/octet-stream')
        .send(Buffer.concat(tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))));
    },
  );

  // How each client's score was computed: per-round Shapley values (clients or cohorts), totals and payout shares.
  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/contributions',
      tag: 'contributions',
      auth: 'required',
      summary: "Every client's contribution score (owner or delegate)",
      params: JobParamsSchema,
      responses: { 200: { description: 'The contribution report.', schema: ContributionReportSchema } },
    },
    async (req, res) => {
      const job = await jobOf(req);
      assertManager(job, req.principal, 'jobs:read', "Reading every client's contribution");
      res.json(await contributionReport(store, job.id));
    },
  );

  // One client's view: its total and share, and every scored round it took part in with its (cohort's) value.
  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/contributions/:clientId',
      tag: 'contributions',
      auth: 'required',
      summary: "One client's contribution (that client, the owner or a delegate)",
      params: ClientParamsSchema,
      responses: {
        200: { description: "The client's score, share and round values.", schema: ClientContributionSchema },
      },
    },
    async (req, res) => {
      const job = await jobOf(req);
      const clientId = String(req.params.clientId);
      const principal = requirePrincipal(req.principal, "Reading a client's contribution");
      if (principal.clientId !== clientId)
        assertManager(job, principal, 'jobs:read', "Reading another client's contribution");
      const report = await contributionReport(store, job.id);
      const client = report.clients.find((c) => c.clientId === clientId);
      if (!client) {
        throw new TributaryError(
          'CONTRIBUTION_CLIENT_UNKNOWN',
          `Job ${job.id} has no scored round with client "${clientId.slice(0, 64)}".`,
        );
      }
      const rounds = report.rounds.flatMap((round) =>
        round.values
          .filter((v) => v.members.includes(clientId))
          .map((v) => ({
            round: round.round,
            attempt: round.attempt,
            method: round.method,
            improvement: round.improvement,
            members: v.members,
            value: v.value,
          })),
      );
      res.json({ jobId: job.id, method: report.method, metric: report.metric, ...client, roundValues: rounds });
    },
  );

  // A chain job's escrow as the coordinator sees it: funding, per-round commits, settlement, RPC errors.
  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/chain',
      tag: 'payouts',
      auth: 'optional',
      summary: "A paid job's escrow status",
      params: JobParamsSchema,
      responses: { 200: { description: 'Funding, commits and settlement.', schema: ChainStatusSchema } },
    },
    readable('Reading the escrow status'),
    async (_req, res) => {
      const job = jobIn(res);
      if (!job.spec.chain || !deps.chain) throw new TributaryError('NOT_FOUND', `Job ${job.id} has no chain config.`);
      res.json(await deps.chain.readStatus(job));
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/payouts',
      tag: 'payouts',
      auth: 'required',
      summary: 'Every payout of a settled paid job (owner or delegate)',
      params: JobParamsSchema,
      responses: { 200: { description: 'The payouts.', schema: PayoutListSchema } },
    },
    async (req, res) => {
      const job = await jobOf(req);
      assertManager(job, req.principal, 'jobs:read', 'Reading every payout');
      if (!deps.chain) throw new TributaryError('PAYOUT_NOT_FOUND', `Job ${job.id} has no chain config.`);
      res.json({ payouts: await deps.chain.payouts(job) });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/payouts/:address',
      tag: 'payouts',
      auth: 'required',
      summary:
        "One address's payout and Merkle proof (that address's holder, its participant, the owner or a delegate)",
      params: AddressParamsSchema,
      responses: { 200: { description: 'The payout and its proof.', schema: PayoutSchema } },
    },
    async (req, res) => {
      const job = await jobOf(req);
      const address = String(req.params.address).toLowerCase();
      const principal = requirePrincipal(req.principal, 'Reading a payout');
      const own =
        principal.address === address ||
        (principal.clientId !== undefined &&
          (await store.listParticipants(job.id)).some(
            (p) => p.clientId === principal.clientId && p.payoutAddress?.toLowerCase() === address,
          ));
      if (!own) assertManager(job, principal, 'jobs:read', "Reading another address's payout");
      if (!deps.chain) throw new TributaryError('PAYOUT_NOT_FOUND', `Job ${job.id} has no chain config.`);
      res.json(await deps.chain.payout(job, String(req.params.address)));
    },
  );

  mountValidationSetRoute(r, doc, deps, jobOf, writeAudit);
}

/** PUT /jobs/:jobId/validation-set: authorised, then bounded, one per job, parsed in a worker thread. */
function mountValidationSetRoute(
  r: Router,
  doc: ApiDocument,
  deps: JobRoutesDeps,
  jobOf: (req: Request) => Promise<JobRecord>,
  writeAudit: (entry: Parameters<AuditLog['record']>[0]) => Promise<unknown>,
): void {
  const uploading = new Set<string>();
  mountRoute(
    r,
    doc,
    {
      method: 'put',
      path: '/jobs/:jobId/validation-set',
      tag: 'jobs',
      auth: 'required',
      summary: "Upload or replace the buyer's validation set (owner or delegate)",
      description: `CSV or JSON lines checked against the job's input spec; at most ${deps.limits.maxValidationSetBytes} bytes; one upload per job at a time (409 UPLOAD_IN_PROGRESS).`,
      params: JobParamsSchema,
      body: { contentTypes: UPLOAD_TYPES, description: 'CSV with a header, or JSON lines.' },
      responses: { 201: { description: 'Stored.', schema: ValidationSetUploadedSchema } },
    },
    // Everything that can refuse runs before the body is read.
    async (req, res, next) => {
      const job = await jobOf(req);
      res.locals.principal = assertManager(job, req.principal, 'jobs:write', 'Uploading a validation set');
      res.locals.job = job;
      if (!req.is(UPLOAD_TYPES)) {
        throw new TributaryError('VALIDATION_FAILED', `Expected a body of type ${UPLOAD_TYPES.join(', ')}.`);
      }
      if (uploading.has(job.id)) {
        throw new TributaryError(
          'UPLOAD_IN_PROGRESS',
          `A validation set for job ${job.id} is being uploaded; retry when it is done.`,
        );
      }
      if (uploading.size >= deps.limits.maxConcurrentUploads) {
        throw new TributaryError('RATE_LIMITED', 'Too many validation-set uploads are in progress; retry shortly.', {
          details: { limiter: 'uploads', retryAfterSeconds: 5 },
        });
      }
      uploading.add(job.id);
      // Released however the request ends (stored, refused while reading, or the client went away).
      res.once('close', () => uploading.delete(job.id));
      next();
    },
    ...rawBody(deps.limits.maxValidationSetBytes, deps.gate),
    async (req, res) => {
      const job = res.locals.job as JobRecord;
      const body = req.body as Buffer;
      const size = body.length;
      const digest = res.locals.bodySha256 as string;
      const format = req.is(['text/csv', 'text/plain']) ? 'csv' : 'jsonl';
      // The body goes to the worker thread (parsed off the event loop); it is not used here afterwards.
      const parsed = await deps.parser.parse(body, format, job.spec.input);
      await deps.store.saveValidationSet(job.id, parsed.bytes);
      await writeAudit({
        action: 'job.validation-set.replaced',
        actor: res.locals.principal as Principal,
        jobId: job.id,
        digests: { upload: digest, dataset: parsed.sha256 },
        details: { examples: parsed.examples, bytes: size, format },
      });
      res.status(201).json({ jobId: job.id, examples: parsed.examples, sha256: digest });
    },
  );
}
