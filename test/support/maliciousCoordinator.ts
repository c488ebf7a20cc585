/**
 * A deliberately malicious coordinator for end-to-end tests: the real `startCoordinator` (REST,
 * sockets, handshakes, round runner, job store) with its `secagg` mode replaced through
 * `StartOptions.modes` by one whose collection runs a scripted attack instead of the protocol. The
 * attack speaks the socket protocol table (secagg:request out, secagg:reply in) to the project's own
 * TributaryClients; it may run a real SecAggPlusServer and rewrite, withhold or invent any request,
 * and play sybils (identities of its own) with the project's SecAggPlusClient in process.
 *
 * An honest client that refuses a request stays silent towards the coordinator; the test watches
 * its coded `modeStepFailed` events, so an `ask` resolves with the refusal's code at once instead of
 * waiting out a stage timeout. That code is the test's observation, not something the adversary
 * learns. Every attempt of a planned job runs the attack for that attempt, then fails (nothing is
 * ever committed), so the round runner retries while the job's maxRoundRetries allows.
 */
import type { TributaryClient } from '../../client/tributaryClient';
import type { ModeStepFailure } from '../../client/updates/clientAggregationMode';
import type {
  CollectionContext,
  Collected,
  CoordinatorAggregationMode,
  Revealed,
  RoundCollection,
  RoundMessage,
} from '../../coordinator/aggregation/aggregationMode';
import { vectorLengthOf } from '../../coordinator/aggregation/aggregationMode';
import { decodeBinaryJson, encodeBinaryJson } from '../../shared/codec/binaryJson';
import { TributaryError } from '../../shared/errors';
import type { SecAggRequest } from '../../shared/schemas/messages';
import {
  bytesToVector,
  type ClientId,
  type ClientToServer,
  ClientToServerSchema,
  type SecAggPlusClient,
  type SecAggPlusServer,
  type SecAggStep,
  type ServerToClient,
} from '../../shared/secagg';

/** What came back for one request: the client's reply, or the code it refused with. */
export type Answer = { reply: ClientToServer; code?: undefined } | { reply?: undefined; code: string };

/** One attempt of a round, as the attack sees it. */
export interface AttemptContext {
  readonly jobId: string;
  readonly round: number;
  readonly attempt: number;
  /** The clients the round runner selected (each was sent its round task and is training). */
  readonly selected: readonly ClientId[];
  /** The job's masked-vector length: its parameter count + 1. */
  readonly vectorLength: number;
  /** Sends one SecAgg+ request to a client and waits for its reply or its coded refusal. */
  ask(clientId: ClientId, message: ServerToClient): Promise<Answer>;
  /** `ask` for every request at once. */
  askAll(requests: ReadonlyMap<ClientId, ServerToClient>): Promise<Map<ClientId, Answer>>;
}

/** The attack run in one attempt's collection. */
export type Attack = (attempt: AttemptContext) => Promise<void>;

/** A sybil: an identity of the coordinator's own, played with the project's SecAggPlusClient. */
export interface Sybil {
  client: SecAggPlusClient;
  input: Uint32Array;
}

interface Pending {
  round: number;
  attempt: number;
  stage: string;
  resolve: (answer: Answer) => void;
}

/** How long an ask waits for a reply or a refusal before the attack fails (a hang, not a slow machine). */
const ASK_LIMIT_MS = 90_000;

/** The malicious coordinator half: install `factory` as StartOptions.modes.secagg, then `plan` each job. */
export class MaliciousSecAgg {
  /** Every coded refusal of a watched client, in order. */
  readonly refusals: Array<ModeStepFailure & { clientId: ClientId }> = [];
  private readonly plans = new Map<string, { attacks: Attack[]; ran: number; settle: (err?: unknown) => void }>();
  private readonly pending = new Map<ClientId, Pending>();

  /** The mode factory for `startCoordinator(config, { modes: { secagg: adversary.factory } })`. */
  readonly factory = (): CoordinatorAggregationMode => ({
    name: 'secagg',
    assertModelFits: () => undefined,
    parts: () => undefined,
    openCollection: (context) => new AttackCollection(this, context),
  });

  /**
   * Runs `attacks[a]` in attempt a of the job's first round; resolves once every attack ran, rejects
   * with the first attack's error. Give the job maxRoundRetries = attacks.length - 1.
   */
  plan(jobId: string, attacks: Attack[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.plans.set(jobId, { attacks, ran: 0, settle: (err) => (err === undefined ? resolve() : reject(err)) });
    });
  }

  /** Feeds a client's coded refusals to the pending asks (and to `refusals`). */
  watch(client: TributaryClient): void {
    client.on('modeStepFailed', (f) => {
      this.refusals.push({ ...f, clientId: client.clientId });
      const p = this.pending.get(client.clientId);
      if (p && p.round === f.round && p.attempt === f.attempt && p.stage === f.stage) {
        this.pending.delete(client.clientId);
        p.resolve({ code: f.code });
      }
    });
  }

  /** The codes a client refused with, in order. */
  codesOf(clientId: ClientId): string[] {
    return this.refusals.filter((r) => r.clientId === clientId).map((r) => r.code);
  }

  /** @internal the attack planned for this attempt, if any. */
  attackFor(context: CollectionContext): { attack: Attack; done: (err?: unknown) => void } | undefined {
    const plan = this.plans.get(context.job.id);
    const attack = plan?.attacks[context.attempt];
    if (!plan || context.round !== 1 || !attack) return undefined;
    return {
      attack,
      done: (err) => {
        plan.ran++;
        if (err !== undefined) plan.settle(err);
        else if (plan.ran === plan.attacks.length) plan.settle();
      },
    };
  }

  /** @internal */
  ask(context: CollectionContext, clientId: ClientId, message: ServerToClient): Promise<Answer> {
    const link = context.directory.link(clientId);
    if (!link) return Promise.resolve({ code: 'DISCONNECTED' });
    if (this.pending.has(clientId)) throw new Error(`an ask of ${clientId} is already pending`);
    const { round, attempt } = context;
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(clientId);
        reject(new Error(`${clientId} neither answered nor refused ${message.stage} within ${ASK_LIMIT_MS} ms`));
      }, ASK_LIMIT_MS);
      this.pending.set(clientId, {
        round,
        attempt,
        stage: message.stage,
        resolve: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
      });
      const request: SecAggRequest = {
        jobId: context.job.id,
        round,
        attempt,
        stage: message.stage,
        payload: encodeBinaryJson(message),
      };
      link.send('secagg:request', request);
    });
  }

  /** @internal a verified secagg:reply from the socket layer. */
  receive(context: CollectionContext, clientId: ClientId, message: RoundMessage): void {
    if (message.name !== 'secaggReply') throw new TributaryError('VALIDATION_FAILED', 'expected a secagg:reply');
    const p = this.pending.get(clientId);
    const { body, data } = message;
    if (!p || body.attempt !== context.attempt || body.stage !== p.stage) {
      throw new TributaryError('ROUND_LATE_UPDATE', `no ${body.stage} request pending for this client`);
    }
    if (body.part)
      throw new Error('the malicious coordinator reads single-part masked vectors only (use a small model)');
    const reply = decodeBinaryJson(body.reply) as Record<string, unknown>;
    if (data) reply.maskedVector = new Uint8Array(data);
    const parsed = ClientToServerSchema.parse(reply);
    this.pending.delete(clientId);
    p.resolve({ reply: parsed });
  }

  /** @internal a selected client left: its pending ask ends. */
  dropped(clientId: ClientId): void {
    const p = this.pending.get(clientId);
    this.pending.delete(clientId);
    p?.resolve({ code: 'DISCONNECTED' });
  }
}

/** One attempt's collection: runs the planned attack, then fails the attempt (nothing is revealed or committed). */
class AttackCollection implements RoundCollection {
  constructor(
    private readonly adversary: MaliciousSecAgg,
    private readonly context: CollectionContext,
  ) {}

  async collect(): Promise<Collected> {
    const planned = this.adversary.attackFor(this.context);
    const ctx: AttemptContext = {
      jobId: this.context.job.id,
      round: this.context.round,
      attempt: this.context.attempt,
      selected: this.context.selected,
      vectorLength: vectorLengthOf(this.context.job.weightManifest),
      ask: (id, m) => this.adversary.ask(this.context, id, m),
      askAll: async (requests) => {
        const ids = [...requests.keys()];
        const answers = await Promise.all(ids.map((id) => this.adversary.ask(this.context, id, requests.get(id)!)));
        return new Map(ids.map((id, i) => [id, answers[i]]));
      },
    };
    if (planned) {
      try {
        await planned.attack(ctx);
        planned.done();
      } catch (err) {
        planned.done(err ?? new Error('attack failed'));
      }
    }
    return {
      failed: 'ROUND_QUORUM_NOT_MET: the malicious coordinator abandons every attempt',
      participants: [],
      failures: [],
    };
  }

  async reveal(): Promise<Revealed> {
    throw new TributaryError('INTERNAL', 'the malicious coordinator never reveals through the round runner');
  }

  receive(clientId: string, message: RoundMessage): void {
    this.adversary.receive(this.context, clientId, message);
  }

  dropped(clientId: string): void {
    this.adversary.dropped(clientId);
  }

  stop(): void {}
}

/**
 * One SecAgg+ stage driven through a real SecAggPlusServer: each request (rewritten, or withheld
 * when `rewrite` returns null) goes to its client over the socket, or to the sybil of that id in
 * process; every reply is handed to the server. Returns what each asked client answered.
 */
export async function deliver(
  attempt: AttemptContext,
  server: SecAggPlusServer,
  step: SecAggStep,
  options: {
    sybils?: ReadonlyMap<ClientId, Sybil>;
    rewrite?: (id: ClientId, request: ServerToClient) => ServerToClient | null;
  } = {},
): Promise<Map<ClientId, Answer>> {
  if (step.done) throw new Error('the session is over');
  const honest = new Map<ClientId, ServerToClient>();
  const answers = new Map<ClientId, Answer>();
  for (const [id, request] of step.requests) {
    const message = options.rewrite ? options.rewrite(id, request) : request;
    if (!message) continue;
    const sybil = options.sybils?.get(id);
    if (!sybil) {
      honest.set(id, message);
      continue;
    }
    try {
      answers.set(id, { reply: await sybil.client.handle(message, sybil.input) });
    } catch (err) {
      answers.set(id, { code: (err as TributaryError).code });
    }
  }
  for (const [id, answer] of await attempt.askAll(honest)) answers.set(id, answer);
  for (const answer of answers.values()) if (answer.reply) server.receive(answer.reply);
  return answers;
}

/** The masked vector in a collect-masked-vectors answer, if one came. */
export function maskedVectorOf(answer: Answer | undefined): Uint32Array | undefined {
  return answer?.reply?.stage === 'collect-masked-vectors' ? bytesToVector(answer.reply.maskedVector) : undefined;
}
