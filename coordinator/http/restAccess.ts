import { randomBytes } from 'node:crypto';
import { ReplayGuard } from '../../shared/identity/replayGuard';
import { ApiKeyService } from '../auth/apiKeys';
import { Authenticator } from '../auth/authenticate';
import { SiweLogin } from '../auth/siweLogin';
import type { CoordinatorConfig } from '../config';
import { AuditLog } from '../observability/auditLog';
import type { Store } from '../store/store';
import { ValidationSetParser } from './validationSetParser';

/** The REST API's identity services, audit trail and upload parser, built from the configuration. */
export function createRestAccess(options: {
  config: CoordinatorConfig;
  store: Store;
  audience: () => string;
  /** The audit trail, when other parts of the coordinator write to it too. @default a new AuditLog on `store` */
  audit?: AuditLog;
  /** A cluster's shared nonces (signed requests replayed at another node are refused). @default none */
  sharedNonces?: { claimNonce(id: string, ttlMs: number): Promise<boolean> };
}) {
  const { config, store } = options;
  const replay = new ReplayGuard({
    windowMs: config.authWindowMs,
    maxPerKey: config.replayNoncesPerKey,
    maxTotal: config.replayNoncesTotal,
  });
  const apiKeys = new ApiKeyService(store, { maxKeysPerOwner: config.maxApiKeysPerIdentity });
  const siwe = new SiweLogin({
    audience: options.audience,
    // Without a configured secret, tokens are valid only as long as this process runs.
    jwtSecret: config.jwtSecret ? Buffer.from(config.jwtSecret, 'hex') : randomBytes(32),
    tokenTtlSeconds: config.sessionTtlSeconds,
    windowMs: config.authWindowMs,
  });
  return {
    apiKeys,
    siwe,
    authenticator: new Authenticator({
      windowMs: config.authWindowMs,
      replay,
      apiKeys,
      siwe,
      ...(options.sharedNonces ? { sharedNonces: options.sharedNonces } : {}),
    }),
    audit: options.audit ?? new AuditLog(store),
    parser: new ValidationSetParser(),
  };
}
