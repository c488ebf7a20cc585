import { z } from 'zod';
import { MAX_CHUNK_BYTES } from '../shared/schemas/messages';
import { TributaryError } from '../shared/errors';

/** Coordinator options, parsed once at start (flags over environment over defaults) and frozen. */
export const CoordinatorConfigSchema = z.object({
  /** Interface to listen on. @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** TCP port; 0 picks a free one. @default 8080 */
  port: z.coerce.number().int().min(0).max(65_535).default(8080),
  /** MongoDB connection string; when absent the embedded in-memory store is used. */
  mongodbUri: z.string().min(1).optional(),
  /** Database name inside MONGODB_URI. @default "tributary" */
  dbName: z.string().min(1).default('tributary'),
  /**
   * Public URLs clients reach this coordinator at (behind a proxy or load balancer): their origins are
   * accepted as handshake audiences beside the listening address. @default none
   */
  publicUrls: z
    .union([
      z.array(z.string().url()),
      z.string().transform((v) =>
        v
          .split(',')
          .map((u) => u.trim())
          .filter(Boolean),
      ),
    ])
    .pipe(z.array(z.string().url()).max(32))
    .default([]),
  /** How far a handshake timestamp may be from the coordinator's clock, in ms. @default 120000 */
  authWindowMs: z.coerce.number().int().positive().default(120_000),
  /** Upload chunk size the coordinator asks clients to use. @default 4 MiB */
  chunkBytes: z.coerce.number().int().min(1024).max(MAX_CHUNK_BYTES).default(MAX_CHUNK_BYTES),
  /** Largest REST body (validation-set uploads), in bytes. @default 256 MiB */
  maxRestBodyBytes: z.coerce
    .number()
    .int()
    .positive()
    .default(256 * 1024 * 1024),
  /** TF.js backend for evaluating global models. @default "auto" */
  backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  /** Log level. @default "info" */
  logLevel: z.enum(['silent', 'error', 'info', 'debug']).default('info'),
  /** JSON-RPC URL of the EVM chain that holds job escrows; jobs with a `chain` config need it. */
  rpcUrl: z.string().url().optional(),
  /**
   * The coordinator's Ethereum private key (0x + 64 hex), from the environment only: it commits rounds
   * and settles payouts. Never logged; error messages never include it.
   */
  coordinatorPrivateKey: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, 'expected 0x followed by 64 hex digits')
    .optional(),
  /** First retry delay after a failed chain request, in ms (doubles up to chainRetryMaxMs). @default 1000 */
  chainRetryBaseMs: z.coerce.number().int().min(1).max(600_000).default(1000),
  /** Longest delay between chain retries, in ms. @default 30000 */
  chainRetryMaxMs: z.coerce.number().int().min(1).max(3_600_000).default(30_000),
  /** How often an unfunded job's escrow is polled, in ms. @default 2000 */
  chainPollMs: z.coerce.number().int().min(10).max(600_000).default(2000),
  /**
   * Longest wait for a chain transaction's receipt, in ms (reads wait at most 15 s); on timeout the
   * worker re-reads the chain before sending anything again. @default 120000
   */
  chainTxTimeoutMs: z.coerce.number().int().min(100).max(3_600_000).default(120_000),
  /**
   * Key file of the coordinator's Ed25519 transcript key (created, mode 0600, when absent). Without
   * one a fresh key is made at every start: transcripts then verify, but each run signs with another
   * key. @default none (an ephemeral key)
   */
  transcriptKeyFile: z.string().min(1).optional(),
});
export type CoordinatorConfig = Readonly<z.infer<typeof CoordinatorConfigSchema>>;
export type CoordinatorConfigInput = z.input<typeof CoordinatorConfigSchema>;

/** Environment variables the coordinator reads, and the option each sets. */
export const CONFIG_ENV = {
  TRIBUTARY_HOST: 'host',
  TRIBUTARY_PORT: 'port',
  MONGODB_URI: 'mongodbUri',
  TRIBUTARY_DB_NAME: 'dbName',
  TRIBUTARY_AUTH_WINDOW_MS: 'authWindowMs',
  TRIBUTARY_PUBLIC_URLS: 'publicUrls',
  TRIBUTARY_CHUNK_BYTES: 'chunkBytes',
  TRIBUTARY_MAX_REST_BODY_BYTES: 'maxRestBodyBytes',
  TRIBUTARY_BACKEND: 'backend',
  TRIBUTARY_LOG_LEVEL: 'logLevel',
  TRIBUTARY_RPC_URL: 'rpcUrl',
  TRIBUTARY_COORDINATOR_KEY: 'coordinatorPrivateKey',
  TRIBUTARY_CHAIN_RETRY_MS: 'chainRetryBaseMs',
  TRIBUTARY_CHAIN_RETRY_MAX_MS: 'chainRetryMaxMs',
  TRIBUTARY_CHAIN_POLL_MS: 'chainPollMs',
  TRIBUTARY_CHAIN_TX_TIMEOUT_MS: 'chainTxTimeoutMs',
  TRIBUTARY_TRANSCRIPT_KEY_FILE: 'transcriptKeyFile',
} as const;

/** Parses and freezes the configuration; bad values throw CONFIG_INVALID naming the option. */
export function parseCoordinatorConfig(
  flags: CoordinatorConfigInput = {},
  env: NodeJS.ProcessEnv = process.env,
): CoordinatorConfig {
  const fromEnv: Record<string, unknown> = {};
  for (const [variable, key] of Object.entries(CONFIG_ENV)) {
    const value = env[variable];
    if (value !== undefined && value !== '') fromEnv[key] = value;
  }
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const parsed = CoordinatorConfigSchema.safeParse({ ...fromEnv, ...defined });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TributaryError('CONFIG_INVALID', `Option ${issue?.path.join('.')}: ${issue?.message}.`, {
      cause: parsed.error,
    });
  }
  return Object.freeze(parsed.data);
}
