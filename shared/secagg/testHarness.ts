import { SecAggPlusClient } from './clientProtocol';
import { SecAggPlusServer, type SecAggPlusServerOptions, type SecAggResult } from './serverProtocol';
import type { ClientId } from './neighbours';
import type { SecAggStage } from './stages';

/**
 * Runs one SecAgg+ round in memory (for tests and benchmarks): every request goes to its client and
 * every reply back to the server. A client listed in `dropAt` never answers that stage or later ones.
 */
export async function runInMemoryRound(
  options: SecAggPlusServerOptions,
  inputs: ReadonlyMap<ClientId, Uint32Array>,
  dropAt: ReadonlyMap<ClientId, SecAggStage> = new Map(),
  onReply?: (stage: SecAggStage, clientId: ClientId, reply: unknown) => void,
): Promise<{ server: SecAggPlusServer; clients: Map<ClientId, SecAggPlusClient>; result: SecAggResult }> {
  const server = new SecAggPlusServer(options);
  const clients = new Map(options.clientIds.map((id) => [id, new SecAggPlusClient(id)]));
  const order: SecAggStage[] = ['setup', 'share-keys', 'collect-masked-vectors', 'unmask'];
  const gone = new Set<ClientId>();
  let step = server.start();
  while (!step.done) {
    const stage = step.stage;
    for (const [id, stageAt] of dropAt) if (order.indexOf(stageAt) <= order.indexOf(stage)) gone.add(id);
    for (const [id, request] of step.requests) {
      if (gone.has(id)) continue;
      const reply = await clients.get(id)!.handle(request, inputs.get(id));
      onReply?.(stage, id, reply);
      server.receive(reply);
    }
    step = await server.advance();
  }
  return { server, clients, result: step.result };
}
