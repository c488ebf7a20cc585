import type { RequestHandler, Router } from 'express';
import { TributaryError } from '../../shared/errors';
import type { ApiKeyService } from '../auth/apiKeys';
import { type Principal, requirePrincipal } from '../auth/principal';
import type { SiweLogin } from '../auth/siweLogin';
import type { AuditLog } from '../observability/auditLog';
import type { ApiKeyRecord } from '../store/store';
import type { Logger } from '../logger';
import { type ApiDocument, mountRoute } from './apiRoute';
import {
  CreateApiKeySchema,
  SiweLoginSchema,
  ApiKeyListSchema,
  ApiKeyParamsSchema,
  ApiKeyViewSchema,
  CreatedApiKeySchema,
  SessionSchema,
  SiweNonceSchema,
  WhoAmISchema,
} from '../../shared/schemas/restApi';
import { jsonBody } from './body';

/** What the identity routes need. */
export interface AuthRoutesDeps {
  siwe: SiweLogin;
  apiKeys: ApiKeyService;
  audit: AuditLog;
  logger: Logger;
  maxJsonBytes: number;
  /** Admits a large body before it is read (bodyGate.ts). */
  gate: RequestHandler;
}

function keyView(k: ApiKeyRecord) {
  return {
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    createdAt: k.createdAt.toISOString(),
    expiresAt: k.expiresAt.toISOString(),
    ...(k.revokedAt ? { revokedAt: k.revokedAt.toISOString() } : {}),
  };
}

/** API keys are managed by a signature or a sign-in token, never by another API key. */
function keyManager(principal: Principal | null | undefined, what: string): Principal {
  const p = requirePrincipal(principal, what);
  if (p.via === 'api-key') {
    throw new TributaryError(
      'AUTH_FORBIDDEN',
      `${what} needs a signed request or a sign-in token; an API key cannot manage keys.`,
    );
  }
  return p;
}

/** Mounts /auth (Sign-In with Ethereum, whoami) and /api-keys on the /v1 router. */
export function mountAuthRoutes(r: Router, doc: ApiDocument, deps: AuthRoutesDeps): void {
  const writeAudit = (entry: Parameters<AuditLog['record']>[0]) =>
    deps.audit
      .record(entry)
      .catch((err) => deps.logger.error('audit write failed', { action: entry.action, message: String(err) }));

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/auth/siwe/nonce',
      tag: 'identity',
      auth: 'none',
      summary: 'A single-use nonce for a Sign-In with Ethereum (EIP-4361) message',
      responses: {
        200: { description: 'The nonce, and the domain and URI the message must name.', schema: SiweNonceSchema },
      },
    },
    (_req, res) => {
      res.json(deps.siwe.issueNonce());
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'post',
      path: '/auth/siwe',
      tag: 'identity',
      auth: 'none',
      summary: 'Exchange a signed SIWE message for a short-lived bearer token',
      body: { contentType: 'application/json', schema: SiweLoginSchema },
      responses: { 200: { description: 'A bearer token for eth:<address>.', schema: SessionSchema } },
    },
    ...jsonBody(16 * 1024),
    async (req, res) => {
      const session = await deps.siwe.login(SiweLoginSchema.parse(req.body));
      res.json({
        token: session.token,
        tokenType: 'Bearer',
        expiresAt: session.expiresAt,
        identity: session.principal.id,
      });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/auth/whoami',
      tag: 'identity',
      auth: 'required',
      summary: 'The identity this request proves',
      responses: { 200: { description: 'The identity, how it was proven, and its scopes.', schema: WhoAmISchema } },
    },
    (req, res) => {
      const p = requirePrincipal(req.principal, 'whoami');
      res.json({ identity: p.id, via: p.via, scopes: p.scopes });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'post',
      path: '/api-keys',
      tag: 'identity',
      auth: 'required',
      summary: 'Create an API key (shown once)',
      body: { contentType: 'application/json', schema: CreateApiKeySchema },
      responses: { 201: { description: 'The key, with its token.', schema: CreatedApiKeySchema } },
    },
    (req, res, next) => {
      res.locals.principal = keyManager(req.principal, 'Creating an API key');
      next();
    },
    ...jsonBody(deps.maxJsonBytes, deps.gate),
    async (req, res) => {
      const principal = res.locals.principal as Principal;
      const { record, token } = await deps.apiKeys.create(principal, CreateApiKeySchema.parse(req.body));
      await writeAudit({
        action: 'api-key.created',
        actor: principal,
        digests: {},
        details: { keyId: record.id, scopes: record.scopes.join(' '), expiresAt: record.expiresAt.toISOString() },
      });
      res.status(201).json({ ...keyView(record), key: token });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/api-keys',
      tag: 'identity',
      auth: 'required',
      summary: "The caller's API keys (never their tokens)",
      responses: { 200: { description: 'The keys, newest first (at most 100).', schema: ApiKeyListSchema } },
    },
    async (req, res) => {
      const principal = keyManager(req.principal, 'Listing API keys');
      res.json({ keys: (await deps.apiKeys.list(principal)).slice(0, 100).map(keyView) });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'delete',
      path: '/api-keys/:keyId',
      tag: 'identity',
      auth: 'required',
      summary: 'Revoke one of your API keys',
      params: ApiKeyParamsSchema,
      responses: { 200: { description: 'The revoked key.', schema: ApiKeyViewSchema } },
    },
    async (req, res) => {
      const principal = keyManager(req.principal, 'Revoking an API key');
      const revoked = await deps.apiKeys.revoke(principal, String(req.params.keyId));
      await writeAudit({ action: 'api-key.revoked', actor: principal, digests: {}, details: { keyId: revoked.id } });
      res.json(keyView(revoked));
    },
  );
}
