import { SecAggPlusServer } from '../shared/secagg';
import type { SecAggStage } from '../shared/secagg/stages';
import { makeClient, makeIdentities, policyOf } from '../shared/secagg/testHarness';
import { round } from './harness';

/** Bytes a message would take on the wire: binary fields at their length, other leaves as JSON. */
function wireBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.length;
  if (value instanceof Uint32Array) return value.byteLength;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + wireBytes(v), 2);
  if (value && typeof value === 'object')
    return Object.entries(value).reduce((n, [k, v]) => n + k.length + 3 + wireBytes(v), 2);
  return JSON.stringify(value ?? null).length;
}

/**
 * One SecAgg+ round in process (no sockets): n clients with L-value vectors, timing the clients'
 * work and the server's separately, and counting each client's upload bytes, for the sparse
 * neighbour graph (k = O(log n)) and, for comparison, the complete graph (k = n - 1, original SecAgg).
 */
export async function secaggBench(n = 100, L = 100_000, neighbourCounts: Array<number | 'log'> = ['log', n - 1]) {
  const runs = [];
  for (const k of neighbourCounts) {
    const identities = makeIdentities(n);
    const ids = [...identities.keys()];
    const server = new SecAggPlusServer({
      roundId: 'bench:1:0',
      clientIds: ids,
      vectorLength: L,
      ...(k === 'log' ? {} : { neighbourCount: k }),
    });
    // Each client verifies its neighbours' key and survivor-set signatures and signs twice (node:crypto).
    const policy = policyOf(server);
    const clients = new Map(ids.map((id) => [id, makeClient(identities.get(id)!, policy, 'bench:1:0')]));
    const inputs = new Map(ids.map((id, i) => [id, new Uint32Array(L).fill(i)]));
    let clientMs = 0;
    let serverMs = 0;
    let upload = 0;
    let t = performance.now();
    let step = server.start();
    serverMs += performance.now() - t;
    while (!step.done) {
      const stage: SecAggStage = step.stage;
      for (const [id, request] of step.requests) {
        t = performance.now();
        const reply = await clients.get(id)!.handle(request, inputs.get(id));
        clientMs += performance.now() - t;
        upload += wireBytes(reply);
        t = performance.now();
        server.receive(reply);
        serverMs += performance.now() - t;
      }
      t = performance.now();
      step = await server.advance();
      serverMs += performance.now() - t;
      void stage;
    }
    const neighbours = (server as unknown as { params?: { neighbourCount?: number } }).params?.neighbourCount ?? k;
    runs.push({
      neighbours: k === 'log' ? `log (${neighbours})` : String(k),
      contributors: step.result.contributors.length,
      clientMsPerClient: round(clientMs / n),
      serverMs: round(serverMs),
      uploadBytesPerClient: Math.round(upload / n),
      /** Upload relative to a plaintext float32 update of the same length. */
      uploadExpansionVsPlaintext: round(upload / n / (4 * L)),
    });
  }
  return { clients: n, parameters: L, runs };
}
