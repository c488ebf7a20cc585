import { decodeTensors } from '../../shared/codec/modelCodec';
import type { NamedTensor } from '../../shared/codec/tensors';
import type { CoordinatorConnection } from '../../client/coordinatorConnection';
import type { TributaryClient } from '../../client/tributaryClient';
import type { Store } from '../../coordinator/store/store';

/** Shared pieces of the secure-aggregation e2e tests (secagg, cohorts, paillier). */

/** The global model a job committed after `round` (0 = initial). */
export async function roundModel(store: Store, jobId: string, round: number): Promise<NamedTensor[]> {
  const checkpoint = await store.loadCheckpoint(jobId, round);
  if (!checkpoint) throw new Error(`job ${jobId} has no checkpoint for round ${round}`);
  return decodeTensors(Buffer.from(checkpoint.weights));
}

/** max |to - from| over every weight: the size of the step a round took. */
export function largestChange(from: readonly NamedTensor[], to: readonly NamedTensor[]): number {
  let largest = 0;
  to.forEach((t, i) => t.data.forEach((v, j) => (largest = Math.max(largest, Math.abs(v - from[i].data[j])))));
  return largest;
}

/**
 * max |a - b| over every weight, less the float32 rounding of storing the model (up to one ulp of b
 * on each side): what remains is the error secure aggregation itself introduced.
 */
export function largestDifference(a: readonly NamedTensor[], b: readonly NamedTensor[]): number {
  let worst = 0;
  a.forEach((t, i) =>
    t.data.forEach((v, j) => {
      worst = Math.max(worst, Math.abs(v - b[i].data[j]) - 2 * Math.abs(b[i].data[j]) * 2 ** -23);
    }),
  );
  return worst;
}

/**
 * Round 1 of a secure job beside round 1 of the same plaintext job. Both start from the same model
 * (asserted) and the same local updates, so only the secure mode's quantisation can differ:
 * `meanAbs` is the plaintext step's size, `worst` the secure model's largest difference from it.
 */
export async function compareRoundOne(store: Store, plainId: string, secureId: string) {
  const initial = await roundModel(store, plainId, 0);
  expect((await roundModel(store, secureId, 0)).map((t) => [...t.data])).toEqual(initial.map((t) => [...t.data]));
  const plain1 = await roundModel(store, plainId, 1);
  const secure1 = await roundModel(store, secureId, 1);
  const meanAbs = largestChange(initial, plain1);
  expect(meanAbs).toBeGreaterThan(0);
  return { initial, secure1, meanAbs, worst: largestDifference(secure1, plain1) };
}

/** A library client's live connection (tests use it to send what a real client never would). */
export const connectionOf = (c: TributaryClient) =>
  (c as unknown as { connection: CoordinatorConnection | null }).connection;

/** Runs `f` with the client's connection as soon as it exists (right after the backend is chosen). */
export function connectionOfLater(client: TributaryClient, f: (conn: CoordinatorConnection) => void): void {
  client.once('backend', () => {
    const conn = connectionOf(client);
    if (conn) f(conn);
    else setImmediate(() => connectionOf(client) && f(connectionOf(client)!));
  });
}
