/**
 * A client whose model download is cut before any response (what the 100-client bench hit under
 * load: "round 3 not submitted: TypeError: fetch failed", after which the round waited for the
 * missing client until its deadline) downloads again and takes part in the round; so does one whose
 * download is rate-limited (HTTP 429, what the bench's 100 clients on one address met at the per-IP
 * limit), after the wait the server asks for. Real sockets: the coordinator's HTTP server destroys the
 * connection of, or answers 429 to, the first checkpoint request it sees.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity } from '../shared/identity/keyPair';
import { selectBackend } from '../shared/ml/backend';
import { createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';
import { testBackend } from './support/testBackend';

jest.setTimeout(180_000);

describe('model download under a cut connection or a rate limit', () => {
  let coordinator: Coordinator | undefined;
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    await selectBackend(testBackend());
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await coordinator?.close();
    coordinator = undefined;
  });

  /** A coordinator and a plaintext job of two clients and `rounds` rounds. */
  async function startJob(name: string, rounds: number): Promise<{ coordinator: Coordinator; jobId: string }> {
    coordinator = await startCoordinator({ port: 0, host: '127.0.0.1', logLevel: 'silent', backend: testBackend() });
    const jobId = await createJob(coordinator.url, {
      name,
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [4], numClasses: 2 },
      rounds,
      minClients: 2,
      maxClients: 2,
      secureAggregation: 'none',
      // Without the retry the refused client would miss round 1, which would fail at this deadline.
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 60_000,
      maxRoundRetries: 0,
    });
    return { coordinator, jobId };
  }

  /** Runs two clients on the job to its end: their final statuses and every warning they gave. */
  async function runClients(url: string, jobId: string, seed: number) {
    const warnings: string[] = [];
    for (let i = 0; i < 2; i++) {
      const client = new TributaryClient({
        url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(40, 4, seed + i),
        backend: testBackend(),
        allowPlaintext: true, // mode none
      });
      client.on('warning', (m: string) => warnings.push(m));
      clients.push(client);
    }
    const finished = await Promise.all(clients.map((c) => c.run()));
    return { statuses: finished.map((f) => f.status), warnings };
  }

  it('retries the download and the round completes with every client', async () => {
    const { coordinator, jobId } = await startJob('cut-download', 2);
    let cut = 0;
    const checkpointRequests: string[] = [];
    // Runs before express's listener: the first checkpoint request gets no response at all.
    coordinator.io.httpServer.prependListener('request', (req: IncomingMessage) => {
      if (req.method !== 'GET' || !/\/checkpoints\/\d+$/.test(req.url ?? '')) return;
      checkpointRequests.push(req.url ?? '');
      if (cut === 0) {
        cut++;
        req.socket.destroy();
      }
    });

    const { statuses, warnings } = await runClients(coordinator.url, jobId, 70);
    expect(statuses).toEqual(['completed', 'completed']);
    expect(cut).toBe(1);
    // Two rounds × two clients, plus the retried request.
    expect(checkpointRequests).toHaveLength(5);
    const retried = warnings.filter((w) =>
      w.includes('model download try 1 failed, retrying: TypeError: fetch failed ('),
    );
    expect(retried).toHaveLength(1);
    expect(warnings.filter((w) => w.includes('not submitted'))).toEqual([]);
    const rounds = await coordinator.store.listRounds(jobId);
    expect(rounds.map((r) => [r.round, r.attempt, r.status, r.participants.length])).toEqual([
      [1, 0, 'completed', 2],
      [2, 0, 'completed', 2],
    ]);
  });

  it('waits out a 429 on the download for the time its Retry-After gives, and the round completes', async () => {
    const { coordinator, jobId } = await startJob('limited-download', 1);
    // The first checkpoint request gets the 429 the coordinator's limiter sends; the rest reach express.
    const server = coordinator.io.httpServer;
    const listeners = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
    server.removeAllListeners('request');
    const checkpointRequests: number[] = [];
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'GET' && /\/checkpoints\/\d+$/.test(req.url ?? '')) {
        checkpointRequests.push(Date.now());
        if (checkpointRequests.length === 1) {
          res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'RATE_LIMITED', message: 'Too many requests.' } }));
          return;
        }
      }
      for (const listener of listeners) listener.call(server, req, res);
    });

    const { statuses, warnings } = await runClients(coordinator.url, jobId, 80);
    expect(statuses).toEqual(['completed', 'completed']);
    // Two clients, plus the retried request, which came after the second the 429 asked for.
    expect(checkpointRequests).toHaveLength(3);
    const retried = warnings.filter((w) => w.includes('model download try 1 failed, retrying:') && w.includes('429'));
    expect(retried).toHaveLength(1);
    expect(Math.max(...checkpointRequests.slice(1)) - checkpointRequests[0]).toBeGreaterThanOrEqual(950);
    const rounds = await coordinator.store.listRounds(jobId);
    expect(rounds.map((r) => [r.round, r.status, r.participants.length])).toEqual([[1, 'completed', 2]]);
  });
});
