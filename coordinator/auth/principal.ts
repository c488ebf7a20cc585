import { TributaryError } from '../../shared/errors';
import type { ApiKeyScope } from '../store/store';

/**
 * Who a REST request comes from, once coordinator/auth has checked its proof. The id names the key:
 * `ed25519:<64 hex>` (an HTTP message signature; the hex is the client id the sockets use too) or
 * `eth:0x<40 hex, lowercase>` (Sign-In with Ethereum). An API key acts as the identity that created
 * it, limited to the key's scopes.
 */
export interface Principal {
  id: string;
  /** How the request proved it. */
  via: 'http-signature' | 'jwt' | 'api-key';
  /** What the request may do: everything, or an API key's scopes. */
  scopes: 'all' | readonly ApiKeyScope[];
  /** The Ed25519 client id, for `ed25519:` identities. */
  clientId?: string;
  /** The Ethereum address (lowercase), for `eth:` identities. */
  address?: string;
  /** The API key used, for `api-key`. */
  apiKeyId?: string;
}

declare global {
  namespace Express {
    interface Request {
      /** Set by the authenticate middleware: null for an anonymous request. */
      principal?: Principal | null;
      /** The body's SHA-256 a signed request committed to (Content-Digest), checked once the body is read. */
      signedDigest?: Buffer | null;
      /** Per-request id, echoed in X-Request-Id and on every log line. */
      requestId?: string;
    }
  }
}

/** The principal id of an Ed25519 key (its client id). */
export const ed25519Principal = (clientId: string) => `ed25519:${clientId}`;
/** The principal id of an Ethereum address. */
export const ethPrincipal = (address: string) => `eth:${address.toLowerCase()}`;

/** The principal, or AUTH_REQUIRED (401) for an anonymous request. */
export function requirePrincipal(principal: Principal | null | undefined, what: string): Principal {
  if (!principal) {
    throw new TributaryError(
      'AUTH_REQUIRED',
      `${what} needs an identity: sign the request (RFC 9421, Ed25519), or send a Sign-In with Ethereum token or an API key.`,
    );
  }
  return principal;
}

/** AUTH_FORBIDDEN unless the principal may act with `scope` (API keys carry a subset). */
export function requireScope(principal: Principal, scope: ApiKeyScope): void {
  if (principal.scopes !== 'all' && !principal.scopes.includes(scope)) {
    throw new TributaryError('AUTH_FORBIDDEN', `This API key lacks the scope "${scope}".`, {
      details: { requiredScope: scope },
    });
  }
}
