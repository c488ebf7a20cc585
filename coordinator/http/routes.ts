import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { TributaryError, toTributaryError } from '../../shared/errors';
import { PROTOCOL_VERSION } from '../../shared/schemas/messages';
import type { ApiKeyService } from '../auth/apiKeys';
import type { Authenticator } from '../auth/authenticate';
import type { SiweLogin } from '../auth/siweLogin';
import type { Logger } from '../logger';
import { ListingRegistry } from '../marketplace/listingRegistry';
import { mountListingRoutes } from '../marketplace/listingRoutes';
import type { Metrics } from '../observability/metrics';
import type { ClientDirectory } from '../transport/clientDirectory';
import { ApiDocument, mountRoute } from './apiRoute';
import { HealthSchema } from '../../shared/schemas/restApi';
import { mountAuthRoutes } from './authRoutes';
import { type JobRoutesDeps, mountJobRoutes } from './jobRoutes';
import { mountTranscriptRoutes } from './transcriptRoutes';
import { largeBodyGate } from './bodyGate';
import { createRateLimits, type RateLimitStore } from './rateLimits';
import { requestContext } from './requestContext';

/** Everything the REST API needs, wired by coordinator/server.ts. */
export interface RestDeps extends Omit<JobRoutesDeps, 'gate'> {
  directory: ClientDirectory;
  /** A cluster node's id and the jobs it holds leases on (health reports them). */
  cluster?: { readonly nodeId: string; readonly jobIds: string[] };
  /** The paid jobs whose chain lease this cluster node holds (health reports them). */
  chainLeases?: { readonly jobIds: string[] };
  metrics: Metrics;
  authenticator: Authenticator;
  siwe: SiweLogin;
  apiKeys: ApiKeyService;
  /** How far a signed listing's time may be from the coordinator's clock (ms). */
  listingWindowMs: number;
  /** Listings one provider may have at once. */
  maxListingsPerProvider: number;
  rateLimits: {
    perIp: number;
    perIdentity: number;
    windowMs: number;
    store?: (limiter: 'ip' | 'identity') => RateLimitStore;
  };
  /** Large bodies (above thresholdBytes) read at once, per identity, per IP and in all (bodyGate.ts). */
  largeBodies: { thresholdBytes: number; perIdentity: number; perIp: number; total: number };
  /** The coordinator's Ed25519 transcript key (hex), served at GET /v1/identity. */
  transcriptKey: string;
}

/** The REST API: the /v1 router, its OpenAPI document, and close() for its timers. */
export interface RestApi {
  router: Router;
  document: ApiDocument;
  close(): Promise<void>;
}

/**
 * REST API under /v1. Order of the middleware is the order of the guarantees: request id and
 * metrics; health and the OpenAPI document (never limited, so probes keep working under a flood);
 * the per-IP limit; authentication from headers alone; the per-identity limit; then each route,
 * which authorises before it reads a body. Every error leaves as { error: { code, message } } with
 * the catalog's status (and Retry-After on 429).
 */
export function createRestApi(deps: RestDeps): RestApi {
  const r = express.Router();
  const doc = new ApiDocument();
  const limits = createRateLimits({ ...deps.rateLimits, metrics: deps.metrics });
  // Routes put it right before they read a body, after their authorisation checks.
  const gate = largeBodyGate({ ...deps.largeBodies, metrics: deps.metrics });
  r.use(requestContext(deps.logger, deps.metrics));

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/health',
      tag: 'service',
      auth: 'none',
      summary: 'Liveness: status, protocol version, store kind, connected clients, cluster leases held',
      responses: { 200: { description: 'The coordinator is up.', schema: HealthSchema } },
    },
    (_req, res) => {
      res.json({
        status: 'ok',
        protocolVersion: PROTOCOL_VERSION,
        store: deps.store.kind,
        connectedClients: deps.directory.connectedCount,
        ...(deps.cluster
          ? {
              cluster: {
                node: deps.cluster.nodeId,
                leases: deps.cluster.jobIds,
                ...(deps.chainLeases ? { chainLeases: deps.chainLeases.jobIds } : {}),
              },
            }
          : {}),
      });
    },
  );
  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/openapi.json',
      tag: 'service',
      auth: 'none',
      summary: 'This OpenAPI 3.1 document (interactive docs at /docs)',
      responses: { 200: { description: 'The document.', schema: z.record(z.string(), z.unknown()) } },
    },
    (req, res) => {
      res.json(doc.generate(`${req.protocol}://${req.headers.host ?? 'localhost'}`));
    },
  );

  r.use(limits.perIp);
  r.use(deps.authenticator.middleware());
  r.use(limits.perIdentity);

  mountAuthRoutes(r, doc, {
    siwe: deps.siwe,
    apiKeys: deps.apiKeys,
    audit: deps.audit,
    logger: deps.logger,
    maxJsonBytes: deps.limits.maxJsonBytes,
    gate,
  });
  mountJobRoutes(r, doc, { ...deps, gate });
  mountTranscriptRoutes(r, doc, { jobs: deps.jobs, store: deps.store, transcriptKey: deps.transcriptKey });
  // The data marketplace: signed dataset listings (coordinator/marketplace).
  mountListingRoutes(
    r,
    doc,
    new ListingRegistry(deps.store, {
      windowMs: deps.listingWindowMs,
      maxListingsPerProvider: deps.maxListingsPerProvider,
    }),
    gate,
  );

  r.use((req, _res) => {
    throw new TributaryError('NOT_FOUND', `No route ${req.method} ${req.originalUrl.slice(0, 200)}.`);
  });
  r.use(errorHandler(deps.logger, deps.limits.maxValidationSetBytes));
  return { router: r, document: doc, close: () => limits.close() };
}

/** Maps anything thrown to the catalog's wire shape; body-parser errors to their codes. */
function errorHandler(logger: Logger, fallbackLimit: number) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const bodyError = err as { type?: string; status?: number; limit?: unknown };
    let e: TributaryError;
    if (bodyError?.type === 'entity.too.large') {
      // Each route's parser has its own limit (JSON bodies are smaller than uploads): report the one that applied.
      const limit = typeof bodyError.limit === 'number' ? bodyError.limit : fallbackLimit;
      e = new TributaryError('PAYLOAD_TOO_LARGE', `The body exceeds ${limit} bytes.`, { details: { limit } });
    } else if (bodyError?.type === 'entity.parse.failed') {
      e = new TributaryError('VALIDATION_FAILED', 'The body is not valid JSON.');
    } else if (bodyError?.type === 'request.aborted') {
      e = new TributaryError('VALIDATION_FAILED', 'The client aborted the request body.');
    } else e = toTributaryError(err);
    if (e.code === 'INTERNAL') {
      logger.error('REST handler failed', { requestId: req.requestId, message: String((err as Error)?.stack ?? err) });
    }
    const retryAfter = (e.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
    if (e.code === 'RATE_LIMITED' && typeof retryAfter === 'number') res.setHeader('Retry-After', String(retryAfter));
    if (res.headersSent) return;
    res.status(e.httpStatus).json({ error: e.toWire() });
  };
}

/** Serves interactive API docs at /docs from the swagger-ui-dist package (no CDN), reading /v1/openapi.json. */
export function docsRouter(): Router {
  const r = express.Router();
  // The package directory, without loading the package's index (which evaluates the whole UI bundle).
  const root = dirname(require.resolve('swagger-ui-dist/package.json'));
  const initializer = `window.onload = () => {
  window.ui = SwaggerUIBundle({ url: '/v1/openapi.json', dom_id: '#swagger-ui', deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });
};`;
  r.get('/swagger-initializer.js', (_req, res) => {
    res.type('application/javascript').send(initializer);
  });
  const index = readFileSync(join(root, 'index.html'), 'utf8');
  r.get('/', (req, res) => {
    // Relative asset URLs need the trailing slash.
    if (!req.originalUrl.endsWith('/')) res.redirect(301, `${req.baseUrl}/`);
    else res.type('html').send(index);
  });
  r.use(express.static(root, { index: false }));
  return r;
}
