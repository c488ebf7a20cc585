import type { NextFunction, Request, Response } from 'express';
import { TributaryError } from '../../shared/errors';
import type { Metrics } from '../observability/metrics';

/** Options of the large-body gate. */
export interface BodyGateOptions {
  /** Bodies above this many bytes (or of unknown length) pass through the gate. */
  thresholdBytes: number;
  /** Large bodies one identity may have in flight. */
  perIdentity: number;
  /** Large bodies one IP address may have in flight. */
  perIp: number;
  /** Large bodies in flight in all. */
  total: number;
  metrics: Metrics;
}

/**
 * Bounds how many large request bodies are being read and parsed at once, per identity, per address
 * and in all, before any is read. Parsing a 2 MB job spec takes the event loop ~20 ms; twenty sent at
 * once would hold it for 400 ms, and /v1/health (and every socket) with it. Past a bound the request is
 * refused at once with 429 RATE_LIMITED (Retry-After: 1), so a flood costs the coordinator only what
 * it admits. Small bodies are not gated. Validation-set uploads additionally run one per job.
 */
export function largeBodyGate(options: BodyGateOptions) {
  const byIdentity = new Map<string, number>();
  const byIp = new Map<string, number>();
  let total = 0;
  const inc = (map: Map<string, number>, key: string, d: number) => {
    const n = (map.get(key) ?? 0) + d;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
  };
  return (req: Request, res: Response, next: NextFunction) => {
    const length = req.headers['content-length'];
    const large =
      req.headers['transfer-encoding'] !== undefined ||
      (length !== undefined && Number(length) > options.thresholdBytes);
    if (!large) return next();
    const identity = req.principal?.id;
    const ip = req.ip ?? 'unknown';
    const busy =
      total >= options.total ||
      (byIp.get(ip) ?? 0) >= options.perIp ||
      (identity !== undefined && (byIdentity.get(identity) ?? 0) >= options.perIdentity);
    if (busy) {
      options.metrics.rateLimitHit('large-bodies');
      throw new TributaryError(
        'RATE_LIMITED',
        'Too many large request bodies in flight from here; retry in a second.',
        {
          details: { limiter: 'large-bodies', retryAfterSeconds: 1 },
        },
      );
    }
    total++;
    inc(byIp, ip, 1);
    if (identity !== undefined) inc(byIdentity, identity, 1);
    res.once('close', () => {
      total--;
      inc(byIp, ip, -1);
      if (identity !== undefined) inc(byIdentity, identity, -1);
    });
    next();
  };
}
