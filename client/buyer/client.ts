import type { z } from 'zod';
import type { Identity } from '../../shared/identity/keyPair';
import { signHttpRequest } from '../../shared/identity/httpSignature';
import { apiErrorFrom, TributaryApiError } from './errors';

/** How the buyer client proves its identity: an Ed25519 key (signs each request), a sign-in token or an API key. */
export type BuyerCredentials =
  | { identity: Identity; token?: never; apiKey?: never }
  | { token: string; identity?: never; apiKey?: never }
  | { apiKey: string; identity?: never; token?: never }
  | { identity?: never; token?: never; apiKey?: never };

/** Options of createBuyerClient. */
export type CreateBuyerClientParameters = {
  /** Coordinator base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Per-request timeout, ms. @default 60000 */
  timeoutMs?: number;
} & BuyerCredentials;

/** A configured connection to one coordinator; every action takes it as its first argument. */
export interface BuyerClient {
  readonly url: string;
  /** The identity requests are made as (`ed25519:<hex>`), when the client signs; null for tokens and anonymous clients. */
  readonly identity: string | null;
  request<T>(options: RequestOptions<T>): Promise<T>;
}

/** One REST call. */
export interface RequestOptions<T> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path below the base URL, e.g. `/v1/jobs/job_x`. */
  path: string;
  query?: Record<string, string | number | undefined>;
  /** A JSON body. */
  json?: unknown;
  /** A raw body and its content type. */
  body?: { bytes: Uint8Array | string; contentType: string };
  /** How to read a 2xx answer: parse JSON with `schema`, or return the bytes. */
  response: { schema: z.ZodType<T> } | { bytes: true } | { empty: true };
}

/**
 * A buyer client for one coordinator. With an `identity` every request is signed (RFC 9421, Ed25519);
 * with a `token` (Sign-In with Ethereum) or an `apiKey` it is sent as a bearer token; with none it
 * is anonymous (public jobs and listings only). Answers are validated with the API's own schemas.
 * @example
 * const client = createBuyerClient({ url: 'http://127.0.0.1:8080', identity: loadOrCreateIdentity('buyer.key') });
 * const job = await createJob(client, { spec });
 */
export function createBuyerClient(parameters: CreateBuyerClientParameters): BuyerClient {
  const base = parameters.url.replace(/\/+$/, '');
  const doFetch = parameters.fetch ?? fetch;
  const timeoutMs = parameters.timeoutMs ?? 60_000;
  const bearer = parameters.token ?? parameters.apiKey;
  return {
    url: base,
    identity: parameters.identity ? `ed25519:${parameters.identity.clientId}` : null,
    async request<T>(options: RequestOptions<T>): Promise<T> {
      const url = new URL(`${base}${options.path}`);
      for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
      const what = `${options.method} ${url.pathname}`;
      const headers: Record<string, string> = { accept: 'application/json' };
      let body: Uint8Array | string | undefined;
      if (options.json !== undefined) {
        body = JSON.stringify(options.json);
        headers['content-type'] = 'application/json';
      } else if (options.body) {
        body = options.body.bytes;
        headers['content-type'] = options.body.contentType;
      }
      if (parameters.identity) {
        Object.assign(
          headers,
          signHttpRequest(parameters.identity, {
            method: options.method,
            url,
            ...(body !== undefined ? { body } : {}),
          }),
        );
      } else if (bearer) headers.authorization = `Bearer ${bearer}`;
      let res: Response;
      try {
        res = await doFetch(url, {
          method: options.method,
          headers,
          ...(body !== undefined ? { body } : {}),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        throw new TributaryApiError('INTERNAL', `Cannot reach the coordinator at ${base}: ${(err as Error).message}`, {
          status: 0,
          request: what,
          cause: err,
        });
      }
      if (!res.ok) throw apiErrorFrom(res.status, await res.json().catch(() => null), what);
      if ('empty' in options.response) return undefined as T;
      if ('bytes' in options.response) return new Uint8Array(await res.arrayBuffer()) as T;
      const parsed = options.response.schema.safeParse(await res.json().catch(() => undefined));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new TributaryApiError(
          'INTERNAL',
          `The coordinator's answer does not match the API: ${issue?.path.join('.')} ${issue?.message}`,
          {
            status: res.status,
            request: what,
            cause: parsed.error,
          },
        );
      }
      return parsed.data;
    },
  };
}
