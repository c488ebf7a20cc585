import { randomUUID } from 'node:crypto';
import type { ApiKeyRecord, AuditRecord, JobRecord, Store } from './store';

/*
 * The access-control part of the Store contract (registered by runStoreContract, so it runs against
 * every backend): job ownership and visibility, paging, quotas' counts, API keys and the audit trail.
 * Tests share one store (and MongoStore one database across runs), so each works on fresh owners.
 */

const uid = (prefix: string) => `${prefix}-${randomUUID()}`;

function job(overrides: Partial<JobRecord> = {}): JobRecord {
  const when = new Date(Date.UTC(2032, 0, 1));
  return {
    id: uid('job'),
    spec: {
      name: 'owned',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [2], labelColumn: 'label', numClasses: 2 },
      rounds: 1,
      minClients: 2,
      maxClients: 10,
      fractionFit: 1,
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 60_000,
      maxRoundRetries: 2,
      localEpochs: 1,
      batchSize: 32,
      learningRate: 0.01,
      strategy: { name: 'fedavg' },
      secureAggregation: 'none',
      none: { maxExampleWeight: 100_000 },
      seed: 0,
    },
    status: 'running',
    currentRound: 0,
    modelHash: '0'.repeat(64),
    weightManifest: [{ name: 'k', shape: [2, 2] }],
    createdAt: when,
    updatedAt: when,
    ...overrides,
  };
}

/** Registers the access-control contract tests against the store `get()` returns. */
export function describeAccessControlContract(get: () => Store): void {
  describe('ownership and visibility', () => {
    it('round-trips owner, visibility and delegates, and patches delegates and spec.access', async () => {
      const store = get();
      const owner = uid('ed25519:owner');
      const record = job({ owner, visibility: 'private', delegates: ['eth:0xabc'] });
      await store.createJob(record);
      expect(await store.getJob(record.id)).toStrictEqual(record);
      const updated = await store.updateJob(record.id, {
        delegates: ['eth:0xdef'],
        access: { mode: 'invite', listings: ['lst_000000000000000000000001'] },
      });
      expect(updated.delegates).toEqual(['eth:0xdef']);
      expect(updated.spec.access).toEqual({ mode: 'invite', listings: ['lst_000000000000000000000001'] });
      expect(updated.spec.name).toBe('owned');
      expect(await store.getJob(record.id)).toStrictEqual(updated);
    });

    it('pages jobs newest first, showing private jobs only to their owner and delegates', async () => {
      const store = get();
      const alice = uid('ed25519:alice');
      const bob = uid('ed25519:bob');
      const t = Date.UTC(2033, 0, 1);
      const jobs = [
        job({ owner: alice, visibility: 'public', createdAt: new Date(t + 3000) }),
        job({ owner: alice, visibility: 'private', createdAt: new Date(t + 2000) }),
        job({ owner: alice, visibility: 'private', delegates: [bob], createdAt: new Date(t + 2000) }),
        job({ owner: alice, visibility: 'public', status: 'completed', createdAt: new Date(t + 1000) }),
      ];
      for (const j of jobs) await store.createJob(j);
      const ids = (list: JobRecord[]) => list.map((j) => j.id);
      const [pub, priv1, priv2, done] = jobs;
      const tied = [priv1, priv2].sort((a, b) => (a.id < b.id ? -1 : 1));
      expect(ids(await store.listJobsPage({ visibleTo: alice, managedBy: alice, limit: 10 }))).toEqual(
        ids([pub, ...tied, done]),
      );
      // Bob manages only the job he is a delegate of; anonymous callers see public jobs only.
      expect(ids(await store.listJobsPage({ visibleTo: bob, managedBy: bob, limit: 10 }))).toEqual([priv2.id]);
      const anonymous = ids(await store.listJobsPage({ visibleTo: null, limit: 1000 }));
      expect(anonymous).toEqual(expect.arrayContaining([pub.id, done.id]));
      expect(anonymous).not.toContain(priv1.id);
      expect(anonymous).not.toContain(priv2.id);
      // Pages: two at a time, each starting after the last one seen (the tie broken by id).
      const first = await store.listJobsPage({ visibleTo: alice, managedBy: alice, limit: 2 });
      const last = first[first.length - 1];
      const second = await store.listJobsPage({
        visibleTo: alice,
        managedBy: alice,
        limit: 2,
        after: { createdAt: last.createdAt, id: last.id },
      });
      expect([...ids(first), ...ids(second)]).toEqual(ids([pub, ...tied, done]));
      expect(
        ids(await store.listJobsPage({ visibleTo: alice, managedBy: alice, status: 'completed', limit: 10 })),
      ).toEqual([done.id]);
      expect(await store.countJobs({ owner: alice, statuses: ['pending', 'running'] })).toBe(3);
      expect(await store.countJobs({ owner: bob, statuses: ['pending', 'running'] })).toBe(0);
    });

    it('treats a record without visibility as public, unless it is a paid job', async () => {
      const store = get();
      const owner = uid('ed25519:legacy');
      const free = job({ owner });
      const paid = job({
        owner,
        spec: { ...job().spec, chain: { escrow: `0x${'1'.repeat(40)}`, jobId: '1', chainId: 31337 } },
      });
      await store.createJob(free);
      await store.createJob(paid);
      const anonymous = (await store.listJobsPage({ visibleTo: null, limit: 1000 })).map((j) => j.id);
      expect(anonymous).toContain(free.id);
      expect(anonymous).not.toContain(paid.id);
    });
  });

  describe('API keys', () => {
    const key = (owner: string, overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord => ({
      id: randomUUID().replace(/-/g, '').slice(0, 16),
      owner,
      name: 'ci',
      scopes: ['jobs:read'],
      tokenHash: 'a'.repeat(64),
      createdAt: new Date(Date.UTC(2032, 5, 1)),
      expiresAt: new Date(Date.UTC(2033, 5, 1)),
      ...overrides,
    });

    it('stores, lists per owner newest first, and revokes once', async () => {
      const store = get();
      const owner = uid('eth:0xowner');
      const older = key(owner, { createdAt: new Date(Date.UTC(2032, 0, 1)) });
      const newer = key(owner, { scopes: ['jobs:read', 'jobs:write'] });
      await store.saveApiKey(older);
      await store.saveApiKey(newer);
      await store.saveApiKey(key(uid('eth:0xother')));
      expect(await store.getApiKey(newer.id)).toStrictEqual(newer);
      expect(await store.getApiKey('0000000000000000')).toBeNull();
      expect((await store.listApiKeys(owner)).map((k) => k.id)).toEqual([newer.id, older.id]);
      await expect(store.saveApiKey({ ...older, name: 'again' })).rejects.toMatchObject({ code: 'INTERNAL' });
      const at = new Date(Date.UTC(2032, 6, 1));
      expect(await store.revokeApiKey(older.id, at)).toBe(true);
      expect(await store.revokeApiKey(older.id, new Date())).toBe(false);
      expect(await store.revokeApiKey('0000000000000000', at)).toBe(false);
      expect((await store.getApiKey(older.id))!.revokedAt!.getTime()).toBe(at.getTime());
      expect((await store.getApiKey(newer.id))!.revokedAt).toBeUndefined();
    });
  });

  describe('audit trail', () => {
    it('appends once per id and pages oldest first by job or by actor', async () => {
      const store = get();
      const jobId = uid('job');
      const actor = uid('ed25519:actor');
      const t = Date.UTC(2032, 1, 1);
      const entry = (i: number, overrides: Partial<AuditRecord> = {}): AuditRecord => ({
        id: `${jobId}-${i}`,
        action: 'job.created',
        actor,
        at: new Date(t + i * 1000),
        jobId,
        digests: { spec: `${i}`.padStart(64, '0') },
        details: { examples: i, replaced: i % 2 === 0, note: 'x' },
        ...overrides,
      });
      // An actor-only record (no job, no details), as an API key creation writes.
      const { jobId: _job, details: _details, ...keyCreated } = entry(3, { action: 'api-key.created' });
      await store.appendAudit(entry(2));
      await store.appendAudit(entry(1));
      await store.appendAudit(keyCreated);
      await store.appendAudit({ ...entry(1), action: 'job.cancelled' });
      const byJob = await store.listAudit({ jobId, limit: 10 });
      expect(byJob).toStrictEqual([entry(1), entry(2)]);
      const byActor = await store.listAudit({ actor, limit: 10 });
      expect(byActor.map((r) => r.id)).toEqual([`${jobId}-1`, `${jobId}-2`, `${jobId}-3`]);
      expect(byActor[2]).toStrictEqual(keyCreated);
      const page = await store.listAudit({ actor, limit: 2, after: { at: byActor[0].at, id: byActor[0].id } });
      expect(page.map((r) => r.id)).toEqual([`${jobId}-2`, `${jobId}-3`]);
    });
  });
}
