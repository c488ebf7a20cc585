import { z } from 'zod';
import { SignedTranscriptViewSchema, type SignedTranscriptView } from '../../coordinator/transcript/transcriptSchema';
import { TributaryError } from '../../shared/errors';
import { LIMITS } from '../../shared/schemas/jobSpec';

/** GET /v1/jobs/:id as the audit reads it (the spec is kept as served: its hash is taken before it is parsed). */
const JobViewSchema = z.object({
  id: z.string(),
  status: z.string(),
  currentRound: z.number().int().min(0),
  modelHash: z.string(),
  spec: z.record(z.string(), z.unknown()),
});
export type JobView = z.infer<typeof JobViewSchema>;

const IdentitySchema = z.object({ transcriptKey: z.string().regex(/^[0-9a-f]{64}$/) });

const TranscriptListSchema = z.object({
  jobId: z.string(),
  transcripts: z.array(SignedTranscriptViewSchema).max(2 * LIMITS.maxRounds),
});

/** Checkpoints larger than this are refused before they are read (the largest model the schema admits, plus its header). */
const MAX_CHECKPOINT_BYTES = 4 * LIMITS.maxParameters + (1 << 20);

/** What the coordinator serves about one job. */
export interface CoordinatorRecord {
  job: JobView;
  /** The coordinator's transcript key, as served now. */
  transcriptKey: string;
  transcripts: SignedTranscriptView[];
  /** Codec bytes of the checkpoint after `round` (0: the initial model); null when the coordinator has none. */
  checkpoint(round: number): Promise<Uint8Array | null>;
}

/**
 * Reads a job from the coordinator's REST API: the job with its spec, the transcript key, every
 * signed transcript, and checkpoints on demand. Throws AUDIT_SOURCE_UNAVAILABLE when the coordinator
 * cannot be reached or answers with anything but its API's JSON, JOB_NOT_FOUND for an unknown job.
 */
export async function readCoordinator(coordinator: string, jobId: string): Promise<CoordinatorRecord> {
  const base = (path: string) => new URL(path, coordinator);
  const job = await getJson(base(`/v1/jobs/${encodeURIComponent(jobId)}`), JobViewSchema, 'the job');
  const identity = await getJson(base('/v1/identity'), IdentitySchema, "the coordinator's transcript key");
  const list = await getJson(
    base(`/v1/jobs/${encodeURIComponent(jobId)}/transcripts`),
    TranscriptListSchema,
    "the job's transcripts",
  );
  return {
    job,
    transcriptKey: identity.transcriptKey,
    transcripts: list.transcripts,
    async checkpoint(round) {
      const res = await request(base(`/v1/jobs/${encodeURIComponent(jobId)}/checkpoints/${round}`));
      if (res.status === 404) return null;
      if (!res.ok) throw unavailable(`checkpoint ${round}: HTTP ${res.status}`);
      const declared = Number(res.headers.get('content-length') ?? '0');
      if (declared > MAX_CHECKPOINT_BYTES) throw unavailable(`checkpoint ${round} declares ${declared} bytes`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (bytes.length > MAX_CHECKPOINT_BYTES) throw unavailable(`checkpoint ${round} has ${bytes.length} bytes`);
      return bytes;
    },
  };
}

function unavailable(what: string, cause?: unknown): TributaryError {
  return new TributaryError('AUDIT_SOURCE_UNAVAILABLE', `The coordinator's REST API could not be read: ${what}.`, {
    cause,
  });
}

async function request(url: URL): Promise<Response> {
  try {
    return await fetch(url, { signal: AbortSignal.timeout(60_000) });
  } catch (err) {
    throw unavailable(`${url.origin} did not answer (${(err as Error).message})`, err);
  }
}

async function getJson<S extends z.ZodType>(url: URL, schema: S, what: string): Promise<z.infer<S>> {
  const res = await request(url);
  const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  if (body === null) throw unavailable(`${what}: HTTP ${res.status} with a body that is not JSON`);
  if (!res.ok) {
    if (body.error?.code === 'JOB_NOT_FOUND') throw new TributaryError('JOB_NOT_FOUND', body.error.message);
    throw unavailable(`${what}: HTTP ${res.status} ${body.error?.code ?? ''} ${body.error?.message ?? ''}`.trim());
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw unavailable(`${what} is malformed (${issue?.path.join('.')}: ${issue?.message})`);
  }
  return parsed.data;
}
