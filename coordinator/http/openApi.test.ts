import { startCoordinator, type Coordinator } from '../server';
import { openApiPath } from './apiRoute';

/** The OpenAPI document against the router itself: every mounted route is documented, and the document is whole. */
describe('OpenAPI document', () => {
  let c: Coordinator;
  beforeAll(async () => {
    c = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu' });
  });
  afterAll(async () => c?.close());

  type Operation = { parameters?: Array<{ name: string; in: string }>; responses: Record<string, unknown> };
  const documentOf = async () =>
    (await (await fetch(`${c.url}/v1/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, Record<string, Operation>>;
      components: { schemas: Record<string, unknown> };
    };

  it('documents every route the /v1 router serves, with every method', async () => {
    const document = await documentOf();
    const mounted: string[] = [];
    for (const layer of c.rest.router.stack) {
      const route = layer.route as { path?: unknown; methods?: Record<string, boolean> } | undefined;
      if (!route || typeof route.path !== 'string') continue;
      for (const method of Object.keys(route.methods ?? {})) mounted.push(`${method} ${openApiPath(route.path)}`);
    }
    expect(mounted.length).toBeGreaterThan(25);
    const documented = Object.entries(document.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m} ${path}`),
    );
    expect(mounted.filter((r) => !documented.includes(r))).toEqual([]);
    expect(documented.filter((r) => !mounted.includes(r))).toEqual([]);
  });

  it('is a whole OpenAPI 3.1 document: every $ref resolves, every path parameter is declared, every operation answers', async () => {
    const document = await documentOf();
    expect(document.openapi).toBe('3.1.0');
    const refs = [...JSON.stringify(document).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(10);
    for (const name of refs) expect(document.components.schemas).toHaveProperty(name);
    for (const [path, ops] of Object.entries(document.paths)) {
      const params = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const op of Object.values(ops)) {
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
        expect(declared.sort()).toEqual([...params].sort());
        expect(Object.keys(op.responses)).toContain('default');
        expect(Object.keys(op.responses).some((s) => /^2\d\d$/.test(s))).toBe(true);
      }
    }
  });
});
