import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorCatalog, toTributaryError, TributaryError } from '../shared/errors';
import { JobSpecSchema } from '../shared/schemas/jobSpec';

describe('error catalog', () => {
  // The error table lives in docs/errors.md: one row `| \`CODE\` | status | meaning |` per catalog code.
  const errorsPage = readFileSync(join(__dirname, '..', 'docs', 'errors.md'), 'utf8');
  const rows = [...errorsPage.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)].map((m) => ({
    code: m[1],
    status: Number(m[2]),
  }));

  it.each(Object.keys(errorCatalog))('docs/errors.md documents %s with its HTTP status', (code) => {
    const row = rows.filter((r) => r.code === code);
    expect(row).toHaveLength(1);
    expect(row[0].status).toBe(errorCatalog[code as keyof typeof errorCatalog].status);
  });

  it('every code docs/errors.md lists exists in the catalog', () => {
    // Any table row that starts with a code counts, whatever its other columns hold.
    const listed = [...errorsPage.matchAll(/^\|\s*`([A-Z_]+)`\s*\|/gm)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThan(0);
    for (const code of listed) expect(Object.keys(errorCatalog)).toContain(code);
  });

  it('maps zod failures to VALIDATION_FAILED naming the path, and unknown throws to INTERNAL', () => {
    const parsed = JobSpecSchema.safeParse({ name: 'x', rounds: -1 });
    expect(parsed.success).toBe(false);
    const e = toTributaryError(parsed.error);
    expect(e.code).toBe('VALIDATION_FAILED');
    expect(e.message).toMatch(/rounds|model|input/);
    expect(e.httpStatus).toBe(400);
    const internal = toTributaryError(new Error('secret internals'));
    expect(internal.code).toBe('INTERNAL');
    expect(internal.toWire().message).not.toMatch(/secret/);
    expect(new TributaryError('JOB_NOT_FOUND').httpStatus).toBe(404);
  });
});
