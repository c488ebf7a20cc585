/**
 * The README stays a front door (at most 12 KB, issue 10) and every relative link in the README and
 * the docs pages leads somewhere: the file exists and, for `page.md#anchor`, the page has that heading
 * (anchors as GitHub renders them: lowercase, punctuation dropped, spaces to hyphens, -1, -2 ... for
 * repeated headings).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = join(__dirname, '..');
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  'bench/README.md',
  'contracts/README.md',
  'examples/mnist/README.md',
  'examples/tabular/README.md',
];

/** Markdown outside fenced code blocks (links and headings inside them do not count). */
function prose(text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '');
}

/** GitHub's heading anchor. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(path: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const match of prose(readFileSync(path, 'utf8')).matchAll(/^#{1,6}\s+(.+)$/gm)) {
    const base = slug(match[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Every relative link target of a page: [text](target). */
function relativeLinks(path: string): string[] {
  const targets = [...prose(readFileSync(path, 'utf8')).matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1]);
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

describe('documentation', () => {
  it('keeps README.md at most 12 KB', () => {
    expect(statSync(join(root, 'README.md')).size).toBeLessThanOrEqual(12 * 1024);
  });

  it('links the README to every docs page', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const page of pages.filter((p) => p.startsWith('docs/'))) expect(readme).toContain(`(${page})`);
  });

  it.each(pages)('%s: every relative link resolves to a file and, with #anchor, to a heading', (page) => {
    const path = join(root, page);
    const broken: string[] = [];
    for (const target of relativeLinks(path)) {
      const [file, anchor] = target.split('#', 2);
      const resolved = file ? join(dirname(path), file) : path;
      if (!existsSync(resolved)) {
        broken.push(`${target} (no file ${relative(root, resolved)})`);
      } else if (anchor !== undefined && !anchorsOf(resolved).has(anchor)) {
        broken.push(`${target} (no heading #${anchor} in ${relative(root, resolved)})`);
      }
    }
    expect(broken).toEqual([]);
  });
});
