import { z } from 'zod';
import { MAX_CHUNK_BYTES } from '../shared/schemas/messages';
import { TributaryError } from '../shared/errors';
import { LIMITS } from '../shared/schemas/jobSpec';

/** REST identity, quotas, rate limits and caps (coordinator/auth, coordinator/http); see docs/rest-api.md. */
const RestAccessConfigShape = {
  /**
   * The coordinator's canonical URL as clients reach it (scheme, host, port): the Sign-In with
   * Ethereum domain and the audience of its tokens. @default the URL it listens on
   */
  publicUrl: z.string().url().optional(),
  /** HMAC key of sign-in tokens, 64+ hex digits, from the environment only. @default random per process (tokens end with it) */
  jwtSecret: z
    .string()
    .regex(/^[0-9a-fA-F]{64,256}$/, 'expected at least 64 hex digits')
    .optional(),
  /** Lifetime of a sign-in token, seconds. @default 900 */
  sessionTtlSeconds: z.coerce.number().int().min(60).max(86_400).default(900),
  /** Largest JSON body (job specs, settings), bytes. @default 2 MiB */
  maxJsonBytes: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .max(64 * 1024 * 1024)
    .default(2 * 1024 * 1024),
  /** Pending or running jobs one identity may own. @default 20 */
  maxActiveJobsPerIdentity: z.coerce.number().int().min(1).max(100_000).default(20),
  /** Listings one provider may have published. @default 100 */
  maxListingsPerProvider: z.coerce.number().int().min(1).max(100_000).default(100),
  /** Live API keys per identity. @default 20 */
  maxApiKeysPerIdentity: z.coerce.number().int().min(1).max(1000).default(20),
  /** Validation-set uploads in progress at once (each holds its body in memory). @default 2 */
  maxConcurrentUploads: z.coerce.number().int().min(1).max(64).default(2),
  /** Request bodies over 64 KiB read at once, in all (also 1 per identity and 2 per IP). @default 4 */
  maxConcurrentLargeBodies: z.coerce.number().int().min(1).max(256).default(4),
  /** REST requests per IP address per rate-limit window. @default 1200 */
  rateLimitPerIp: z.coerce.number().int().min(1).max(10_000_000).default(1200),
  /** REST requests per identity per rate-limit window. @default 600 */
  rateLimitPerIdentity: z.coerce.number().int().min(1).max(10_000_000).default(600),
  /** Rate-limit window, ms. @default 60000 */
  rateLimitWindowMs: z.coerce.number().int().min(1000).max(3_600_000).default(60_000),
  /** Signed-request nonces remembered per key within the replay window. @default 10000 */
  replayNoncesPerKey: z.coerce.number().int().min(10).max(10_000_000).default(10_000),
  /** Signed-request nonces remembered in all (about 100 bytes each). @default 1000000 */
  replayNoncesTotal: z.coerce.number().int().min(100).max(100_000_000).default(1_000_000),
  /** Most parameters a job's model may have, computed from the spec before anything is built. @default 50000000 */
  maxModelParameters: z.coerce.number().int().min(1).max(LIMITS.maxParameters).default(LIMITS.maxParameters),
  /** Most model evaluations contribution scoring may ask for per round. @default 2048 */
  maxScoringEvaluationsPerRound: z.coerce.number().int().min(2).max(100_000).default(2048),
  /** Bearer token Prometheus must send to GET /metrics, from the environment only. @default none: /metrics is open */
  metricsToken: z.string().min(16).max(256).optional(),
};

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
  /** Socket connections (handshakes) accepted per IP address per minute (behind a proxy every client shares its address: raise it there). @default 600 */
  socketConnectionsPerIpPerMinute: z.coerce.number().int().positive().max(10_000_000).default(600),
  /** Socket connections accepted per client key per minute. @default 30 */
  socketConnectionsPerKeyPerMinute: z.coerce.number().int().positive().max(1_000_000).default(30),
  /** How far a handshake timestamp may be from the coordinator's clock, in ms. @default 120000 */
  authWindowMs: z.coerce.number().int().positive().default(120_000),
  /** Upload chunk size the coordinator asks clients to use. @default 4 MiB */
  chunkBytes: z.coerce.number().int().min(1024).max(MAX_CHUNK_BYTES).default(MAX_CHUNK_BYTES),
  /** Largest validation-set upload, in bytes (refused before reading when Content-Length says more). @default 32 MiB */
  maxRestBodyBytes: z.coerce
    .number()
    .int()
    .positive()
    .default(32 * 1024 * 1024),
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
   * A running paid job is stopped, and its committed rounds settled, once its escrow deadline is this
   * close by chain time: past the deadline the escrow refuses commits and settlement and returns the
   * budget to the buyer, who would keep the model unpaid. @default 600
   */
  chainSettleMarginSeconds: z.coerce
    .number()
    .int()
    .min(1)
    .max(30 * 86_400)
    .default(600),
  ...RestAccessConfigShape,
  /**
   * Key file of the coordinator's Ed25519 transcript key (created, mode 0600, when absent). Without
   * one a fresh key is made at every start: transcripts then verify, but each run signs with another
   * key. @default none (an ephemeral key)
   */
  transcriptKeyFile: z.string().min(1).optional(),
  /**
   * Run as one node of a cluster (docs/cluster.md): jobs run under leases in MongoDB (needs
   * mongodbUri), commits are fenced, and a node takes over the jobs of a node that died. Implied by
   * redisUrl. @default false: a single coordinator, exactly as without a cluster
   */
  cluster: z
    .union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')])
    .default(false),
  /** Redis for a cluster's socket.io adapter and shared replay cache (docs/cluster.md); implies `cluster`. */
  redisUrl: z.string().url().optional(),
  /** How long a job lease lasts without a heartbeat: the bound on a dead node's jobs waiting, in ms. @default 10000 */
  leaseTtlMs: z.coerce.number().int().min(200).max(600_000).default(10_000),
  /** This node's id in job leases. @default random per process */
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/)
    .optional(),
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
  TRIBUTARY_SOCKET_CONNECTIONS_PER_IP_PER_MINUTE: 'socketConnectionsPerIpPerMinute',
  TRIBUTARY_SOCKET_CONNECTIONS_PER_KEY_PER_MINUTE: 'socketConnectionsPerKeyPerMinute',
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
  TRIBUTARY_CHAIN_SETTLE_MARGIN_S: 'chainSettleMarginSeconds',
  TRIBUTARY_PUBLIC_URL: 'publicUrl',
  TRIBUTARY_JWT_SECRET: 'jwtSecret',
  TRIBUTARY_SESSION_TTL_S: 'sessionTtlSeconds',
  TRIBUTARY_MAX_JSON_BYTES: 'maxJsonBytes',
  TRIBUTARY_MAX_ACTIVE_JOBS: 'maxActiveJobsPerIdentity',
  TRIBUTARY_MAX_LISTINGS: 'maxListingsPerProvider',
  TRIBUTARY_MAX_API_KEYS: 'maxApiKeysPerIdentity',
  TRIBUTARY_MAX_CONCURRENT_UPLOADS: 'maxConcurrentUploads',
  TRIBUTARY_MAX_CONCURRENT_LARGE_BODIES: 'maxConcurrentLargeBodies',
  TRIBUTARY_RATE_LIMIT_PER_IP: 'rateLimitPerIp',
  TRIBUTARY_RATE_LIMIT_PER_IDENTITY: 'rateLimitPerIdentity',
  TRIBUTARY_RATE_LIMIT_WINDOW_MS: 'rateLimitWindowMs',
  TRIBUTARY_REPLAY_NONCES_PER_KEY: 'replayNoncesPerKey',
  TRIBUTARY_REPLAY_NONCES_TOTAL: 'replayNoncesTotal',
  TRIBUTARY_MAX_MODEL_PARAMETERS: 'maxModelParameters',
  TRIBUTARY_MAX_SCORING_EVALUATIONS: 'maxScoringEvaluationsPerRound',
  TRIBUTARY_METRICS_TOKEN: 'metricsToken',
  TRIBUTARY_TRANSCRIPT_KEY_FILE: 'transcriptKeyFile',
  TRIBUTARY_CLUSTER: 'cluster',
  TRIBUTARY_REDIS_URL: 'redisUrl',
  TRIBUTARY_LEASE_TTL_MS: 'leaseTtlMs',
  TRIBUTARY_NODE_ID: 'nodeId',
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
  const config = parsed.data;
  if ((config.cluster || config.redisUrl) && !config.mongodbUri) {
    throw new TributaryError(
      'CONFIG_INVALID',
      'Option cluster: a cluster keeps its job leases in MongoDB; set mongodbUri (--mongodb-uri) too.',
    );
  }
  return Object.freeze({ ...config, cluster: config.cluster || config.redisUrl !== undefined });
}
