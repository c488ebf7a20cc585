import { randomBytes } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../logger';
import type { Metrics } from '../observability/metrics';

/**
 * First middleware of the REST API: gives each request an id (the caller's X-Request-Id if it is a
 * short token, else a random one), echoes it, and when the response is done logs one line (method,
 * route pattern, status, duration, identity; never the query, headers or body) and records the
 * request in the metrics. The route pattern, not the URL, labels metrics and logs, so ids in paths
 * neither leak into logs nor blow up metric cardinality.
 */
export function requestContext(logger: Logger, metrics: Metrics) {
  return (req: Request, res: Response, next: NextFunction) => {
    const given = req.headers['x-request-id'];
    req.requestId =
      typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomBytes(8).toString('hex');
    res.setHeader('X-Request-Id', req.requestId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = typeof res.locals.route === 'string' ? res.locals.route : 'unmatched';
      metrics.httpRequest(req.method, route, res.statusCode, seconds);
      metrics.bytes('rest', 'in', Number(req.headers['content-length'] ?? 0) || 0);
      metrics.bytes('rest', 'out', Number(res.getHeader('content-length') ?? 0) || 0);
      const fields = {
        requestId: req.requestId,
        method: req.method,
        route,
        status: res.statusCode,
        ms: Math.round(seconds * 1000),
        ...(req.principal ? { identity: req.principal.id, via: req.principal.via } : {}),
      };
      if (res.statusCode >= 500) logger.error('request', fields);
      else logger.debug('request', fields);
    });
    next();
  };
}
