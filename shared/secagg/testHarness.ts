import { createHash, generateKeyPairSync } from 'node:crypto';
import nacl from 'tweetnacl';
import { type Identity, identityFromSecretKey } from '../identity/keyPair';
import { type SecAggClientOptions, SecAggPlusClient } from './clientProtocol';
import type { ClientId } from './neighbours';
import { type SecAggPolicy, secaggPolicyFor } from './policy';
import { parseSecAggRoundId } from './roundId';
import { SecAggPlusServer, type SecAggPlusServerOptions, type SecAggResult } from './serverProtocol';
import { STAGE_ORDER, type SecAggStage } from './stages';
import { UnmaskedRounds } from './unmaskedRounds';

/** A fresh Ed25519 identity in tweetnacl's format (seed + public key), made with node:crypto (~100x faster). */
export function fastIdentity(): Identity {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const secretKey = new Uint8Array(64);
  secretKey.set(seed);
  secretKey.set(pub, 32);
  return { publicKey: pub, secretKey, clientId: Buffer.from(pub).toString('hex') };
}

/**
 * n Ed25519 identities, by client id (sorted): fresh ones, or with `seed` the same ones every run (the
 * neighbour graph depends on the ids, so a test that needs a particular graph pins them).
 */
export function makeIdentities(n: number, seed?: string): Map<ClientId, Identity> {
  const make = (i: number) =>
    seed === undefined
      ? fastIdentity()
      : identityFromSecretKey(
          nacl.sign.keyPair.fromSeed(createHash('sha256').update(`${seed}:${i}`).digest()).secretKey,
        );
  const ids = Array.from({ length: n }, (_, i) => make(i)).sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
  return new Map(ids.map((i) => [i.clientId, i]));
}

/** The policy of a job whose spec gives exactly this server's parameters (what an honest coordinator runs). */
export function policyOf(server: SecAggPlusServer): SecAggPolicy {
  const p = server.params;
  return secaggPolicyFor(
    { clippingRange: p.clippingRange, neighbourCount: p.neighbourCount, threshold: p.threshold },
    server.minClients,
    p.vectorLength,
  );
}

/** A client for `roundId`'s session, with a fresh guard unless the job's is given. */
export function makeClient(
  identity: Identity,
  policy: SecAggPolicy,
  roundId: string,
  unmaskedRounds?: UnmaskedRounds,
  options: SecAggClientOptions = {},
): SecAggPlusClient {
  const ref = parseSecAggRoundId(roundId);
  if (!ref) throw new Error(`not a SecAgg+ round id: ${roundId}`);
  return new SecAggPlusClient(
    identity,
    policy,
    {
      jobId: ref.jobId,
      round: ref.round,
      attempt: ref.attempt,
      unmaskedRounds: unmaskedRounds ?? new UnmaskedRounds(ref.jobId),
    },
    options,
  );
}

/**
 * Runs one SecAgg+ round in memory (for tests and benchmarks): every request goes to its client and
 * every reply back to the server. A client listed in `dropAt` never answers that stage or later ones
 * (one that leaves at the consistency check is withdrawn before it is sent, as the coordinator does).
 * Clients use the policy of the server's own parameters unless `policy` is given, and `clientOptions`
 * (e.g. a SecAggWorkerPool).
 */
export async function runInMemoryRound(
  options: SecAggPlusServerOptions,
  identities: ReadonlyMap<ClientId, Identity>,
  inputs: ReadonlyMap<ClientId, Uint32Array>,
  dropAt: ReadonlyMap<ClientId, SecAggStage> = new Map(),
  onReply?: (stage: SecAggStage, clientId: ClientId, reply: unknown) => void,
  policy?: SecAggPolicy,
  clientOptions: SecAggClientOptions = {},
): Promise<{ server: SecAggPlusServer; clients: Map<ClientId, SecAggPlusClient>; result: SecAggResult }> {
  const server = new SecAggPlusServer(options);
  const clientPolicy = policy ?? policyOf(server);
  const clients = new Map(
    options.clientIds.map((id) => {
      const identity = identities.get(id);
      if (!identity) throw new Error(`no identity for ${id}`);
      return [id, makeClient(identity, clientPolicy, options.roundId, undefined, clientOptions)];
    }),
  );
  const gone = new Set<ClientId>();
  let step = server.start();
  while (!step.done) {
    const stage = step.stage;
    for (const [id, stageAt] of dropAt) if (STAGE_ORDER.indexOf(stageAt) <= STAGE_ORDER.indexOf(stage)) gone.add(id);
    // A driver that knows a survivor left before the consistency check withdraws it (as the coordinator's does).
    const leaving = [...step.requests.keys()].filter((id) => gone.has(id));
    if (stage === 'consistency-check' && leaving.length > 0) {
      step = server.withdraw(leaving);
      if (step.done) break;
    }
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
