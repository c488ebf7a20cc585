import { z } from 'zod';
import {
  type Ack,
  AggregateCiphertextsSchema,
  AggregateDecryptRequestSchema,
  AggregateResultBodySchema,
  JobFinishedSchema,
  JoinBodySchema,
  JoinResultSchema,
  RoundClosedSchema,
  RoundTaskSchema,
  SecAggReplyBodySchema,
  SecAggRequestSchema,
  type SignedMessage,
  UpdateChunkBodySchema,
  UpdateCommitBodySchema,
} from './messages';
import { HeCiphertextsSchema, HeDecryptRequestSchema } from './heMessages';

/**
 * The socket protocol in one table: every message, its event name, the stage its signature covers,
 * its body and result schemas, and where the coordinator routes it. Both the coordinator's
 * SocketServer and the client's CoordinatorConnection are built from these entries, and socket.io is
 * typed with the event maps derived below, so a message is declared once.
 *
 * Routes: `join` (the job manager admits a provider), `round` (the running round of the job: its
 * aggregation mode's collection), `role` (the job's aggregation mode, for roles other than providers,
 * e.g. the paillier key holder).
 */
export const CLIENT_MESSAGES = {
  joinJob: { event: 'job:join', stage: 'join', route: 'join', body: JoinBodySchema, result: JoinResultSchema },
  updateChunk: {
    event: 'update:chunk',
    stage: 'update-chunk',
    route: 'round',
    body: UpdateChunkBodySchema,
    result: z.undefined(),
  },
  updateCommit: {
    event: 'update:commit',
    stage: 'update-commit',
    route: 'round',
    body: UpdateCommitBodySchema,
    result: z.undefined(),
  },
  secaggReply: {
    event: 'secagg:reply',
    stage: 'secagg-reply',
    route: 'round',
    body: SecAggReplyBodySchema,
    result: z.undefined(),
  },
  keyholderJoin: {
    event: 'keyholder:join',
    stage: 'keyholder-join',
    route: 'role',
    body: JoinBodySchema,
    result: JoinResultSchema,
  },
  aggregateResult: {
    event: 'aggregate:result',
    stage: 'aggregate-result',
    route: 'role',
    body: AggregateResultBodySchema,
    result: z.undefined(),
  },
} as const;

/** Coordinator -> client messages (validated by the client: the coordinator is a trust boundary too). */
export const SERVER_MESSAGES = {
  roundTask: { event: 'round:task', schema: RoundTaskSchema },
  roundClosed: { event: 'round:closed', schema: RoundClosedSchema },
  secaggRequest: { event: 'secagg:request', schema: SecAggRequestSchema },
  aggregateDecrypt: { event: 'aggregate:decrypt', schema: AggregateDecryptRequestSchema },
  aggregateCiphertexts: { event: 'aggregate:ciphertexts', schema: AggregateCiphertextsSchema },
  jobFinished: { event: 'job:finished', schema: JobFinishedSchema },
  error: {
    event: 'tributary:error',
    schema: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  },
  heDecrypt: { event: 'he:decrypt', schema: HeDecryptRequestSchema },
  heCiphertexts: { event: 'he:ciphertexts', schema: HeCiphertextsSchema },
} as const;

export type ClientMessageName = keyof typeof CLIENT_MESSAGES;
export type ClientMessage<N extends ClientMessageName> = (typeof CLIENT_MESSAGES)[N];
export type ClientEventName = ClientMessage<ClientMessageName>['event'];
export type MessageRoute = ClientMessage<ClientMessageName>['route'];
/** The body a client sends with message N (before signing) and what the coordinator parses. */
export type ClientBody<N extends ClientMessageName> = z.output<ClientMessage<N>['body']>;
export type ClientResult<N extends ClientMessageName> = z.output<ClientMessage<N>['result']>;

export type ServerMessageName = keyof typeof SERVER_MESSAGES;
export type ServerEventName = (typeof SERVER_MESSAGES)[ServerMessageName]['event'];
type ServerMessageOf<E extends ServerEventName> = Extract<(typeof SERVER_MESSAGES)[ServerMessageName], { event: E }>;
/** What the coordinator sends with event E. */
export type ServerPayload<E extends ServerEventName> = z.input<ServerMessageOf<E>['schema']>;

/** socket.io's client-to-server event map: every client message is a SignedMessage with an ack. */
export type ClientToServerEvents = {
  [E in ClientEventName]: (message: SignedMessage, ack: (answer: Ack) => void) => void;
};
/** socket.io's server-to-client event map. */
export type ServerToClientEvents = { [E in ServerEventName]: (payload: ServerPayload<E>) => void };
/** What the coordinator keeps on each authenticated socket. */
export interface SocketData {
  clientId: string;
}

/** Event names by message name (the constants older code and tests use). */
export const EVENTS = {
  ...(Object.fromEntries(Object.entries(CLIENT_MESSAGES).map(([k, v]) => [k, v.event])) as {
    [N in ClientMessageName]: ClientMessage<N>['event'];
  }),
  ...(Object.fromEntries(Object.entries(SERVER_MESSAGES).map(([k, v]) => [k, v.event])) as {
    [N in ServerMessageName]: (typeof SERVER_MESSAGES)[N]['event'];
  }),
};

/** Signature stages by message name. */
export const STAGES = Object.fromEntries(Object.entries(CLIENT_MESSAGES).map(([k, v]) => [k, v.stage])) as {
  [N in ClientMessageName]: ClientMessage<N>['stage'];
};
export type Stage = (typeof STAGES)[ClientMessageName];

/** The client message an event name belongs to, if any. */
export function clientMessageNamed(event: string): ClientMessageName | undefined {
  return (Object.keys(CLIENT_MESSAGES) as ClientMessageName[]).find((n) => CLIENT_MESSAGES[n].event === event);
}
