import { type ErrorCode, errorCatalog, isErrorCode, TributaryError } from '../../shared/errors';

/** Details the coordinator attaches to some codes, typed so callers can branch on them. */
export interface ErrorDetailsByCode {
  VALIDATION_FAILED: Array<{ path: string[]; message: string }> | undefined;
  JOB_SPEC_INVALID: Array<{ path: string[]; message: string }> | Record<string, unknown> | undefined;
  RATE_LIMITED: { retryAfterSeconds: number; limiter?: string; scope?: string };
  QUOTA_EXCEEDED: { resource: 'jobs' | 'listings' | 'api-keys'; limit: number };
  MODEL_TOO_LARGE: { parameters: number; maxParameters: number };
  PAYLOAD_TOO_LARGE: { limit: number } | undefined;
  AUTH_FORBIDDEN: { requiredScope?: string } | undefined;
  JOB_NOT_RUNNING: { status: string; reason?: string } | undefined;
  VALIDATION_SET_INVALID: { cause: ErrorCode } | undefined;
}

/** The details of code C: typed where ErrorDetailsByCode knows them, else unknown. */
export type ErrorDetails<C extends ErrorCode> = C extends keyof ErrorDetailsByCode ? ErrorDetailsByCode[C] : unknown;

/**
 * A coded error from the coordinator's REST API (or from reaching it): a TributaryError with the
 * catalog `code`, the HTTP `status` (0 when the coordinator could not be reached), typed `details`,
 * the request, and the `cause` chain.
 * Narrow with `isApiError(err, 'RATE_LIMITED')` to get typed details.
 * @example
 * try { await createJob(client, { spec }) } catch (err) {
 *   if (isApiError(err, 'RATE_LIMITED')) await sleep(err.details.retryAfterSeconds * 1000);
 * }
 */
export class TributaryApiError<C extends ErrorCode = ErrorCode> extends TributaryError {
  override readonly name: string = 'TributaryApiError';
  declare readonly code: C;
  declare readonly details: ErrorDetails<C>;
  /** The HTTP status (0 when the coordinator could not be reached). */
  readonly status: number;
  /** The request that failed, e.g. "POST /v1/jobs". */
  readonly request: string;

  constructor(
    code: C,
    message: string,
    options: { status: number; details?: unknown; request: string; cause?: unknown },
  ) {
    super(code, `${message} (${code}, ${options.request}${options.status ? ` → ${options.status}` : ''})`, {
      details: options.details,
      cause: options.cause,
    });
    this.status = options.status;
    this.request = options.request;
  }

  /** This error and its causes, outermost first. */
  *chain(): Generator<unknown> {
    let e: unknown = this;
    for (let depth = 0; e !== undefined && depth < 16; depth++) {
      yield e;
      e = (e as { cause?: unknown }).cause;
    }
  }
}

/** Whether `err` is a TributaryApiError (with code `code`, when given). */
export function isApiError<C extends ErrorCode>(err: unknown, code?: C): err is TributaryApiError<C> {
  return err instanceof TributaryApiError && (code === undefined || err.code === code);
}

/** The error a non-2xx answer stands for. */
export function apiErrorFrom(status: number, body: unknown, request: string): TributaryApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  const code: ErrorCode = isErrorCode(error?.code) ? error.code : status === 429 ? 'RATE_LIMITED' : 'INTERNAL';
  const message = typeof error?.message === 'string' ? error.message : errorCatalog[code].message;
  return new TributaryApiError(code, message, { status, details: error?.details, request });
}
