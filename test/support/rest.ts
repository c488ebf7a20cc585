import type { JobSpecInput } from '../../shared/schemas/jobSpec';

/** Creates a job over REST as a buyer would; throws with the coordinator's error if it is refused. */
export async function createJob(url: string, spec: JobSpecInput): Promise<string> {
  const res = await fetch(`${url}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
  const body = (await res.json()) as { id?: string; error?: { code: string; message: string } };
  if (res.status !== 201 || !body.id)
    throw new Error(`POST /v1/jobs answered ${res.status}: ${JSON.stringify(body.error)}`);
  return body.id;
}
