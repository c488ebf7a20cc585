import { toTributaryError } from '../shared/errors';
import type { JoinResult } from '../shared/schemas/messages';
import type { CoordinatorConnection, JobFinished } from './coordinatorConnection';

/**
 * Joins a job over `conn` (as a provider or as the key holder), shared by every client role:
 * a job that is over resolves with its JobFinished; a transient failure (lost connection, store
 * hiccup) is retried while this connection is still the current one and connected, and otherwise
 * left to the next 'connected' event (null); a job whose escrow is not funded yet (JOB_NOT_FUNDED)
 * is asked again every few seconds; a job another node of a cluster runs (JOB_ELSEWHERE) moves the
 * connection to that node; any other error is thrown.
 */
export async function joinOrFinish(
  conn: CoordinatorConnection,
  jobId: string,
  join: () => Promise<JoinResult>,
  stillCurrent: () => boolean,
  warn: (message: string) => void,
): Promise<JoinResult | JobFinished | null> {
  let unfunded = 0;
  for (;;) {
    try {
      return await join();
    } catch (err) {
      const e = toTributaryError(err);
      if (e.code === 'JOB_NOT_RUNNING') {
        const status = (e.details as { status?: string } | undefined)?.status === 'completed' ? 'completed' : 'failed';
        return { jobId, status, reason: e.message };
      }
      if (e.code === 'JOB_NOT_FUNDED') {
        // Recruiting starts once the buyer's escrow holds the budget: wait for it, not an error.
        if (unfunded++ === 0) warn(`${e.message} Waiting for the escrow to be funded.`);
        await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** Math.min(unfunded, 5))));
        if (!stillCurrent() || !conn.socket.connected) return null;
        continue;
      }
      if (e.code === 'JOB_ELSEWHERE') {
        // A cluster: another node runs the job. Go there if it is one of ours; the next 'connected' rejoins.
        const ownerUrl = (e.details as { ownerUrl?: unknown } | undefined)?.ownerUrl;
        if (typeof ownerUrl === 'string' && conn.failOver(ownerUrl)) return null;
        // Not one of ours: the next of our URLs, or (one URL: a load balancer) a fresh connection there,
        // which the balancer places on another node. Paced, so a wrong URL cannot make a busy loop.
        warn(`${e.message} (${String(ownerUrl)} is not one of this client's coordinators); dialling again`);
        await new Promise((r) => setTimeout(r, 500));
        if (!stillCurrent()) return null;
        if (conn.failOver() || conn.redial()) return null;
        continue;
      }
      if (e.code !== 'INTERNAL' && e.code !== 'STORE_UNAVAILABLE' && e.code !== 'STORE_BUSY') throw e;
      warn(`join failed (${e.message}); retrying`);
      await new Promise((r) => setTimeout(r, 1_000));
      if (!stillCurrent() || !conn.socket.connected) return null;
    }
  }
}

/** Whether joinOrFinish ended in the job being over. */
export function isJobFinished(outcome: JoinResult | JobFinished | null): outcome is JobFinished {
  return outcome !== null && 'status' in outcome && !('spec' in outcome);
}
