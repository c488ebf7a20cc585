/**
 * Compiles the Solidity sources in `contracts/src/` with the pinned npm `solc` (offline: imports
 * of `@openzeppelin/...` resolve through node_modules) and writes one JSON artifact per contract
 * to `contracts/artifacts/<Name>.json`.
 *
 * CLI: `node -r tsx/cjs contracts/build.ts [--check]` (`--check` writes nothing and exits 1 when
 * the committed artifacts differ from a fresh compile).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

// solc ships no typings for its CommonJS entry point that match `import`; its API is tiny.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const solc = require('solc') as {
  version(): string;
  compile(input: string, opts: { import(p: string): { contents: string } | { error: string } }): string;
};

export const CONTRACTS_DIR = __dirname;
export const SOURCES_DIR = path.join(CONTRACTS_DIR, 'src');
export const ARTIFACTS_DIR = path.join(CONTRACTS_DIR, 'artifacts');
const REPO_ROOT = path.resolve(CONTRACTS_DIR, '..');

/** Contracts that get an artifact (other contracts in the sources, e.g. imports, do not). */
export const CONTRACT_NAMES = ['TributaryEscrow', 'RewardToken'] as const;
export type ContractName = (typeof CONTRACT_NAMES)[number];

/** What `contracts/artifacts/<Name>.json` holds. */
export interface Artifact {
  contractName: string;
  abi: unknown[];
  /** Creation bytecode, 0x-prefixed. */
  bytecode: string;
  /** Full solc version string, e.g. `0.8.37+commit.f401782d.Emscripten.clang`. */
  solcVersion: string;
  /** sha256 (hex) of the compiler settings and every source file of the compilation, imports included. */
  sourceHash: string;
}

/** Compiler settings; changing them changes every artifact (and `sourceHash`). */
export const COMPILER_SETTINGS = {
  // cancun: the newest fork most EVM chains run; anvil's default fork is newer and accepts it.
  evmVersion: 'cancun',
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
} as const;

interface SolcOutput {
  errors?: { severity: 'error' | 'warning' | 'info'; formattedMessage: string }[];
  contracts?: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>>;
}

/** Resolves an import path the way the compiler sees it (repo-relative, or a package in node_modules). */
function readImport(importPath: string): { contents: string } | { error: string } {
  const candidates = importPath.startsWith('@')
    ? [path.join(REPO_ROOT, 'node_modules', importPath)]
    : [path.join(REPO_ROOT, importPath)];
  for (const file of candidates) {
    // Refuse paths that climb out of the repository.
    if (!path.resolve(file).startsWith(REPO_ROOT + path.sep)) continue;
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, 'utf8') };
  }
  return { error: `import not found: ${importPath} (is the package installed? run npm ci)` };
}

/** Compiles every `.sol` under `contracts/src/` and returns the artifacts (writes nothing). */
export function compileContracts(): Record<ContractName, Artifact> {
  const sources: Record<string, { content: string }> = {};
  for (const file of fs
    .readdirSync(SOURCES_DIR)
    .filter((f) => f.endsWith('.sol'))
    .sort()) {
    // Repo-relative, forward-slash paths keep the metadata (and so the bytecode) machine-independent.
    sources[`contracts/src/${file}`] = { content: fs.readFileSync(path.join(SOURCES_DIR, file), 'utf8') };
  }
  const resolved = new Map<string, string>();
  const input = { language: 'Solidity', sources, settings: COMPILER_SETTINGS };
  const output = JSON.parse(
    solc.compile(JSON.stringify(input), {
      import: (p) => {
        const r = readImport(p);
        if ('contents' in r) resolved.set(p, r.contents);
        return r;
      },
    }),
  ) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join('\n')}`);
  }

  const hash = createHash('sha256');
  hash.update(JSON.stringify(COMPILER_SETTINGS));
  const all = [...Object.entries(sources).map(([p, s]) => [p, s.content] as const), ...resolved.entries()];
  for (const [p, content] of all.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    hash.update(`\0${p}\0${content}`);
  }
  const sourceHash = hash.digest('hex');
  const solcVersion = solc.version();

  const artifacts = {} as Record<ContractName, Artifact>;
  for (const name of CONTRACT_NAMES) {
    const compiled = output.contracts?.[`contracts/src/${name}.sol`]?.[name];
    if (!compiled) throw new Error(`solc produced no contract ${name} (expected in contracts/src/${name}.sol)`);
    artifacts[name] = {
      contractName: name,
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      solcVersion,
      sourceHash,
    };
  }
  return artifacts;
}

/** The exact text written for an artifact (stable key order, trailing newline). */
export function serializeArtifact(a: Artifact): string {
  return `${JSON.stringify(a, null, 2)}\n`;
}

/** Compiles and writes `contracts/artifacts/<Name>.json`; returns the written paths. */
export function buildContracts(outDir = ARTIFACTS_DIR): string[] {
  const artifacts = compileContracts();
  fs.mkdirSync(outDir, { recursive: true });
  return CONTRACT_NAMES.map((name) => {
    const file = path.join(outDir, `${name}.json`);
    fs.writeFileSync(file, serializeArtifact(artifacts[name]));
    return file;
  });
}

/** Names of committed artifacts that are missing or differ from a fresh compile (empty when up to date). */
export function staleArtifacts(dir = ARTIFACTS_DIR): string[] {
  const fresh = compileContracts();
  return CONTRACT_NAMES.filter((name) => {
    const file = path.join(dir, `${name}.json`);
    return !fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== serializeArtifact(fresh[name]);
  });
}

if (require.main === module) {
  if (process.argv.includes('--check')) {
    const stale = staleArtifacts();
    if (stale.length > 0) {
      console.error(`stale artifacts: ${stale.join(', ')}; run: node -r tsx/cjs contracts/build.ts`);
      process.exit(1);
    }
    console.log('contracts/artifacts are up to date');
  } else {
    for (const file of buildContracts()) console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}
