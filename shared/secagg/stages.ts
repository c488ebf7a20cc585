import { TributaryError } from '../errors';

/** SecAgg+ stages, in protocol order (Flower's SecAgg+ names, plus Bonawitz et al.'s consistency check). */
export const SECAGG_STAGES = {
  setup: 'setup',
  shareKeys: 'share-keys',
  collectMaskedVectors: 'collect-masked-vectors',
  consistencyCheck: 'consistency-check',
  unmask: 'unmask',
} as const;
export type SecAggStage = (typeof SECAGG_STAGES)[keyof typeof SECAGG_STAGES];
export const STAGE_ORDER: readonly SecAggStage[] = [
  'setup',
  'share-keys',
  'collect-masked-vectors',
  'consistency-check',
  'unmask',
];

/**
 * A client is idle until the first stage, then in the last stage it answered, or aborted once answering
 * a stage failed (a refused key, signature or parameter): an aborted client answers nothing more.
 */
export type ClientState = 'idle' | SecAggStage | 'aborted';
/** The server is idle, in the stage whose replies it is collecting, done, or aborted. */
export type ServerState = 'idle' | SecAggStage | 'done' | 'aborted';
export const CLIENT_STATES: readonly ClientState[] = ['idle', ...STAGE_ORDER, 'aborted'];
export const SERVER_STATES: readonly ServerState[] = ['idle', ...STAGE_ORDER, 'done', 'aborted'];

/** The only transitions a client makes: each stage once, in order; any stage it entered may abort. */
export const CLIENT_TRANSITIONS: ReadonlyArray<readonly [ClientState, ClientState]> = [
  ['idle', 'setup'],
  ['setup', 'share-keys'],
  ['share-keys', 'collect-masked-vectors'],
  ['collect-masked-vectors', 'consistency-check'],
  ['consistency-check', 'unmask'],
  ['setup', 'aborted'],
  ['share-keys', 'aborted'],
  ['collect-masked-vectors', 'aborted'],
  ['consistency-check', 'aborted'],
  ['unmask', 'aborted'],
];

/** The server's transitions: each stage in order, then done; any stage may abort. */
export const SERVER_TRANSITIONS: ReadonlyArray<readonly [ServerState, ServerState]> = [
  ['idle', 'setup'],
  ['setup', 'share-keys'],
  ['share-keys', 'collect-masked-vectors'],
  ['collect-masked-vectors', 'consistency-check'],
  ['consistency-check', 'unmask'],
  ['unmask', 'done'],
  ['setup', 'aborted'],
  ['share-keys', 'aborted'],
  ['collect-masked-vectors', 'aborted'],
  ['consistency-check', 'aborted'],
  ['unmask', 'aborted'],
];

export function isClientTransition(from: ClientState, to: ClientState): boolean {
  return CLIENT_TRANSITIONS.some(([a, b]) => a === from && b === to);
}
export function isServerTransition(from: ServerState, to: ServerState): boolean {
  return SERVER_TRANSITIONS.some(([a, b]) => a === from && b === to);
}

/** The SecAgg+ codes of the error catalog (shared/errors.ts). */
export type SecAggErrorCode =
  | 'SECAGG_STAGE_OUT_OF_ORDER'
  | 'SECAGG_MESSAGE_INVALID'
  | 'SECAGG_RECONSTRUCTION_FAILED'
  | 'SECAGG_SIGNATURE_INVALID'
  | 'SECAGG_CONSISTENCY_FAILED'
  | 'SECAGG_PARAMETERS_REFUSED'
  | 'SECAGG_INPUT_ALREADY_UNMASKED';

export function secaggError(
  code: SecAggErrorCode,
  message: string,
  details: Record<string, unknown> = {},
): TributaryError {
  return new TributaryError(code, message, { details: { secaggCode: code, ...details } });
}

/** The error for a message whose stage does not follow the current state: "expected X stage, got Y stage". */
export function stageOutOfOrder(expected: string, got: string, who: 'client' | 'server'): TributaryError {
  return secaggError('SECAGG_STAGE_OUT_OF_ORDER', `SecAgg+ ${who}: expected ${expected} stage, got ${got} stage`, {
    expected,
    got,
  });
}
