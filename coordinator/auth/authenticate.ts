import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { TributaryError } from '../../shared/errors';
import { declaredSha256, verifyHttpSignature } from '../../shared/identity/httpSignature';
import type { ReplayGuard } from '../../shared/identity/replayGuard';
import { SignatureVerifier } from '../../shared/identity/signing';
import { type ApiKeyService, isApiKeyToken } from './apiKeys';
import { ed25519Principal, type Principal } from './principal';
import type { SiweLogin } from './siweLogin';

/** What the authenticate middleware needs. */
export interface AuthenticatorDeps {
  /** How far a signature's `created` may be from the clock, ms. */
  windowMs: number;
  replay: ReplayGuard;
  /**
   * A cluster's shared nonces (coordinator/cluster/clusterRedis.ts): a signed request's nonce is also
   * claimed cluster-wide, so a request replayed at another node (behind the same URL) is refused.
   * @default none: this node's replay guard only
   */
  sharedNonces?: { claimNonce(id: string, ttlMs: number): Promise<boolean> };
  apiKeys: ApiKeyService;
  siwe: SiweLogin;
  now?: () => number;
}

/** Whether the request announces a body (Content-Length > 0 or chunked). */
export function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Establishes who a REST request comes from, from its headers alone (the body is not read yet, so a
 * refused request costs no body parsing). Three proofs, at most one per request:
 * - an RFC 9421 HTTP message signature by an Ed25519 key (shared/identity/httpSignature.ts), whose
 *   nonce the replay guard then records; a covered Content-Digest is kept on the request and checked
 *   against the body when a route reads it (assertSignedBody);
 * - `Authorization: Bearer <JWT>` from Sign-In with Ethereum (siweLogin.ts);
 * - `Authorization: Bearer trk_...`, an API key (apiKeys.ts).
 * No proof: the request is anonymous (req.principal = null), and routes that need an identity answer
 * 401. A proof that fails is 401 with its code even on routes anyone may call: a bad credential is
 * never silently downgraded to anonymous.
 */
export class Authenticator {
  private readonly verifier = new SignatureVerifier();

  constructor(private readonly deps: AuthenticatorDeps) {}

  /** Express middleware setting req.principal (and req.signedDigest for signed requests with a body). */
  middleware() {
    return (req: Request, _res: Response, next: NextFunction) => {
      this.authenticate(req).then(() => next(), next);
    };
  }

  async authenticate(req: Request): Promise<void> {
    req.principal = null;
    req.signedDigest = null;
    const signed = req.headers['signature-input'] !== undefined || req.headers.signature !== undefined;
    const authorization = req.headers.authorization;
    if (signed && authorization !== undefined) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        'Send one proof of identity: an HTTP signature or a bearer token, not both.',
      );
    }
    if (signed) {
      const { principal, nonce } = this.fromSignature(req);
      const shared = this.deps.sharedNonces;
      // As long as the local guard keeps it: the signed time then cannot pass the window any more.
      if (shared && !(await shared.claimNonce(`rest:${principal.id}:${nonce}`, 2 * this.deps.windowMs))) {
        throw new TributaryError('AUTH_REPLAY', 'This signature nonce was already used at a node of this cluster.');
      }
      req.principal = principal;
    } else if (authorization !== undefined) req.principal = await this.fromBearer(authorization);
  }

  private fromSignature(req: Request): { principal: Principal; nonce: string } {
    const host = req.headers.host ?? '';
    const url = new URL(`${req.protocol}://${host}${req.originalUrl}`);
    // The signature covers the normalised path (what URL and fetch produce); a raw path that differs
    // (dot segments, ...) would be routed as one path and signed as another.
    if (url.pathname !== req.originalUrl.split('?')[0]) {
      throw new TributaryError('AUTH_BAD_SIGNATURE', 'HTTP signature: the request path is not in normal form.');
    }
    const headers: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(req.headers))
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    const nowMs = this.deps.now?.() ?? Date.now();
    const withBody = hasBody(req);
    const parsed = verifyHttpSignature(
      { method: req.method, url, headers },
      { verifier: this.verifier, windowMs: this.deps.windowMs, nowMs, hasBody: withBody },
    );
    if (withBody) {
      const digest = declaredSha256(headers['content-digest']);
      if (!digest)
        throw new TributaryError('AUTH_BAD_SIGNATURE', 'HTTP signature: Content-Digest must carry a sha-256 digest.');
      req.signedDigest = digest;
    }
    // After the signature verifies, so only the key's holder can use up its nonce budget.
    this.deps.replay.check(parsed.params.keyid, parsed.params.nonce);
    const principal: Principal = {
      id: ed25519Principal(parsed.params.keyid),
      via: 'http-signature',
      scopes: 'all',
      clientId: parsed.params.keyid,
    };
    return { principal, nonce: parsed.params.nonce };
  }

  private async fromBearer(authorization: string): Promise<Principal> {
    const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,4096})$/.exec(authorization.trim());
    if (!m) throw new TributaryError('AUTH_TOKEN_INVALID', 'Authorization must be "Bearer <token>".');
    return isApiKeyToken(m[1]) ? this.deps.apiKeys.verify(m[1]) : this.deps.siwe.verifyToken(m[1]);
  }
}

/**
 * AUTH_BAD_SIGNATURE unless a signed request's body hashes to the SHA-256 its signature covers.
 * Returns the body's SHA-256 (computed once here, for callers that record it).
 */
export function assertSignedBody(req: Request, body: Uint8Array): Buffer {
  const actual = createHash('sha256').update(body).digest();
  if (req.signedDigest && !timingSafeEqual(actual, req.signedDigest)) {
    throw new TributaryError(
      'AUTH_BAD_SIGNATURE',
      'HTTP signature: the body does not match the signed Content-Digest (it was altered in transit or signed wrongly).',
    );
  }
  return actual;
}
