import { randomBytes } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { SiweMessage } from 'siwe';
import { TributaryError } from '../../shared/errors';
import type { SiweLoginInput } from '../../shared/schemas/restApi';
import { ethPrincipal, type Principal } from './principal';

/** Options of SiweLogin. */
export interface SiweLoginOptions {
  /** The coordinator's canonical URL (scheme, host, port): the SIWE domain and URI, and the token audience. */
  audience: () => string;
  /** HMAC key of the tokens (HS256); at least 32 bytes. */
  jwtSecret: Uint8Array;
  /** Token lifetime, seconds. */
  tokenTtlSeconds: number;
  /** How far the message's issuedAt may be from the clock, ms. */
  windowMs: number;
  /** How long an issued nonce may be used, ms. @default 300000 */
  nonceTtlMs?: number;
  /** Unused nonces kept at most; past it new ones are refused (RATE_LIMITED). @default 10000 */
  maxOutstandingNonces?: number;
  now?: () => number;
}

const ISSUER = 'tributary';

/**
 * Sign-In with Ethereum (EIP-4361) for wallet holders and browsers, exchanged for a short-lived JWT.
 *
 * 1. `GET /v1/auth/siwe/nonce` hands out a single-use nonce (kept `nonceTtlMs`, bounded in number).
 * 2. The wallet signs an EIP-4361 message for this coordinator's domain and URI with that nonce.
 * 3. `POST /v1/auth/siwe` checks domain, URI, nonce (consumed on first use, success or not), issuedAt
 *    within the window, expiry and the EIP-191 signature (the `siwe` library, ethers' recovery), and
 *    answers an HS256 JWT (`jose`) with `sub` = `eth:<address>`, `aud` = this coordinator's URL, `iss`,
 *    `iat`, `exp` and a random `jti`. Requests send it as `Authorization: Bearer <token>`.
 * The domain and audience binding stop a message or token made for another site or coordinator from
 * being used here; the nonce stops a captured message from being exchanged twice.
 */
export class SiweLogin {
  private readonly nonces = new Map<string, number>();

  constructor(private readonly options: SiweLoginOptions) {
    if (options.jwtSecret.length < 32)
      throw new TributaryError('CONFIG_INVALID', 'The JWT secret needs at least 32 bytes.');
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** A fresh single-use nonce, and the domain and URI the message must name. */
  issueNonce(): { nonce: string; domain: string; uri: string; expiresAt: string } {
    const now = this.now();
    for (const [nonce, expiresAt] of this.nonces) {
      if (expiresAt > now) break; // insertion order is expiry order
      this.nonces.delete(nonce);
    }
    if (this.nonces.size >= (this.options.maxOutstandingNonces ?? 10_000)) {
      throw new TributaryError('RATE_LIMITED', 'Too many sign-in nonces are outstanding; retry in a minute.', {
        details: { scope: 'siwe-nonces', retryAfterSeconds: 60 },
      });
    }
    const nonce = randomBytes(16).toString('hex');
    const expiresAt = now + (this.options.nonceTtlMs ?? 300_000);
    this.nonces.set(nonce, expiresAt);
    const url = new URL(this.options.audience());
    return { nonce, domain: url.host, uri: url.origin, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** Verifies a signed SIWE message and answers a bearer token for its address. */
  async login(input: SiweLoginInput): Promise<{ token: string; expiresAt: string; principal: Principal }> {
    const invalid = (why: string) => new TributaryError('AUTH_SIWE_INVALID', `Sign-In with Ethereum: ${why}`);
    let message: SiweMessage;
    try {
      message = new SiweMessage(input.message);
    } catch {
      throw invalid('the message is not an EIP-4361 message.');
    }
    const audience = new URL(this.options.audience());
    const expiry = this.nonces.get(message.nonce);
    // Consumed now, whatever follows: a nonce is good for one attempt.
    this.nonces.delete(message.nonce);
    const now = this.now();
    if (expiry === undefined || expiry <= now)
      throw invalid('the nonce was not issued by this coordinator, or is used or expired.');
    if (message.domain !== audience.host)
      throw invalid(`the domain is "${message.domain}", expected "${audience.host}".`);
    if (new URL(message.uri).origin !== audience.origin) throw invalid(`the URI must be on ${audience.origin}.`);
    const issuedAt = message.issuedAt ? Date.parse(message.issuedAt) : Number.NaN;
    if (!Number.isFinite(issuedAt) || Math.abs(now - issuedAt) > this.options.windowMs) {
      throw invalid("issuedAt is missing or outside the accepted window of the coordinator's clock.");
    }
    const verified = await message.verify(
      { signature: input.signature, domain: audience.host, nonce: message.nonce, time: new Date(now).toISOString() },
      { suppressExceptions: true },
    );
    if (!verified.success)
      throw invalid(`the signature does not verify for ${message.address} (or the message expired).`);
    const principal: Principal = {
      id: ethPrincipal(message.address),
      via: 'jwt',
      scopes: 'all',
      address: message.address.toLowerCase(),
    };
    const exp = Math.floor(now / 1000) + this.options.tokenTtlSeconds;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(principal.id)
      .setIssuer(ISSUER)
      .setAudience(audience.origin)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(exp)
      .setJti(randomBytes(12).toString('hex'))
      .sign(this.options.jwtSecret);
    return { token, expiresAt: new Date(exp * 1000).toISOString(), principal };
  }

  /** The principal of a bearer token; AUTH_TOKEN_INVALID if it is malformed, expired or for another audience. */
  async verifyToken(token: string): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, this.options.jwtSecret, {
        algorithms: ['HS256'],
        issuer: ISSUER,
        audience: new URL(this.options.audience()).origin,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp', 'sub'],
      });
      const m = /^eth:(0x[0-9a-f]{40})$/.exec(payload.sub ?? '');
      if (!m) throw new Error('unexpected subject');
      return { id: payload.sub!, via: 'jwt', scopes: 'all', address: m[1] };
    } catch (err) {
      throw new TributaryError(
        'AUTH_TOKEN_INVALID',
        'The bearer token is malformed, expired, or not issued by this coordinator; sign in again.',
        { cause: err },
      );
    }
  }
}
