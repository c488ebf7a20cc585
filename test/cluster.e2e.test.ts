/**
 * Several coordinators, one federation (issue 16), multi-process and real: three coordinator
 * processes run as one cluster on one FerretDB (job leases and fenced commits in the store) and one
 * redis-server (socket.io adapter, shared handshake nonces) started here and killed by PID, with
 * client processes that are each given the three URLs in a different order, so they start spread
 * over the nodes and are redirected (JOB_ELSEWHERE) to the job's owner.
 *
 * (a)+(b) the job's owner is killed with SIGKILL after round 1: another node takes the lease over,
 *   completes the job from the last committed round, every round is committed exactly once, and the
 *   clients fail over by themselves.
 * (c) the owner is paused (SIGSTOP) past its lease, another node takes over and commits, then the old
 *   owner is resumed (SIGCONT): it commits nothing more, and each round is still committed once.
 *   The final model equals the one a single coordinator gives with the same seed and data (6b).
 * (f) replays across nodes: a handshake captured for one node is refused by another; a captured job
 *   message sent to another node by another key, or by its own signer, is refused.
 * (4)+(e) REST writes at a node that does not run the job: a validation set uploaded there is used by
 *   the owner's scoring, and a cancel there preempts the owner's lease (the owner commits nothing
 *   more); secagg and paillier jobs (key holder included) complete with clients spread over the nodes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cancelJob, getJob as getJobAction, getRounds, uploadValidationSet } from '../client/buyer';
import { handshakeAuth } from '../client/coordinatorConnection';
import { generateKeyHolderKeys, KeyHolder, keyHolderSpecFields } from '../client/keyHolder';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { EVENTS, STAGES } from '../shared/schemas/protocol';
import {
  ClusterHarness,
  describeWithCluster,
  type ClusterNode,
  type ClusterRoundView as RoundView,
  committedLines,
  createClusterJob as createJobOfRounds,
  expectEachRoundCommittedOnce as eachRoundOnce,
  exitOf,
  finished,
  ownerOf,
} from './support/clusterNodes';
import { spawnTs, waitFor } from './support/processes';
import { RawClient } from './support/rawClient';
import { buyerClient } from './support/rest';
import { writeSeparableCsv } from './support/syntheticCsv';

jest.setTimeout(600_000);

const describeIfMongo = describeWithCluster('cluster tests');

/** Short leases so takeovers happen within seconds; the scan runs every half lease. */
const LEASE_TTL_MS = 3_000;
const ROUNDS = 5;

type Node = ClusterNode;

describeIfMongo('a cluster of three coordinators', () => {
  let harness: ClusterHarness;
  /** The final model of the SIGKILL run, compared with a single coordinator's (6b). */
  let killRunModelHash: string | undefined;

  beforeAll(async () => {
    harness = await ClusterHarness.start(LEASE_TTL_MS);
  });
  afterAll(async () => {
    await harness?.stop();
  });

  const startNodes = (count: number) => harness.startNodes(count);
  const startClients = (nodes: Node[], jobId: string, count: number, tag: string) =>
    harness.startClients(nodes, jobId, count, tag);
  const createClusterJob = (url: string, name: string, overrides: Partial<JobSpecInput> = {}) =>
    createJobOfRounds(url, name, ROUNDS, overrides);
  const expectEachRoundCommittedOnce = (url: string, jobId: string) => eachRoundOnce(url, jobId, ROUNDS);

  it('(a, b, f) runs a job with clients spread over the nodes, survives SIGKILL of its owner, and refuses replays across nodes', async () => {
    const nodes = await startNodes(3);
    const jobId = await createClusterJob(nodes[0].url, 'cluster-kill');
    const buyer = buyerClient(nodes[1].url);
    const getJob = () => getJobAction(buyer, { jobId });
    // Any node answers reads of any job (the store is shared).
    expect((await getJobAction(buyerClient(nodes[2].url), { jobId })).status).toBe('running');

    // (f) before the clients start: a handshake captured for one node, replayed at another.
    const owner = (await waitFor(() => ownerOf(nodes, jobId), 30_000, 'the job to have an owner'))!;
    const other = nodes.find((n) => n !== owner)!;
    const victim = generateIdentity();
    const captured = handshakeAuth(victim, owner.url);
    const replayed = new RawClient(victim, other.url);
    const refused = await replayed.connect(captured).then(
      () => 'connected',
      (e: Error & { data?: { code?: string } }) => e.data?.code,
    );
    expect(refused).toBe('AUTH_AUDIENCE_MISMATCH');
    replayed.socket?.close();
    // A signed join the victim sent to the owner, replayed by another key at another node and at the owner.
    const atOwner = new RawClient(victim, owner.url);
    await atOwner.connect();
    const join = atOwner.signed(jobId, 0, STAGES.joinJob, {});
    expect((await atOwner.send(EVENTS.joinJob, join)).ok).toBe(true);
    for (const node of [other, owner]) {
      const attacker = new RawClient(generateIdentity(), node.url);
      await attacker.connect();
      const reply = await attacker.send(EVENTS.joinJob, join);
      expect(reply.error?.code).toBe('AUTH_BAD_SIGNATURE');
      attacker.socket.close();
    }
    // Again on the same connection at the owner: the nonce was used.
    expect((await atOwner.send(EVENTS.joinJob, join)).error?.code).toBe('AUTH_REPLAY');
    // Its own signer sending it again at a node that does not run the job: refused, sent to the owner;
    // and the key's connection at the owner is closed (one connection per key in the whole cluster).
    const ownerClosed = new Promise<string>((resolve) => atOwner.socket.once('disconnect', (r) => resolve(r)));
    const atOther = new RawClient(victim, other.url);
    await atOther.connect();
    expect(await ownerClosed).toBe('io server disconnect');
    const elsewhere = await atOther.send(EVENTS.joinJob, join);
    expect(elsewhere.error?.code).toBe('JOB_ELSEWHERE');
    expect((elsewhere.error as { details?: { ownerUrl?: string } }).details?.ownerUrl).toBe(owner.url);
    atOther.socket.close();

    // (a) three clients, each starting at a different node.
    const clients = startClients(nodes, jobId, 3, 'kill');
    await waitFor(async () => (await getJob()).currentRound >= 1, 240_000, 'round 1 to commit', 100).catch((e) => {
      for (const p of [...nodes.map((n) => n.process), ...clients]) {
        console.log(`---- ${p.pid}\n${p.stderr.slice(-15).join('\n')}\n${p.lines.slice(-10).join('\n')}`);
      }
      throw e;
    });
    const before = (await getJob()).currentRound;
    // The clients that started elsewhere were redirected to the owner, which ran round 1.
    expect(committedLines(owner)).toBeGreaterThanOrEqual(1);

    // (b) SIGKILL the owner mid-job.
    const killedAt = Date.now();
    owner.process.kill('SIGKILL');
    expect(await owner.process.exit).toBe('SIGKILL');
    const survivors = nodes.filter((n) => n !== owner);
    const newOwner = (await waitFor(() => ownerOf(survivors, jobId), 60_000, 'another node to take the job'))!;
    const tookOverMs = Date.now() - killedAt;
    await waitFor(async () => (await getJob()).currentRound > before, 240_000, 'a round after the takeover', 100);
    const nextRoundMs = Date.now() - killedAt;
    console.log(
      JSON.stringify({
        failover: { leaseTtlMs: LEASE_TTL_MS, takeoverMs: tookOverMs, nextRoundCommittedMs: nextRoundMs },
      }),
    );

    const final = await finished(nodes[1].url, jobId, 'the job to finish', 300_000);
    expect(final.status).toBe('completed');
    expect(final.currentRound).toBe(ROUNDS);
    const completed = await expectEachRoundCommittedOnce(newOwner.url, jobId);
    expect(completed[ROUNDS - 1].modelHash).toBe(final.modelHash);
    killRunModelHash = final.modelHash;
    // The rounds after the kill were committed by the new owner.
    expect(committedLines(newOwner)).toBeGreaterThanOrEqual(ROUNDS - before);
    // Every client failed over by itself and saw the job through.
    for (const c of clients) expect(await c.exit).toBe(0);
  });

  it('(b) the failed-over job ends with the model a single coordinator gives with the same seed and data', async () => {
    // Mode none trains deterministically: seeded local training, every client in every round, sums in float64.
    expect(killRunModelHash).toMatch(/^[0-9a-f]{64}$/);
    const single = spawnTs('coordinator/cli.ts', ['--port', '0', '--json', '--log-level', 'info', '--backend', 'cpu']);
    harness.track(single);
    const line = await single.waitForLine((l) => l.includes('"url"'), 120_000);
    const node: Node = {
      name: 'single',
      process: single,
      url: (JSON.parse(line) as { url: string }).url,
      dbName: '(memory store)',
    };
    const jobId = await createClusterJob(node.url, 'single-reference');
    const clients = startClients([node], jobId, 3, 'reference');
    const final = await finished(node.url, jobId, 'the single-node job to finish', 300_000);
    expect(final.status).toBe('completed');
    await expectEachRoundCommittedOnce(node.url, jobId);
    expect(final.modelHash).toBe(killRunModelHash);
    for (const c of clients) expect(await c.exit).toBe(0);
    single.kill('SIGTERM');
    await single.exit;
  });

  it('(c) a paused owner resumed after another node took over commits nothing', async () => {
    const nodes = await startNodes(3);
    const jobId = await createClusterJob(nodes[0].url, 'cluster-pause');
    const getJob = () => getJobAction(buyerClient(nodes[1].url), { jobId });
    const clients = startClients(nodes, jobId, 3, 'pause');
    await waitFor(async () => (await getJob()).currentRound >= 1, 240_000, 'round 1 to commit', 100);
    const owner = (await ownerOf(nodes, jobId))!;
    expect(owner).not.toBeNull();

    owner.process.kill('SIGSTOP');
    const pausedAt = (await getJob()).currentRound;
    const others = nodes.filter((n) => n !== owner);
    const newOwner = (await waitFor(() => ownerOf(others, jobId), 60_000, 'another node to take the lease'))!;
    const committedByOldOwner = committedLines(owner);
    owner.process.kill('SIGCONT');

    // The resumed node learns it lost the lease and sends its clients on; the new owner finishes the job.
    await waitFor(
      async () => owner.process.stderr.some((l) => l.includes('lease lost')),
      60_000,
      'the old owner to see its lease is gone',
    );
    const final = await finished(nodes[1].url, jobId, 'the job to finish');
    expect(final.status).toBe('completed');
    await expectEachRoundCommittedOnce(newOwner.url, jobId);
    // Not one round committed by the old owner after it was paused, and all committed rounds after the pause are the new owner's.
    expect(committedLines(owner)).toBe(committedByOldOwner);
    expect(committedLines(owner)).toBeLessThanOrEqual(pausedAt + 1);
    expect(committedLines(newOwner)).toBeGreaterThanOrEqual(ROUNDS - pausedAt - 1);
    expect(committedLines(owner) + others.reduce((n, o) => n + committedLines(o), 0)).toBe(ROUNDS);
    for (const c of clients) expect(await c.exit).toBe(0);
  });

  it('(4, e) any node serves REST writes for any job; secagg and paillier run with clients spread over the nodes', async () => {
    const nodes = await startNodes(3);

    // secagg: three client processes starting at three different nodes; the validation set is
    // uploaded through a node that does not run the job, and the owner scores every round with it.
    const secaggId = await createClusterJob(nodes[0].url, 'cluster-secagg', {
      rounds: 2,
      secureAggregation: 'secagg',
      secagg: { stageTimeoutMs: 60_000 },
    });
    const secaggOwner = (await waitFor(() => ownerOf(nodes, secaggId), 30_000, 'the secagg job to have an owner'))!;
    const notOwner = nodes.find((n) => n !== secaggOwner)!;
    const validation = join(harness.dir, 'validation.csv');
    writeSeparableCsv(validation, 200, 8, 999);
    const uploaded = await uploadValidationSet(buyerClient(notOwner.url), {
      jobId: secaggId,
      data: readFileSync(validation, 'utf8'),
    });
    expect(uploaded.examples).toBe(200);
    const secaggClients = startClients(nodes, secaggId, 3, 'secagg');
    const secagg = await finished(notOwner.url, secaggId, 'the secagg job to finish');
    expect(secagg.status).toBe('completed');
    for (const c of secaggClients) expect(await exitOf(c)).toBe(0);
    const scored = await waitFor(
      async () => {
        const rounds = (
          (await getRounds(buyerClient(notOwner.url), { jobId: secaggId, limit: 20 })).rounds as Array<
            RoundView & { contribution?: unknown }
          >
        ).filter((r) => r.status === 'completed');
        return rounds.length === 2 && rounds.every((r) => r.contribution !== undefined) ? rounds : null;
      },
      120_000,
      'the owner to score both rounds with the validation set uploaded elsewhere',
    );
    for (const r of scored) expect(r.participants).toHaveLength(3);

    // paillier: the key holder (in this process) and the clients start at different nodes.
    const keys = await generateKeyHolderKeys(1024);
    const paillierId = await createClusterJob(nodes[1].url, 'cluster-paillier', {
      rounds: 2,
      secureAggregation: 'paillier',
      paillier: { ...keyHolderSpecFields(keys), maxExampleWeight: 1000, decryptTimeoutMs: 60_000 },
    });
    // The key holder starts at a node that does not run the job and is sent to the owner.
    const paillierOwner = (await waitFor(
      () => ownerOf(nodes, paillierId),
      30_000,
      'the paillier job to have an owner',
    ))!;
    const holderStart = nodes.find((n) => n !== paillierOwner)!;
    const holder = new KeyHolder({
      url: holderStart.url,
      alternativeUrls: nodes.map((n) => n.url),
      jobId: paillierId,
      keys,
    });
    const decrypted: number[] = [];
    holder.on('decrypted', (e: { round: number }) => decrypted.push(e.round));
    const holderRun = holder.run();
    const paillierClients = startClients(nodes, paillierId, 3, 'paillier');
    expect((await holderRun).status).toBe('completed');
    const paillier = await finished(nodes[2].url, paillierId, 'the paillier job to finish');
    expect(paillier.status).toBe('completed');
    expect(paillier.currentRound).toBe(2);
    expect(decrypted).toEqual([1, 2]);
    for (const c of paillierClients) expect(await exitOf(c)).toBe(0);

    // cancel through a node that does not run the job: it preempts the owner's lease, so the owner
    // commits nothing after the answer and stops its runner; the clients hear the job failed.
    const longId = await createClusterJob(nodes[2].url, 'cluster-cancel', { rounds: 40 });
    const longClients = startClients(nodes, longId, 3, 'cancel');
    await waitFor(
      async () => (await getJobAction(buyerClient(nodes[0].url), { jobId: longId })).currentRound >= 1,
      240_000,
      'round 1 of the long job',
      100,
    );
    const owner = (await ownerOf(nodes, longId))!;
    const elsewhere = nodes.find((n) => n !== owner)!;
    const cancelled = await cancelJob(buyerClient(elsewhere.url), { jobId: longId, reason: 'cancelled elsewhere' });
    expect(cancelled.status).toBe('failed');
    await waitFor(
      async () => owner.process.stderr.some((l) => l.includes('lease lost') && l.includes(longId)),
      60_000,
      'the owner to see its lease preempted',
    );
    for (const c of longClients) expect(await exitOf(c)).toBe(1);
    const after = await getJobAction(buyerClient(owner.url), { jobId: longId });
    expect(after.status).toBe('failed');
    expect(after.currentRound).toBe(cancelled.currentRound);
    const rounds = (await getRounds(buyerClient(owner.url), { jobId: longId, limit: 20 })).rounds as RoundView[];
    const committed = rounds.filter((r) => r.status === 'completed').map((r) => r.round);
    expect(Math.max(...committed)).toBe(cancelled.currentRound);
    expect(committed).toEqual(Array.from({ length: cancelled.currentRound }, (_, i) => i + 1));
  });
});
