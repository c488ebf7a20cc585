import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { TributaryError, toTributaryError } from '../../shared/errors';
import { JobIdSchema } from '../../shared/schemas/messages';
import { wrap } from '../http/asyncRoute';
import type { Logger } from '../logger';
import type { Store, TranscriptRecord } from '../store/store';
import { ROUND_TRANSCRIPT_TYPE, SCORING_TRANSCRIPT_TYPE, type SignedTranscriptView } from './transcriptSchema';

export interface TranscriptRouteDeps {
  store: Store;
  /** The coordinator's transcript key (hex). */
  publicKey: string;
  logger: Logger;
}

const RoundParamSchema = z.coerce.number().int().min(1).max(1_000_000);

/** A stored transcript as served: the signed text parsed back into the object it canonicalises. */
export function transcriptView(record: TranscriptRecord): SignedTranscriptView {
  return {
    kind: record.kind,
    round: record.round,
    hash: record.hash,
    signature: record.signature,
    transcript: JSON.parse(record.text) as Record<string, unknown>,
  };
}

/**
 * The transcript read routes, mounted under /v1 beside the main REST router (server.ts):
 * - `GET /v1/identity`: the coordinator's Ed25519 transcript key;
 * - `GET /v1/jobs/:jobId/transcripts`: every signed transcript of a job, by round (round, then scoring);
 * - `GET /v1/jobs/:jobId/transcripts/:round`: one round's transcript and its scoring transcript (or null).
 * Other paths fall through to the next router; errors leave as `{ error: { code, message } }`.
 */
export function createTranscriptRouter(deps: TranscriptRouteDeps): Router {
  const r = express.Router();

  const job = async (req: Request) => {
    const id = JobIdSchema.safeParse(req.params.jobId);
    if (!id.success) throw new TributaryError('JOB_NOT_FOUND', `"${String(req.params.jobId)}" is not a job id.`);
    const found = await deps.store.getJob(id.data);
    if (!found) throw new TributaryError('JOB_NOT_FOUND', `No job with id "${id.data}".`);
    return found;
  };

  r.get('/identity', (_req, res) => {
    res.json({
      transcriptKey: deps.publicKey,
      algorithm: 'Ed25519',
      transcriptTypes: [ROUND_TRANSCRIPT_TYPE, SCORING_TRANSCRIPT_TYPE],
    });
  });

  r.get(
    '/jobs/:jobId/transcripts',
    wrap(async (req, res) => {
      const found = await job(req);
      const transcripts = await deps.store.listTranscripts(found.id);
      res.json({ jobId: found.id, transcripts: transcripts.map(transcriptView) });
    }),
  );

  r.get(
    '/jobs/:jobId/transcripts/:round',
    wrap(async (req, res) => {
      const found = await job(req);
      const parsed = RoundParamSchema.safeParse(req.params.round);
      if (!parsed.success) {
        throw new TributaryError(
          'VALIDATION_FAILED',
          `Expected a round number >= 1, got "${String(req.params.round).slice(0, 40)}".`,
        );
      }
      const round = parsed.data;
      const [roundTranscript, scoring] = await Promise.all([
        deps.store.loadTranscript(found.id, round, 'round'),
        deps.store.loadTranscript(found.id, round, 'scoring'),
      ]);
      if (!roundTranscript) {
        throw new TributaryError(
          'TRANSCRIPT_NOT_FOUND',
          `Job ${found.id} has no signed transcript for round ${round} (committed rounds: ${found.currentRound}).`,
        );
      }
      res.json({
        jobId: found.id,
        round: transcriptView(roundTranscript),
        scoring: scoring ? transcriptView(scoring) : null,
      });
    }),
  );

  r.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = toTributaryError(err);
    if (e.code === 'INTERNAL')
      deps.logger.error('transcript route failed', { message: String((err as Error)?.stack ?? err) });
    res.status(e.httpStatus).json({ error: e.toWire() });
  });
  return r;
}
