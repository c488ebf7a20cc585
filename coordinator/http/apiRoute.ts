import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { z } from 'zod';
import { errorCatalog, type ErrorCode } from '../../shared/errors';

/** The error body every failing route answers with (shared/errors.ts WireError). */
export const ErrorResponseSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(errorCatalog) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: 'Error', description: 'A coded error (see docs/rest-api.md and the error table).' });

/** How a route is authenticated, for its documentation. */
export type RouteAuth = 'none' | 'optional' | 'required';

type AnyObject = z.ZodObject<z.ZodRawShape>;

/** One REST route: documented (OpenAPI 3.1 from the same zod schemas) and mounted by `mountRoute`. */
export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'delete';
  /** Express path below /v1, e.g. `/jobs/:jobId`. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  auth: RouteAuth;
  params?: AnyObject;
  query?: AnyObject;
  /** The request body: its schema (JSON) or a description of the raw content types accepted. */
  body?: { contentType: string; schema: z.ZodType } | { contentTypes: string[]; description: string };
  /** Success responses by status: a JSON schema, or a raw content type. */
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
}

/** A path in OpenAPI form: `/jobs/:jobId` → `/v1/jobs/{jobId}`. */
export function openApiPath(path: string): string {
  return `/v1${path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`;
}

/**
 * The REST API's route table. Routes are added with `mountRoute`, which registers the route's zod
 * schemas in the OpenAPI registry and mounts its handlers, so the served document (GET
 * /v1/openapi.json) cannot drift from what the routes accept.
 */
export class ApiDocument {
  readonly registry = new OpenAPIRegistry();
  readonly routes: RouteSpec[] = [];

  constructor() {
    this.registry.registerComponent('securitySchemes', 'httpSignature', {
      type: 'apiKey',
      in: 'header',
      name: 'Signature',
      description:
        'RFC 9421 HTTP Message Signature by an Ed25519 key (with Signature-Input and, with a body, Content-Digest); see docs/rest-api.md.',
    });
    this.registry.registerComponent('securitySchemes', 'bearer', {
      type: 'http',
      scheme: 'bearer',
      description: 'A Sign-In with Ethereum token (POST /v1/auth/siwe) or an API key (trk_...).',
    });
  }

  add(spec: RouteSpec): void {
    this.routes.push(spec);
    const json = (schema: z.ZodType) => ({ 'application/json': { schema } });
    const responses: Record<string, { description: string; content?: Record<string, { schema: z.ZodType }> }> = {};
    for (const [status, r] of Object.entries(spec.responses)) {
      responses[status] = {
        description: r.description,
        ...(r.schema
          ? { content: json(r.schema) }
          : r.contentType
            ? { content: { [r.contentType]: { schema: z.string() } } }
            : {}),
      };
    }
    responses.default = { description: 'A coded error.', content: json(ErrorResponseSchema) };
    const body = spec.body;
    this.registry.registerPath({
      method: spec.method,
      path: openApiPath(spec.path),
      summary: spec.summary,
      ...(spec.description ? { description: spec.description } : {}),
      tags: [spec.tag],
      ...(spec.auth === 'none' ? { security: [] } : { security: [{ httpSignature: [] }, { bearer: [] }] }),
      request: {
        ...(spec.params ? { params: spec.params } : {}),
        ...(spec.query ? { query: spec.query } : {}),
        ...(body
          ? {
              body: {
                required: true,
                content:
                  'schema' in body
                    ? { [body.contentType]: { schema: body.schema } }
                    : Object.fromEntries(
                        body.contentTypes.map((t) => [
                          t,
                          { schema: z.string().meta({ description: body.description }) },
                        ]),
                      ),
              },
            }
          : {}),
      },
      responses,
    });
  }

  /** The OpenAPI 3.1 document. */
  generate(serverUrl?: string): ReturnType<OpenApiGeneratorV31['generateDocument']> {
    return new OpenApiGeneratorV31(this.registry.definitions).generateDocument({
      openapi: '3.1.0',
      info: {
        title: 'Tributary coordinator REST API',
        version: '1',
        description:
          'Jobs, models, rounds, contributions, payouts and the data marketplace. Writes and private reads need an identity: an RFC 9421 signature by an Ed25519 key, a Sign-In with Ethereum token, or an API key.',
      },
      ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    });
  }
}

/** Documents `spec` and mounts its handlers on the /v1 router (res.locals.route names it for logs and metrics). */
export function mountRoute(router: Router, doc: ApiDocument, spec: RouteSpec, ...handlers: RequestHandler[]): void {
  doc.add(spec);
  const pattern = `/v1${spec.path}`;
  router[spec.method](
    spec.path,
    (_req: Request, res: Response, next: NextFunction) => {
      res.locals.route = pattern;
      next();
    },
    ...handlers,
  );
}

/** Parses `req.params` with the route's schema (a zod failure becomes VALIDATION_FAILED at the edge). */
export function paramsOf<T extends AnyObject>(schema: T, req: Request): z.output<T> {
  return schema.parse(req.params);
}

/** Parses `req.query` with the route's schema. */
export function queryOf<T extends AnyObject>(schema: T, req: Request): z.output<T> {
  return schema.parse(req.query);
}
