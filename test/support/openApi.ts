import { z } from 'zod';

/** A response the tests saw: method, URL path, status and JSON body. */
export interface SeenResponse {
  method: string;
  path: string;
  status: number;
  body: unknown;
}

type OpenApiDocument = {
  openapi: string;
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>
  >;
  components?: { schemas?: Record<string, unknown> };
};

/** `#/components/schemas/X` refs rewritten to `#/$defs/X`, so a response schema stands alone as JSON Schema. */
function standalone(schema: unknown, components: Record<string, unknown>): unknown {
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite);
    if (node === null || typeof node !== 'object') return node;
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) => [
        k,
        k === '$ref' && typeof v === 'string' ? v.replace('#/components/schemas/', '#/$defs/') : rewrite(v),
      ]),
    );
  };
  return { ...(rewrite(schema) as object), $defs: rewrite(components) };
}

/** The documented path template (e.g. /v1/jobs/{jobId}) a concrete path matches. */
export function templateOf(document: OpenApiDocument, path: string): string | undefined {
  const parts = path.split('/');
  return Object.keys(document.paths).find((template) => {
    const t = template.split('/');
    return (
      t.length === parts.length &&
      t.every((seg, i) => (seg.startsWith('{') && seg.endsWith('}') ? parts[i] !== '' : seg === parts[i]))
    );
  });
}

/**
 * Checks every seen JSON response against the OpenAPI document itself: the schema documented for its
 * path, method and status (or the `default` error response), converted back from JSON Schema with
 * zod's fromJSONSchema. Returns a list of problems (empty when all conform).
 */
export function responsesNotMatching(document: OpenApiDocument, seen: readonly SeenResponse[]): string[] {
  const problems: string[] = [];
  const components = document.components?.schemas ?? {};
  for (const r of seen) {
    const template = templateOf(document, r.path);
    const operation = template ? document.paths[template][r.method.toLowerCase()] : undefined;
    if (!operation) {
      // An unknown route answers 404 with the documented error body.
      const error = components.Error;
      if (r.status !== 404 || !error) problems.push(`${r.method} ${r.path}: not documented`);
      else if (!z.fromJSONSchema(standalone(error, components) as never).safeParse(r.body).success) {
        problems.push(`${r.method} ${r.path} 404: not the documented error body`);
      }
      continue;
    }
    const response =
      operation.responses[String(r.status)] ?? (r.status >= 400 ? operation.responses.default : undefined);
    if (!response) {
      problems.push(`${r.method} ${template} ${r.status}: status not documented`);
      continue;
    }
    const schema = response.content?.['application/json']?.schema;
    if (!schema) continue;
    const validator = z.fromJSONSchema(standalone(schema, components) as Parameters<typeof z.fromJSONSchema>[0]);
    const parsed = validator.safeParse(r.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      problems.push(`${r.method} ${template} ${r.status}: ${issue?.path.join('.')} ${issue?.message}`);
    }
  }
  return problems;
}

/** A fetch that records every JSON answer it receives into `seen` (for responsesNotMatching). */
export function recordingFetch(seen: SeenResponse[], base: typeof fetch = fetch): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const res = await base(input, init);
    if ((res.headers.get('content-type') ?? '').includes('application/json')) {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const body = await res
        .clone()
        .json()
        .catch(() => undefined);
      seen.push({ method: (init?.method ?? 'GET').toUpperCase(), path: url.pathname, status: res.status, body });
    }
    return res;
  }) as typeof fetch;
}
