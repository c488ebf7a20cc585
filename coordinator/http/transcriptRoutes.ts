import type { Router } from 'express';
import { z } from 'zod';
import { TributaryError } from '../../shared/errors';
import { JobIdSchema } from '../../shared/schemas/messages';
import { JobParamsSchema, RoundParamsSchema } from '../../shared/schemas/restApi';
import { assertReader } from '../auth/jobPermissions';
import type { JobManager } from '../jobs/jobManager';
import type { Store } from '../store/store';
import { transcriptView } from '../transcript/transcriptRoutes';
import {
  ROUND_TRANSCRIPT_TYPE,
  SCORING_TRANSCRIPT_TYPE,
  SignedTranscriptViewSchema,
} from '../transcript/transcriptSchema';
import { type ApiDocument, mountRoute } from './apiRoute';

/** Everything the transcript routes need. */
export interface TranscriptRoutesDeps {
  jobs: JobManager;
  store: Store;
  /** The coordinator's Ed25519 transcript key (hex). */
  transcriptKey: string;
}

const IdentitySchema = z.object({
  transcriptKey: z.string(),
  algorithm: z.literal('Ed25519'),
  transcriptTypes: z.array(z.string()),
});
const TranscriptListSchema = z.object({ jobId: z.string(), transcripts: z.array(SignedTranscriptViewSchema) });
const RoundTranscriptsSchema = z.object({
  jobId: z.string(),
  round: SignedTranscriptViewSchema,
  scoring: SignedTranscriptViewSchema.nullable(),
});
const RoundNumberSchema = z.coerce.number().int().min(1).max(1_000_000);

/**
 * The signed round and scoring transcripts (coordinator/transcript/, docs/audit.md), served like a
 * job's rounds: anyone may read a public job's, only its owner, delegates and members a private one's.
 * `GET /v1/identity` names the key they are signed with.
 */
export function mountTranscriptRoutes(r: Router, doc: ApiDocument, deps: TranscriptRoutesDeps): void {
  const readableJob = async (jobId: unknown, principal: Parameters<typeof assertReader>[1]) => {
    const id = JobIdSchema.safeParse(jobId);
    if (!id.success) throw new TributaryError('JOB_NOT_FOUND', `"${String(jobId).slice(0, 64)}" is not a job id.`);
    const job = await deps.jobs.getJob(id.data);
    await assertReader(job, principal, deps.store, 'Reading transcripts');
    return job;
  };

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/identity',
      tag: 'service',
      auth: 'none',
      summary: "The coordinator's Ed25519 transcript key",
      responses: { 200: { description: 'The key transcripts are signed with.', schema: IdentitySchema } },
    },
    (_req, res) => {
      res.json({
        transcriptKey: deps.transcriptKey,
        algorithm: 'Ed25519',
        transcriptTypes: [ROUND_TRANSCRIPT_TYPE, SCORING_TRANSCRIPT_TYPE],
      });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/transcripts',
      tag: 'jobs',
      auth: 'optional',
      summary: "Every signed transcript of a job's committed and scored rounds",
      params: JobParamsSchema,
      responses: { 200: { description: 'The transcripts, by round.', schema: TranscriptListSchema } },
    },
    async (req, res) => {
      const job = await readableJob(req.params.jobId, req.principal);
      res.json({ jobId: job.id, transcripts: (await deps.store.listTranscripts(job.id)).map(transcriptView) });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/jobs/:jobId/transcripts/:round',
      tag: 'jobs',
      auth: 'optional',
      summary: "One round's signed transcript and its scoring transcript (or null)",
      params: RoundParamsSchema,
      responses: { 200: { description: "The round's transcripts.", schema: RoundTranscriptsSchema } },
    },
    async (req, res) => {
      const job = await readableJob(req.params.jobId, req.principal);
      const parsed = RoundNumberSchema.safeParse(req.params.round);
      if (!parsed.success) {
        throw new TributaryError(
          'VALIDATION_FAILED',
          `Expected a round number >= 1, got "${String(req.params.round).slice(0, 40)}".`,
        );
      }
      const round = parsed.data;
      const [roundTranscript, scoring] = await Promise.all([
        deps.store.loadTranscript(job.id, round, 'round'),
        deps.store.loadTranscript(job.id, round, 'scoring'),
      ]);
      if (!roundTranscript) {
        throw new TributaryError(
          'TRANSCRIPT_NOT_FOUND',
          `Job ${job.id} has no signed transcript for round ${round} (committed rounds: ${job.currentRound}).`,
        );
      }
      res.json({
        jobId: job.id,
        round: transcriptView(roundTranscript),
        scoring: scoring ? transcriptView(scoring) : null,
      });
    },
  );
}
