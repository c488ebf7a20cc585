import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { rateLimit, type Store as RateLimitStore } from 'express-rate-limit';
import { TributaryError } from '../../shared/errors';
import type { Metrics } from '../observability/metrics';

export type { Store as RateLimitStore } from 'express-rate-limit';

/** Options of the REST rate limits. */
export interface RateLimitOptions {
  /** Requests per IP address per window (every /v1 route but health, the docs and the OpenAPI document). */
  perIp: number;
  /** Requests per identity per window (requests that carry one). */
  perIdentity: number;
  /** Window length, ms. */
  windowMs: number;
  /**
   * Where the counters live. @default one express-rate-limit MemoryStore per limiter (per process);
   * pass a shared store (e.g. rate-limit-redis) so several coordinator processes count together.
   */
  store?: (limiter: 'ip' | 'identity') => RateLimitStore;
  metrics: Metrics;
}

/** The 429 every limiter answers: RATE_LIMITED with Retry-After (seconds), counted in the metrics. */
function refuse(limiter: string, metrics: Metrics) {
  return (req: Request, _res: Response, next: NextFunction) => {
    const reset = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
    const retryAfterSeconds = Math.max(1, Math.ceil(((reset?.getTime() ?? Date.now() + 1000) - Date.now()) / 1000));
    metrics.rateLimitHit(limiter);
    next(
      new TributaryError(
        'RATE_LIMITED',
        `Too many requests from this ${limiter === 'ip' ? 'address' : 'identity'}; retry in ${retryAfterSeconds} s.`,
        {
          details: { limiter, retryAfterSeconds },
        },
      ),
    );
  };
}

/**
 * Per-IP and per-identity rate limits (express-rate-limit, fixed windows). The IP limiter runs first,
 * before authentication, so floods of forged or throwaway credentials are cut off by address; the
 * identity limiter runs after it, so one key cannot use many addresses to exceed its share.
 * Both answer 429 RATE_LIMITED with Retry-After and RateLimit headers (IETF draft 8).
 */
export function createRateLimits(options: RateLimitOptions): {
  perIp: RequestHandler;
  perIdentity: RequestHandler;
  close(): Promise<void>;
} {
  const stores: RateLimitStore[] = [];
  const storeFor = (limiter: 'ip' | 'identity') => {
    const store = options.store?.(limiter);
    if (store) stores.push(store);
    return store ? { store } : {};
  };
  const common = {
    windowMs: options.windowMs,
    standardHeaders: 'draft-8' as const,
    legacyHeaders: false,
  };
  const perIp = rateLimit({
    ...common,
    ...storeFor('ip'),
    identifier: 'ip',
    limit: options.perIp,
    handler: refuse('ip', options.metrics),
  });
  const perIdentity = rateLimit({
    ...common,
    ...storeFor('identity'),
    identifier: 'identity',
    limit: options.perIdentity,
    skip: (req) => !req.principal,
    keyGenerator: (req) => req.principal!.id,
    handler: refuse('identity', options.metrics),
  });
  return {
    perIp,
    perIdentity,
    async close() {
      for (const s of stores) await s.shutdown?.();
    },
  };
}
