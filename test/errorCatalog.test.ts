import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorCatalog, toTributaryError, TributaryError } from '../shared/errors';
import { JobSpecSchema } from '../shared/schemas/jobSpec';

describe('error catalog', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');

  it.each(Object.keys(errorCatalog))('README documents %s', (code) => {
    expect(readme).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|`));
  });

  it('every README code exists in the catalog', () => {
    const section = readme.slice(readme.indexOf('## Error codes'));
    const listed = [...section.matchAll(/^\|\s*`([A-Z_]+)`\s*\|/gm)].map((m) => m[1]);
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
