import type { ClientDirectory } from '../transport/clientDirectory';

/** Tells each selected client that its round attempt closed (clients stop waiting on it). */
export function announceRoundClosed(
  directory: ClientDirectory,
  jobId: string,
  selected: readonly string[],
  round: number,
  status: 'completed' | 'failed',
): void {
  for (const clientId of selected) directory.link(clientId)?.send('round:closed', { jobId, round, status });
}

/** Tells every connected member that the job is over. */
export function announceJobFinished(
  directory: ClientDirectory,
  jobId: string,
  status: 'completed' | 'failed',
  reason?: string,
): void {
  for (const clientId of directory.members(jobId)) {
    directory.link(clientId)?.send('job:finished', { jobId, status, ...(reason ? { reason } : {}) });
  }
}

/** The metrics a committed round records: examples (capped weights), duration, clients' and validation metrics. */
export function roundMetrics(input: {
  totalWeight: number;
  startedAt: Date;
  finishedAt: Date;
  clientMetrics: Record<string, number>;
  validation: Record<string, number> | null;
}): Record<string, number> {
  const metrics: Record<string, number> = {
    numExamples: Math.round(input.totalWeight),
    durationMs: input.finishedAt.getTime() - input.startedAt.getTime(),
  };
  for (const [k, v] of Object.entries(input.clientMetrics)) metrics[`train_${k}`] = v;
  if (input.validation) for (const [k, v] of Object.entries(input.validation)) metrics[`validation_${k}`] = v;
  return metrics;
}
