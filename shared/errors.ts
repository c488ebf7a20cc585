/**
 * The one error catalog. Every error Tributary reports to a user or peer carries a code from here.
 * Codes are grouped by area (the prefix); each entry has a default message and the HTTP status
 * the REST edge maps it to. Socket errors carry the same `{ code, message }` shape.
 * docs/errors.md lists every code; a test (test/errorCatalog.test.ts) checks it against this object.
 */
export const errorCatalog = {
  // Request / schema validation
  VALIDATION_FAILED: { status: 400, message: 'The request did not match the expected schema.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The payload exceeds the declared size limit.' },
  NOT_FOUND: { status: 404, message: 'No such resource.' },
  INTERNAL: { status: 500, message: 'Internal error.' },

  // Protocol / transport
  PROTOCOL_VERSION_MISMATCH: { status: 400, message: 'The client speaks a different protocol version.' },
  TRANSFER_UNKNOWN: { status: 400, message: 'No upload with this transfer id is in progress.' },
  TRANSFER_CHUNK_INVALID: { status: 400, message: 'An upload chunk is out of order, too large or duplicated.' },
  TRANSFER_INCOMPLETE: { status: 400, message: 'The upload was committed before all chunks arrived.' },
  TRANSFER_HASH_MISMATCH: { status: 400, message: 'The uploaded bytes do not hash to the signed payload hash.' },

  // Identity / authentication
  AUTH_REQUIRED: {
    status: 401,
    message: 'No proof of identity: the connection or request carries no valid key proof, token or API key.',
  },
  AUTH_BAD_SIGNATURE: { status: 401, message: 'The signature does not verify under the client key.' },
  AUTH_STALE: { status: 401, message: 'The signed timestamp is outside the accepted window.' },
  AUTH_REPLAY: { status: 401, message: 'This nonce was already used.' },
  AUTH_AUDIENCE_MISMATCH: { status: 401, message: 'The handshake was signed for another coordinator.' },
  // REST identity and access control (coordinator/auth)
  AUTH_FORBIDDEN: { status: 403, message: 'The caller is identified but may not do this.' },
  AUTH_TOKEN_INVALID: { status: 401, message: 'The bearer token is malformed, expired or not for this coordinator.' },
  AUTH_SIWE_INVALID: {
    status: 401,
    message: 'The Sign-In with Ethereum message or its signature is invalid, expired or replayed.',
  },
  API_KEY_INVALID: { status: 401, message: 'The API key is unknown, revoked or expired.' },
  RATE_LIMITED: { status: 429, message: 'Too many requests; retry after the time given in Retry-After.' },
  QUOTA_EXCEEDED: { status: 403, message: 'The identity has reached its quota for this kind of resource.' },
  UPLOAD_IN_PROGRESS: { status: 409, message: "Another upload of this job's validation set is in progress." },
  MODEL_TOO_LARGE: {
    status: 413,
    message: "The model's parameter count, computed from the spec, exceeds the coordinator's limit.",
  },

  // Codec
  CODEC_MALFORMED: { status: 400, message: 'The binary tensor payload is malformed.' },
  CODEC_LIMIT_EXCEEDED: { status: 413, message: 'The tensor payload declares more than the allowed size.' },
  CODEC_NON_FINITE: { status: 400, message: 'The tensor payload contains NaN or Infinity.' },
  MODEL_SHAPE_MISMATCH: { status: 400, message: "The tensors do not match the model's weight manifest." },

  // Jobs
  JOB_NOT_FOUND: { status: 404, message: 'No job with this id.' },
  JOB_NOT_RUNNING: { status: 409, message: 'The job is not accepting participants.' },
  JOB_SPEC_INVALID: { status: 400, message: 'The job specification is invalid.' },
  JOB_SPEC_MISMATCH: {
    status: 409,
    message: 'The coordinator serves another job spec than the one this provider pinned.',
  },
  JOB_NOT_JOINED: { status: 403, message: 'The client has not joined this job.' },
  JOB_NO_MODEL: { status: 404, message: 'The job has no global model yet.' },
  // Cluster (coordinator/cluster): job leases and fencing tokens
  JOB_ELSEWHERE: { status: 409, message: 'Another coordinator node runs this job; connect to the URL given.' },
  LEASE_LOST: { status: 409, message: "This node no longer holds the job's lease; the write was refused." },
  VALIDATION_SET_INVALID: { status: 400, message: "The validation set does not match the job's input spec." },

  // Rounds
  ROUND_WRONG: { status: 409, message: 'The message is for a round that is not the current one.' },
  ROUND_NOT_SELECTED: { status: 403, message: 'The client was not selected for this round.' },
  ROUND_DUPLICATE_UPDATE: { status: 409, message: 'The client already sent its update for this round.' },
  ROUND_LATE_UPDATE: { status: 409, message: 'The round has stopped collecting updates.' },
  ROUND_QUORUM_NOT_MET: { status: 503, message: 'Fewer clients answered than the round minimum.' },
  ROUND_AGGREGATE_INVALID: {
    status: 422,
    message:
      "The round's aggregate, new model or optimiser state is non-finite or out of range; nothing was committed.",
  },

  // Strategies (robust aggregation, server optimisers)
  STRATEGY_TOO_FEW_UPDATES: {
    status: 503,
    message: 'The round has fewer updates (or cohorts) than the robust aggregation rule needs.',
  },

  // Secure aggregation (SecAgg+)
  SECAGG_STAGE_OUT_OF_ORDER: {
    status: 409,
    message: 'A secure-aggregation message arrived for another stage than the current one.',
  },
  SECAGG_MESSAGE_INVALID: { status: 400, message: 'A secure-aggregation message is malformed or inconsistent.' },
  SECAGG_RECONSTRUCTION_FAILED: { status: 503, message: 'Too few shares survived to remove the masks.' },
  SECAGG_SIGNATURE_INVALID: {
    status: 400,
    message: "A secure-aggregation signature does not verify under the signer's client id.",
  },
  SECAGG_CONSISTENCY_FAILED: {
    status: 409,
    message: 'Too few neighbours signed the same survivor set, or unmasking was asked against another set.',
  },
  SECAGG_PARAMETERS_REFUSED: {
    status: 400,
    message: 'The secure-aggregation session parameters are weaker than, or differ from, what the job spec implies.',
  },
  SECAGG_INPUT_ALREADY_UNMASKED: {
    status: 409,
    message: 'The client already sent a masked input for this round that reached unmasking (or may have).',
  },
  SECAGG_MASK_WORKER_FAILED: {
    status: 500,
    message:
      'A SecAgg+ worker thread (mask sums, signature checks) failed or was closed; that work runs in-thread instead.',
  },

  // Secure aggregation (lattice HE: packed BFV)
  HE_CIPHERTEXT_INVALID: {
    status: 400,
    message: "An encrypted update is not a vector of valid BFV ciphertexts of the job's size and parameter set.",
  },
  HE_SUBMISSION_INVALID: {
    status: 400,
    message: "An he upload's signature over its ciphertexts does not verify for this round attempt.",
  },
  HE_KEYHOLDER_UNAVAILABLE: {
    status: 503,
    message: "The job's HE key holder is not connected or did not answer in time.",
  },
  HE_NOT_KEY_HOLDER: { status: 403, message: "The client is not the job's HE key holder." },
  HE_DECRYPT_FAILED: { status: 502, message: 'The HE key holder could not decrypt the aggregate to a valid sum.' },
  HE_DECRYPT_REFUSED: {
    status: 409,
    message: 'The HE key holder refused to decrypt: the request failed one of its checks, and nothing was decrypted.',
  },

  // Secure aggregation (packed Paillier)
  PAILLIER_CIPHERTEXT_INVALID: {
    status: 400,
    message: "An encrypted update is not a vector of valid ciphertexts of the job's size.",
  },
  PAILLIER_KEYHOLDER_UNAVAILABLE: {
    status: 503,
    message: "The job's key holder is not connected or did not answer in time.",
  },
  PAILLIER_NOT_KEY_HOLDER: { status: 403, message: "The client is not the job's key holder." },
  PAILLIER_DECRYPT_FAILED: { status: 502, message: 'The key holder could not decrypt the aggregate.' },
  PAILLIER_SUBMISSION_INVALID: {
    status: 400,
    message: "A paillier upload's submission signature is missing or does not verify for this round attempt.",
  },
  PAILLIER_DECRYPT_REFUSED: {
    status: 409,
    message: 'The key holder refused to decrypt: the request failed one of its checks, and nothing was decrypted.',
  },

  // Escrow and payouts (jobs with a `chain` config)
  JOB_NOT_FUNDED: {
    status: 409,
    message: "The job's escrow does not hold its budget on chain yet; joins open once it does.",
  },
  PAYOUT_BINDING_INVALID: {
    status: 400,
    message: 'The payout address is missing or its binding signatures do not verify.',
  },
  PAYOUT_NOT_READY: {
    status: 409,
    message: 'The job has not settled on chain yet; payouts are published after settlement.',
  },
  PAYOUT_NOT_FOUND: { status: 404, message: "No payout for this address in the job's settlement." },
  CHAIN_UNAVAILABLE: { status: 503, message: 'The chain RPC cannot be reached or refused the request.' },
  ESCROW_BINDING_INVALID: {
    status: 403,
    message: "The escrow binding or cancel signature is missing, malformed or not the escrow job's buyer's.",
  },
  ESCROW_JOB_UNKNOWN: {
    status: 409,
    message: 'The escrow job the spec names does not exist on chain; create and fund it first.',
  },
  ESCROW_SPEC_MISMATCH: {
    status: 409,
    message: "The escrow job's spec hash is not this spec's canonical hash.",
  },
  ESCROW_ALREADY_BOUND: { status: 409, message: 'Another job is already bound to this escrow job.' },
  ESCROW_JOB_CLOSED: {
    status: 409,
    message: 'The escrow job is settled, recovered or swept: nothing to bind or cancel.',
  },

  // Data marketplace (dataset listings and job access)
  LISTING_NOT_FOUND: { status: 404, message: 'No dataset listing with this id.' },
  LISTING_SIGNATURE_INVALID: {
    status: 401,
    message: "The listing's signature does not verify under its provider's key.",
  },
  LISTING_STALE: {
    status: 401,
    message: 'The signed listing or request is older (or newer) than the accepted window.',
  },
  LISTING_REPLAY: { status: 409, message: 'This signed listing or request was already received.' },
  LISTING_NOT_PROVIDER: { status: 403, message: "The request is not signed by the listing's provider." },
  JOB_ACCESS_DENIED: { status: 403, message: "The job's access policy does not admit this client." },

  // Contribution scoring
  CONTRIBUTION_CLIENT_UNKNOWN: { status: 404, message: 'The client has no scored round in this job.' },

  // Signed round transcripts and audits
  TRANSCRIPT_NOT_FOUND: { status: 404, message: 'The job has no signed transcript for this round.' },
  AUDIT_SOURCE_UNAVAILABLE: {
    status: 502,
    message: "The coordinator's REST API could not be read (unreachable, or not its JSON): the audit could not run.",
  },

  // Differential privacy (job spec `privacy`)
  PRIVACY_BUDGET_UNREACHABLE: {
    status: 400,
    message: 'The privacy budget cannot cover even one round at the given noise.',
  },
  PRIVACY_BUDGET_EXHAUSTED: {
    status: 409,
    message: "The next round would spend more than the job's privacy budget.",
  },

  // Client-side data and training
  DATA_FILE_EMPTY: { status: 400, message: 'The dataset file has no rows.' },
  DATA_COLUMNS_MISMATCH: { status: 400, message: "The dataset columns do not match the job's input spec." },
  DATA_NOT_NUMERIC: { status: 400, message: 'A feature value is not a finite number.' },
  DATA_LABEL_OUT_OF_RANGE: { status: 400, message: "A label is outside the job's label range." },
  DATA_FORMAT_UNSUPPORTED: { status: 400, message: 'The dataset format is not supported.' },
  BACKEND_UNAVAILABLE: { status: 500, message: 'The requested TensorFlow.js backend cannot be loaded.' },

  // Configuration
  CONFIG_INVALID: { status: 400, message: 'The configuration is invalid.' },
  STORE_UNAVAILABLE: { status: 503, message: 'The store cannot be reached.' },
  STORE_BUSY: { status: 503, message: 'The store kept refusing a write under load; nothing was written: try again.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalog;

export const ErrorCodes = Object.fromEntries(Object.keys(errorCatalog).map((k) => [k, k])) as {
  readonly [K in ErrorCode]: K;
};

/** A zod-style issue list, as VALIDATION_FAILED and JOB_SPEC_INVALID carry it. */
export type IssueList = Array<{ path: string[]; message: string }>;

/**
 * What a caller can branch on, per code (viem's typed error details). Codes not listed promise no
 * particular details. Every producer of these codes fills exactly these shapes.
 */
export interface ErrorDetailsByCode {
  VALIDATION_FAILED: IssueList;
  JOB_SPEC_INVALID: IssueList | { parameters: number; maxParameters: number } | { path: string[] } | undefined;
  JOB_NOT_RUNNING: { status: string; reason?: string } | undefined;
  JOB_ELSEWHERE: { ownerUrl: string };
  ROUND_AGGREGATE_INVALID: { members?: string[] } & Record<string, unknown>;
  STRATEGY_TOO_FEW_UPDATES: { rule: string; needed: number; received: number };
  RATE_LIMITED: { retryAfterMs: number } | undefined;
  ROUND_QUORUM_NOT_MET:
    | { stage?: string; dropouts?: Array<{ clientId: string; stage: string; reason: string }> }
    | undefined;
}
/** The details an error with code C carries (unknown for codes that promise none). */
export type ErrorDetails<C extends ErrorCode> = C extends keyof ErrorDetailsByCode ? ErrorDetailsByCode[C] : unknown;

/** Narrows `err` to a TributaryError of `code`, with that code's typed details. */
export function hasCode<C extends ErrorCode>(
  err: unknown,
  code: C,
): err is TributaryError & { readonly code: C; readonly details: ErrorDetails<C> } {
  return err instanceof TributaryError && err.code === code;
}

/** `err` and every `cause` below it, outermost first (bounded, cycles stop the walk). */
export function causeChain(err: unknown, limit = 16): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = err;
  while (current !== undefined && current !== null && chain.length < limit && !chain.includes(current)) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

/** The wire shape of an error, on REST bodies and socket acknowledgements. */
export interface WireError {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

/** A coded error. `message` says what was expected and what arrived. */
export class TributaryError extends Error {
  override readonly name: string = 'TributaryError';
  readonly code: ErrorCode;
  readonly details?: unknown;

  constructor(code: ErrorCode, message?: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message ?? errorCatalog[code].message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  get httpStatus(): number {
    return errorCatalog[this.code].status;
  }

  toWire(): WireError {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCatalog, value);
}

/**
 * Normalises anything thrown into a TributaryError, at the edge (REST handler, socket handler).
 * Unknown throws become INTERNAL, so internals never leak to peers.
 */
export function toTributaryError(err: unknown): TributaryError {
  if (err instanceof TributaryError) return err;
  // zod errors carry `issues`; report them as a validation failure with the paths that failed.
  if (err && typeof err === 'object' && Array.isArray((err as { issues?: unknown }).issues)) {
    const issues = (err as { issues: Array<{ path: PropertyKey[]; message: string }> }).issues;
    const summary = issues
      .slice(0, 5)
      .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    return new TributaryError('VALIDATION_FAILED', `Invalid input: ${summary}`, {
      details: issues.slice(0, 20).map((i) => ({ path: i.path.map(String), message: i.message })),
      cause: err,
    });
  }
  return new TributaryError('INTERNAL', undefined, { cause: err });
}
