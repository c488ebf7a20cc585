import type { Identity } from '../shared/identity/keyPair';
import { signHttpRequest } from '../shared/identity/httpSignature';

/** The subset of fetch a signed fetch takes: a URL and method, headers and a string or byte body. */
export type SignedFetch = (
  input: string | URL,
  init?: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array; signal?: AbortSignal },
) => Promise<Response>;

/**
 * A fetch that signs every request as `identity` (RFC 9421 HTTP message signature with the Ed25519
 * key, covering method, authority, path, query and the body's Content-Digest), so the coordinator
 * knows who asks: an owner for its jobs, a provider for a private job's model or its own payout.
 * @example
 * const signedFetch = createSignedFetch(loadOrCreateIdentity('client.key'));
 * const res = await signedFetch(new URL(task.modelPath, coordinatorUrl)); // the model of a private job
 */
export function createSignedFetch(identity: Identity, baseFetch: typeof fetch = fetch): SignedFetch {
  return (input, init = {}) => {
    const url = new URL(String(input));
    const method = (init.method ?? 'GET').toUpperCase();
    const signature = signHttpRequest(identity, {
      method,
      url,
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    return baseFetch(url, {
      method,
      headers: { ...init.headers, ...signature },
      ...(init.body !== undefined ? { body: init.body } : {}),
      ...(init.signal ? { signal: init.signal } : {}),
    });
  };
}
