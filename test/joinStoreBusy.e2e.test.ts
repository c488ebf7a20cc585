/**
 * A join the store refuses under load (STORE_BUSY: FerretDB answering SQLITE_BUSY past the store's
 * retries) is answered with that typed error over the real socket, leaves the client out of the job's
 * members and out of the participant list (never half-joined), and the same join asked again is
 * recorded exactly once.
 */
import { createBuyerClient, createJob } from '../client/buyer';
import { CoordinatorConnection } from '../client/coordinatorConnection';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { MemoryStore } from '../coordinator/store/memoryStore';
import type { ParticipantJoin } from '../coordinator/store/store';
import { TributaryError } from '../shared/errors';
import { generateIdentity } from '../shared/identity/keyPair';

jest.setTimeout(120_000);

/** A store that refuses the next `refusals` joins as a busy store would after its retries. */
class BusyStore extends MemoryStore {
  refusals = 0;
  override async recordJoin(join: ParticipantJoin): Promise<void> {
    if (this.refusals > 0) {
      this.refusals--;
      throw new TributaryError('STORE_BUSY', 'The store refused 1 participant join(s) 8 times in a row.', {
        details: { attempts: 8 },
      });
    }
    return super.recordJoin(join);
  }
}

describe('a join the store refuses', () => {
  let coordinator: Coordinator;
  let conn: CoordinatorConnection | undefined;
  const store = new BusyStore();

  beforeAll(async () => {
    coordinator = await startCoordinator({ host: '127.0.0.1', port: 0, logLevel: 'error' }, { store });
  });
  afterAll(async () => {
    conn?.close();
    await coordinator?.close();
  });

  it('fails with STORE_BUSY, leaves no member and no record, and succeeds once asked again', async () => {
    const buyer = createBuyerClient({ url: coordinator.url, identity: generateIdentity() });
    const { id: jobId } = await createJob(buyer, {
      spec: {
        name: 'busy-store',
        model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
        input: { shape: [8], numClasses: 2 },
        secureAggregation: 'none',
        rounds: 1,
        // Two needed: the one client joining never starts a round.
        minClients: 2,
        maxClients: 2,
      },
    });
    const identity = generateIdentity();
    conn = new CoordinatorConnection({ url: coordinator.url, identity });
    const connected = new Promise<void>((resolve) => conn!.once('connected', () => resolve()));
    conn.connect();
    await connected;

    store.refusals = 1;
    const refused = await conn.join(jobId).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toMatchObject({ code: 'STORE_BUSY' });
    expect(coordinator.directory.hasJoined(identity.clientId, jobId)).toBe(false);
    expect(coordinator.directory.members(jobId)).toEqual([]);
    expect(await store.listParticipants(jobId)).toEqual([]);

    const joined = await conn.join(jobId);
    expect(joined.jobId).toBe(jobId);
    expect(coordinator.directory.members(jobId)).toEqual([identity.clientId]);
    expect((await store.listParticipants(jobId)).map((p) => p.clientId)).toEqual([identity.clientId]);
  });
});
