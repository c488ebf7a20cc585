/**
 * A cluster's Redis, for real (issue 16): two coordinators on one FerretDB and one redis-server that
 * this test starts on 127.0.0.1 and kills by PID. Both nodes answer to one shared public URL (as
 * behind a load balancer), which is where a per-node replay cache is not enough.
 *
 * - A handshake used at one node and replayed at the other is refused (AUTH_REPLAY) through the
 *   shared nonces (SET NX PX); the same two nodes without Redis accept the replay, which is why the
 *   cache is shared.
 * - A signed REST request (RFC 9421) sent to one node and replayed at the other, as a balancer would
 *   forward it, is refused (AUTH_REPLAY) through the same shared nonces; without Redis it passes.
 * - One connection per key in the whole cluster: a key connecting at node B closes its connection at
 *   node A (a notice through the Redis adapter's serverSideEmit), ordered by the handshakes the key
 *   signed, so a late notice of an older connection never closes a newer one.
 * - (d) Redis killed and restarted while a job waits for its quorum: handshakes are refused while it
 *   is down (fail closed) and the client that arrives then keeps retrying (STORE_UNAVAILABLE is not
 *   fatal), the connected client stays, the job completes once Redis is back, and cross-node
 *   eviction works again.
 */
import { request as httpRequest } from 'node:http';
import { handshakeAuth } from '../client/coordinatorConnection';
import { TributaryClient } from '../client/tributaryClient';
import type { Coordinator } from '../coordinator/server';
import { signHttpRequest } from '../shared/identity/httpSignature';
import { generateIdentity } from '../shared/identity/keyPair';
import { ClusterHarness, describeWithCluster } from './support/clusterNodes';
import { waitFor } from './support/processes';
import { RawClient } from './support/rawClient';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(300_000);

const LB_URL = 'http://lb.tributary.test';
const describeIf = describeWithCluster('cluster Redis tests');

/** POSTs `body` to `nodeUrl` with `headers` and the Host of `publicUrl` (as a load balancer forwards it): "status code". */
function postAs(nodeUrl: string, publicUrl: string, headers: Record<string, string>, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${nodeUrl}/v1/jobs`,
      {
        method: 'POST',
        headers: { ...headers, host: new URL(publicUrl).host, 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        res.on('end', () => {
          const code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? 'ok';
          resolve(`${res.statusCode} ${code}`);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** How a connection attempt ended: 'connected' or the refusal's error code. */
async function outcome(url: string, auth: unknown): Promise<string> {
  const raw = new RawClient(generateIdentity(), url);
  try {
    await raw.connect(auth);
    return 'connected';
  } catch (err) {
    return (err as { data?: { code?: string } }).data?.code ?? String(err);
  } finally {
    raw.socket?.close();
  }
}

describeIf('a cluster on Redis', () => {
  let harness: ClusterHarness;

  beforeAll(async () => {
    harness = await ClusterHarness.start(3_000);
  });
  afterAll(async () => {
    await harness?.stop();
  });

  /** Two in-process nodes on a database of their own, both answering to LB_URL. */
  const startNodes = (withRedis: boolean) => harness.startInProcessNodes(2, { redis: withRedis, publicUrls: [LB_URL] });
  const stop = (nodes: Coordinator[]) => harness.closeNodes(nodes);

  it('refuses a handshake replayed at another node behind the same URL; without Redis it would pass', async () => {
    const [a, b] = await startNodes(true);
    const victim = generateIdentity();
    const captured = handshakeAuth(victim, LB_URL);
    expect(await outcome(a.url, captured)).toBe('connected');
    expect(await outcome(b.url, captured)).toBe('AUTH_REPLAY');
    // At the node that saw it first, too (its own cache and the shared one).
    expect(await outcome(a.url, captured)).toBe('AUTH_REPLAY');
    await stop([a, b]);

    // Control: the same two nodes without the shared cache let the replay in at the second node.
    const [c, d] = await startNodes(false);
    const again = handshakeAuth(victim, LB_URL);
    expect(await outcome(c.url, again)).toBe('connected');
    expect(await outcome(d.url, again)).toBe('connected');
    await stop([c, d]);
  });

  it('refuses a signed REST request replayed at another node behind the same URL; without Redis it would pass', async () => {
    const buyer = generateIdentity();
    const url = `${LB_URL}/v1/jobs`;
    const body = JSON.stringify({
      name: 'signed once',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [4], numClasses: 2 },
      rounds: 1,
      minClients: 1,
      secureAggregation: 'none',
    });
    // One signed request, sent to each node as the balancer would (same Host, same headers).
    const replayAt = async (nodes: Coordinator[]) => {
      const headers = signHttpRequest(buyer, { method: 'POST', url, body });
      const codes: string[] = [];
      for (const node of nodes) codes.push(await postAs(node.url, LB_URL, headers, body));
      return codes;
    };
    const [a, b] = await startNodes(true);
    expect(await replayAt([a, b])).toEqual(['201 ok', '401 AUTH_REPLAY']);
    const named = async (node: Coordinator) =>
      (await node.store.listJobs()).filter((j) => j.owner === `ed25519:${buyer.clientId}`);
    expect(await named(a)).toHaveLength(1);
    await stop([a, b]);
    // Control: without the shared nonces the second node accepts the replay and creates a second job.
    const [c, d] = await startNodes(false);
    expect(await replayAt([c, d])).toEqual(['201 ok', '201 ok']);
    expect(await named(c)).toHaveLength(2);
    await stop([c, d]);
  });

  it('keeps one connection per key in the whole cluster', async () => {
    const [a, b] = await startNodes(true);
    const key = generateIdentity();
    const first = new RawClient(key, a.url);
    await first.connect();
    const closed = new Promise<string>((resolve) => first.socket.once('disconnect', (reason) => resolve(reason)));
    const second = new RawClient(key, b.url);
    await second.connect();
    expect(await closed).toBe('io server disconnect');
    expect(second.socket.connected).toBe(true);
    // Another key at node B leaves a connection at node A alone.
    const other = new RawClient(generateIdentity(), a.url);
    await other.connect();
    const stranger = new RawClient(generateIdentity(), b.url);
    await stranger.connect();
    await new Promise((r) => setTimeout(r, 500));
    expect(other.socket.connected).toBe(true);
    for (const r of [second, other, stranger]) r.socket.close();
    await stop([a, b]);
  });

  it("orders a key's connections by its signed handshakes: a notice of an older one, however late, closes nothing newer", async () => {
    const [a, b] = await startNodes(true);
    // Handshakes signed before a node started are refused: let a moment pass.
    await new Promise((r) => setTimeout(r, 1_500));
    const key = generateIdentity();
    const now = Date.now();
    // The connection signed later arrives first (at A); the one signed earlier arrives second (at B),
    // as when a stale connection's notice is delivered late: A's must stay.
    const newer = new RawClient(key, a.url);
    await newer.connect(handshakeAuth(key, a.url, now));
    const older = new RawClient(key, b.url);
    await older.connect(handshakeAuth(key, b.url, now - 1_000));
    await new Promise((r) => setTimeout(r, 500));
    expect(newer.socket.connected).toBe(true);
    // The newest handshake closes both: A's through the notice, B's locally.
    const closedAtA = new Promise<string>((resolve) => newer.socket.once('disconnect', (reason) => resolve(reason)));
    const newest = new RawClient(key, b.url);
    await newest.connect(handshakeAuth(key, b.url, now + 1_000));
    expect(await closedAtA).toBe('io server disconnect');
    expect(newest.socket.connected).toBe(true);
    for (const r of [older, newest]) r.socket.close();
    await stop([a, b]);
  });

  it('(d) keeps the federation running through a Redis restart', async () => {
    const [a, b] = await startNodes(true);
    const rounds = 4;
    const job = await a.jobs.createJob({
      name: 'redis-restart',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
      input: { shape: [8], numClasses: 2 },
      rounds,
      minClients: 2,
      secureAggregation: 'none',
      localEpochs: 1,
      batchSize: 32,
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 120_000,
    });
    // The clients start at node B (not the owner) and are sent to node A.
    const client = (i: number) =>
      new TributaryClient({
        url: b.url,
        alternativeUrls: [a.url],
        jobId: job.id,
        identity: generateIdentity(),
        dataset: separableDataset(300, 8, 10 + i),
        backend: 'cpu',
        allowPlaintext: true, // mode none
        maxReconnectDelayMs: 500,
      });
    const firstRun = client(0).run();
    await waitFor(async () => a.directory.members(job.id).length === 1, 60_000, 'the first client to join', 50);

    await harness.stopRedis();
    // Redis down: new handshakes fail closed (the nonce cannot be claimed cluster-wide)...
    expect(await outcome(b.url, handshakeAuth(generateIdentity(), LB_URL))).toBe('STORE_UNAVAILABLE');
    // ...so the second client, started now, keeps retrying; the job waits for its quorum.
    const secondRun = client(1).run();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(a.directory.members(job.id)).toHaveLength(1);
    expect((await a.store.getJob(job.id))!.currentRound).toBe(0);
    await harness.restartRedis();

    // Redis back: the second client gets in, and the job runs to the end with the first one still on.
    const finished = await Promise.all([firstRun, secondRun]);
    for (const f of finished) expect(f.status).toBe('completed');
    const final = (await a.store.getJob(job.id))!;
    expect(final.currentRound).toBe(rounds);
    const completed = (await a.store.listRounds(job.id)).filter((r) => r.status === 'completed');
    expect(completed.map((r) => r.round)).toEqual([1, 2, 3, 4]);
    for (const r of completed) expect(r.participants).toHaveLength(2);

    // Back: handshakes pass and cross-node eviction works again once both nodes have reconnected.
    const key = generateIdentity();
    await waitFor(
      async () => (await outcome(a.url, handshakeAuth(generateIdentity(), LB_URL))) === 'connected',
      30_000,
      'Redis to be back',
    );
    const first = new RawClient(key, a.url);
    await first.connect();
    const closed = new Promise<string>((resolve) => first.socket.once('disconnect', (reason) => resolve(reason)));
    const second = new RawClient(key, b.url);
    await second.connect();
    expect(await closed).toBe('io server disconnect');
    second.socket.close();
    await stop([a, b]);
  });
});
