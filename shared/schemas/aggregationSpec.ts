import { z } from 'zod';
import { publicKeyProblem } from '../he/keyBytes';
import {
  DEFAULT_HE_PARAMETER_SET,
  HE_PARAMETER_SET_NAMES,
  HE_PARAMETER_SETS,
  type HeParameterSet,
  heParameterSet,
} from '../he/parameters';
import { maxClientsForHeadroom } from '../he/quantize';
import { createPackedPaillierParams } from '../paillier/packedPaillier';

/**
 * The aggregation part of a job spec: which mode aggregates the clients' updates and that mode's
 * options, as a discriminated union on `secureAggregation` with every default filled at parse time.
 * The wire shape is the one jobs have always used (`secureAggregation` plus a `secagg` / `paillier`
 * block named after the mode), so stored jobs and older clients keep parsing. Modes registered at run
 * time (research, tests: `registerAggregationSpec`) carry their options in `aggregationOptions`.
 *
 * Built-in modes: `none` (plaintext updates), `secagg` (SecAgg+, the default: the coordinator learns
 * only the sum of the surviving clients' quantised, weighted updates) and `paillier` (packed Paillier:
 * clients encrypt under the key holder's public key, the coordinator multiplies ciphertexts, the key
 * holder decrypts only the aggregate) and `he` (packed BGV/BFV: the same key-holder model with a lattice
 * scheme through Microsoft SEAL, thousands of values per ciphertext).
 */

const positiveInt = z.number().int().positive();

/** The largest model any mode carries (mirrors LIMITS.maxParameters; jobSpec.ts imports this module). */
const MAX_PARAMETERS = 50_000_000;

/** A client's weight w_i = min(numExamples, maxExampleWeight): one cap, one unit, in every mode. */
const maxExampleWeight = z.number().int().positive().max(1_000_000_000).default(100_000);

/** Options of `secureAggregation: "none"`; every field has a default. */
export const NoneOptionsSchema = z
  .object({
    /** A client's weight is min(numExamples, maxExampleWeight) examples. @default 100000 */
    maxExampleWeight,
  })
  .strict();
export type NoneOptions = z.infer<typeof NoneOptionsSchema>;

/**
 * SecAgg+ masks a vector of 4-byte values (the parameters plus the weight), sent in parts of one chunk
 * each (messages.ts MAX_SECAGG_PARTS × MAX_CHUNK_BYTES = 256 MiB covers it); the coordinator holds
 * every client's masked vector until unmask, so its memory is about 4 × parameters × clients bytes.
 */
export const SECAGG_MAX_PARAMETERS = MAX_PARAMETERS - 1;
/** SecAgg+ sums at most 2^32 / 2^22 - 1 clients without wrapping (quantizationRange 2^22). */
export const SECAGG_MAX_CLIENTS = 1023;

/** Options of `secureAggregation: "secagg"`; every field has a default. */
export const SecAggOptionsSchema = z
  .object({
    /** Weighted deltas are clipped to [-clippingRange, clippingRange] before quantisation (clipped values are counted). @default 8 */
    clippingRange: z.number().positive().max(1e6).default(8),
    /** How long each SecAgg+ stage waits for replies (collect-masked-vectors also waits for training, up to roundDeadlineMs). @default 30000 */
    stageTimeoutMs: positiveInt.min(100).max(3_600_000).default(30_000),
    /** Neighbours per client (even, or n - 1). @default min(n - 1, 2 * ceil(log2 n)) */
    neighbourCount: z.number().int().min(2).max(255).optional(),
    /** Shares needed to reconstruct a client's secrets (2t > neighbourCount). @default floor(neighbourCount / 2) + 1 */
    threshold: z.number().int().min(2).max(255).optional(),
    /** A client's weight is min(numExamples, maxExampleWeight) examples (sent as a ratio of it). @default 100000 */
    maxExampleWeight,
    /**
     * Split each round's selected clients into floor(n / cohortSize) disjoint cohorts of at least
     * cohortSize clients (seeded by the job seed, round and attempt); each cohort runs its own SecAgg+
     * session and the coordinator learns each cohort's sum. Unset: one cohort of all selected clients.
     */
    cohortSize: z.number().int().min(3).max(SECAGG_MAX_CLIENTS).optional(),
  })
  .strict()
  .refine((o) => o.cohortSize === undefined || o.neighbourCount === undefined || o.neighbourCount <= o.cohortSize - 1, {
    message: 'secagg.neighbourCount must be at most cohortSize - 1 (a cohort may have only cohortSize clients)',
    path: ['neighbourCount'],
  });
export type SecAggOptions = z.infer<typeof SecAggOptionsSchema>;

/** Paillier moduli of 1024 (tests only) to 4096 bits, as lowercase hex without leading zeros. */
export const PAILLIER_MIN_KEY_BITS = 1024;
export const PAILLIER_MAX_KEY_BITS = 4096;
/** The key holder returns the decrypted sums (Float32) as one message: the model must fit one chunk. */
export const PAILLIER_MAX_PARAMETERS = 1_048_575;

const PaillierPublicKeySchema = z
  .object({
    /** The Paillier modulus n (g = n + 1) as lowercase hex, 1024..4096 bits. */
    n: z
      .string()
      .regex(/^[1-9a-f][0-9a-f]*$/, 'expected n as lowercase hex without leading zeros')
      .min(PAILLIER_MIN_KEY_BITS / 4)
      .max(PAILLIER_MAX_KEY_BITS / 4),
  })
  .strict()
  .refine(
    (k) => {
      const n = BigInt(`0x${k.n}`);
      const bits = n.toString(2).length;
      return (n & 1n) === 1n && bits >= PAILLIER_MIN_KEY_BITS && bits <= PAILLIER_MAX_KEY_BITS && bits % 8 === 0;
    },
    {
      message: `n must be odd, with a bit length that is a multiple of 8 in [${PAILLIER_MIN_KEY_BITS}, ${PAILLIER_MAX_KEY_BITS}]`,
      path: ['n'],
    },
  );

/** Options of `secureAggregation: "paillier"`; `publicKey` and `keyHolder` are required. */
export const PaillierOptionsSchema = z
  .object({
    /** The key holder's Paillier public key (`tributary keyholder keygen` prints it). */
    publicKey: PaillierPublicKeySchema,
    /** The key holder's Ed25519 public key (its client id), as 64 lowercase hex characters. */
    keyHolder: z.string().regex(/^[0-9a-f]{64}$/, "expected the key holder's client id (32 bytes as lowercase hex)"),
    /** Bits per quantised value. @default 16 */
    bits: z.number().int().min(2).max(32).default(16),
    /**
     * Weighted deltas (and the weight itself, at most 1) are quantised on [-clipRange, clipRange];
     * values outside are clipped and counted. At least 1 so the weight is never clipped. @default 1
     */
    clipRange: z.number().min(1).max(1e6).default(1),
    /** A client's weight is min(numExamples, maxExampleWeight) examples (encrypted as a ratio of it). @default 100000 */
    maxExampleWeight,
    /** How long the coordinator waits for the key holder to decrypt an aggregate. @default 60000 */
    decryptTimeoutMs: positiveInt.min(100).max(3_600_000).default(60_000),
  })
  .strict();
export type PaillierOptions = z.infer<typeof PaillierOptionsSchema>;

/** The key holder returns the decrypted sums (Float32) as one message: the model must fit one chunk. */
export const HE_MAX_PARAMETERS = 1_048_575;
/**
 * Most ciphertext bytes one message to the he key holder carries: one vector of ciphertexts (the
 * sum, or one contribution with keyHolderSums); under the 100 MiB a `ws` client accepts by default.
 */
export const MAX_HE_DECRYPT_BYTES = 64 * 1024 * 1024;
/** Base64 of the largest serialized public key of any parameter set (bounded before decoding). */
const HE_MAX_PUBLIC_KEY_CHARS = Math.max(
  ...Object.values(HE_PARAMETER_SETS).map((s: HeParameterSet) => 4 * Math.ceil(s.publicKeyBytes / 3)),
);

/** Options of `secureAggregation: "he"`; `publicKey` and `keyHolder` are required. */
export const HeOptionsSchema = z
  .object({
    /** The lattice parameters (shared/he/parameters.ts); the key must belong to them. @default "bfv-4096" */
    parameterSet: z.enum(HE_PARAMETER_SET_NAMES).default(DEFAULT_HE_PARAMETER_SET),
    /** The key holder's HE public key: SEAL's seeded serialization, uncompressed, as base64 (`tributary he-keyholder keygen` prints it). */
    publicKey: z
      .string()
      .max(HE_MAX_PUBLIC_KEY_CHARS)
      .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected the public key as base64'),
    /** The key holder's Ed25519 public key (its client id), as 64 lowercase hex characters. */
    keyHolder: z.string().regex(/^[0-9a-f]{64}$/, "expected the key holder's client id (32 bytes as lowercase hex)"),
    /** Bits per quantised value, sign included. @default 16 */
    bits: z.number().int().min(2).max(24).default(16),
    /**
     * Weighted deltas (and the weight itself, at most 1) are quantised on [-clipRange, clipRange];
     * values outside are clipped and counted. At least 1 so the weight is never clipped. @default 1
     */
    clipRange: z.number().min(1).max(1e6).default(1),
    /** A client's weight is min(numExamples, maxExampleWeight) examples (encrypted as a ratio of it). @default 100000 */
    maxExampleWeight,
    /** How long the coordinator waits for the key holder to decrypt an aggregate. @default 60000 */
    decryptTimeoutMs: positiveInt.min(100).max(3_600_000).default(60_000),
    /**
     * The key holder receives every contribution's ciphertexts (one message each) and adds them
     * itself, after checking each against its signed digest, instead of trusting the coordinator's
     * sum: a malicious coordinator can then never have one client's update decrypted alone. Costs
     * the key holder (and the coordinator, which keeps the contributions until the reveal) up to
     * maxClients × one update's bytes per decryption instead of one update's. `false` sends only the
     * coordinator's sum: for operators who trust their coordinator not to pass one client's
     * ciphertexts off as a sum (the stock key holder then decrypts whatever it is sent as the sum
     * of the listed, signed contributions). @default true
     */
    keyHolderSums: z.boolean().default(true),
  })
  .strict()
  .superRefine((o, ctx) => {
    const set = heParameterSet(o.parameterSet);
    if (o.publicKey.length !== 4 * Math.ceil(set.publicKeyBytes / 3)) {
      ctx.addIssue({
        code: 'custom',
        path: ['publicKey'],
        message: `a ${set.name} public key is ${set.publicKeyBytes} bytes, ${4 * Math.ceil(set.publicKeyBytes / 3)} base64 characters; got ${o.publicKey.length} characters`,
      });
      return;
    }
    const problem = publicKeyProblem(set, Buffer.from(o.publicKey, 'base64'));
    if (problem) ctx.addIssue({ code: 'custom', path: ['publicKey'], message: problem });
  });
export type HeOptions = z.infer<typeof HeOptionsSchema>;

/** A mode registered at run time (research, tests) is named `x-<name>`, never like a built-in one. */
export type ExtensionModeName = `x-${string}`;

/** The aggregation part of a parsed job spec. */
export type AggregationSpec =
  | { secureAggregation: 'none'; none: NoneOptions }
  | { secureAggregation: 'secagg'; secagg: SecAggOptions }
  | { secureAggregation: 'paillier'; paillier: PaillierOptions }
  | { secureAggregation: 'he'; he: HeOptions }
  | { secureAggregation: ExtensionModeName; aggregationOptions: Record<string, unknown> };
export type AggregationMode = AggregationSpec['secureAggregation'];
export type BuiltinAggregationMode = 'none' | 'secagg' | 'paillier' | 'he';

/** The spec fields a mode's rules may look at (after the common fields parsed). */
export interface SpecForModeRules {
  minClients: number;
  maxClients: number;
}

/**
 * How one mode's part of the job spec parses: its options block, the quorum it needs by default,
 * and the rules it adds on the whole spec (each returns an error message or null).
 */
export interface AggregationSpecDefinition<Options = unknown> {
  readonly name: string;
  readonly options: z.ZodType<Options>;
  /** Fewest clients a round needs by default in this mode. */
  readonly defaultMinClients: number;
  rules(spec: SpecForModeRules, options: Options): Array<{ path: (string | number)[]; message: string }>;
  /** Client ids with a role in this mode's jobs other than provider (e.g. the paillier key holder). */
  roleHolders?(options: Options): string[];
}

const builtinDefinitions = {
  none: {
    name: 'none',
    options: NoneOptionsSchema,
    defaultMinClients: 2,
    rules: () => [],
  } satisfies AggregationSpecDefinition<NoneOptions>,
  secagg: {
    name: 'secagg',
    options: SecAggOptionsSchema,
    // SecAgg+ hides an input only among at least 3 clients, so its default quorum is 3.
    defaultMinClients: 3,
    rules: (s, o) => {
      const issues: Array<{ path: (string | number)[]; message: string }> = [];
      if (s.minClients < 3) {
        issues.push({
          path: ['minClients'],
          message: 'secureAggregation "secagg" needs minClients >= 3 (SecAgg+ hides an input only among at least 3)',
        });
      }
      if (s.maxClients > SECAGG_MAX_CLIENTS) {
        issues.push({
          path: ['maxClients'],
          message: `secureAggregation "secagg" sums at most ${SECAGG_MAX_CLIENTS} clients per round; lower maxClients`,
        });
      }
      if (o.cohortSize !== undefined && s.minClients < o.cohortSize) {
        issues.push({
          path: ['secagg', 'cohortSize'],
          message: 'secagg.cohortSize must not exceed minClients (a round of minClients clients must fill one cohort)',
        });
      }
      return issues;
    },
  } satisfies AggregationSpecDefinition<SecAggOptions>,
  paillier: {
    name: 'paillier',
    options: PaillierOptionsSchema,
    defaultMinClients: 2,
    rules: (s, o) => {
      const issues: Array<{ path: (string | number)[]; message: string }> = [];
      if (s.minClients < 2) {
        issues.push({
          path: ['minClients'],
          message: 'secureAggregation "paillier" needs minClients >= 2 (the key holder must only ever decrypt a sum)',
        });
      }
      try {
        paillierParamsOf({ maxClients: s.maxClients, paillier: o });
      } catch (err) {
        issues.push({ path: ['maxClients'], message: `secureAggregation "paillier": ${(err as Error).message}` });
      }
      return issues;
    },
    roleHolders: (o) => [o.keyHolder],
  } satisfies AggregationSpecDefinition<PaillierOptions>,
  he: {
    name: 'he',
    options: HeOptionsSchema,
    defaultMinClients: 2,
    rules: (s, o) => {
      const issues: Array<{ path: (string | number)[]; message: string }> = [];
      if (s.minClients < 2) {
        issues.push({
          path: ['minClients'],
          message: 'secureAggregation "he" needs minClients >= 2 (the key holder must only ever decrypt a sum)',
        });
      }
      const set = heParameterSet(o.parameterSet);
      const headroom = maxClientsForHeadroom(o, set.plainModulus);
      if (s.maxClients > headroom) {
        issues.push({
          path: ['maxClients'],
          message: `secureAggregation "he": with ${o.bits}-bit values the plain modulus of ${set.name} holds the sum of at most ${headroom} clients; lower maxClients or he.bits`,
        });
      }
      if (s.maxClients > set.maxSummands) {
        issues.push({
          path: ['maxClients'],
          message: `secureAggregation "he": ${set.name} keeps enough noise budget for sums of at most ${set.maxSummands} clients; lower maxClients`,
        });
      }
      return issues;
    },
  } satisfies AggregationSpecDefinition<HeOptions>,
} as const;

const extensions = new Map<string, AggregationSpecDefinition>();

/**
 * Registers the spec part of a mode added at run time (research and tests). Its options travel in
 * `aggregationOptions`. Registering a built-in name or registering twice throws.
 */
export function registerAggregationSpec<Options>(definition: AggregationSpecDefinition<Options>): void {
  if (definition.name in builtinDefinitions || extensions.has(definition.name)) {
    throw new Error(`aggregation mode "${definition.name}" is already registered`);
  }
  if (!/^x-[a-z][a-z0-9-]{0,29}$/.test(definition.name)) {
    throw new Error(
      `modes registered at run time are named x-<name> ([a-z0-9-], at most 32 characters), got "${definition.name}"`,
    );
  }
  extensions.set(definition.name, definition as AggregationSpecDefinition);
}

/** Removes a mode registered with registerAggregationSpec (tests clean up after themselves). */
export function unregisterAggregationSpec(name: string): void {
  extensions.delete(name);
}

/** The raw (input) aggregation fields of a job spec. */
export interface RawAggregationFields {
  secureAggregation?: unknown;
  none?: unknown;
  secagg?: unknown;
  paillier?: unknown;
  he?: unknown;
  aggregationOptions?: unknown;
}

/** The mode definition a raw spec names, or an error message. The default mode is `secagg`. */
export function aggregationDefinitionOf(
  raw: RawAggregationFields,
): { definition: AggregationSpecDefinition; optionsKey: string } | { error: string } {
  const mode = raw.secureAggregation ?? 'secagg';
  if (typeof mode !== 'string') return { error: 'secureAggregation must be a mode name' };
  if (Object.hasOwn(builtinDefinitions, mode)) {
    return {
      definition: builtinDefinitions[mode as BuiltinAggregationMode] as AggregationSpecDefinition,
      optionsKey: mode,
    };
  }
  const extension = extensions.get(mode);
  if (extension) return { definition: extension, optionsKey: 'aggregationOptions' };
  const known = [...Object.keys(builtinDefinitions), ...extensions.keys()].map((m) => `"${m}"`).join(', ');
  return { error: `secureAggregation must be one of ${known}, got ${JSON.stringify(mode).slice(0, 80)}` };
}

/** The client ids that hold a role in a job's aggregation mode besides its providers (they may read the job as members). */
export function roleHoldersOf(spec: AggregationSpec): string[] {
  const found = aggregationDefinitionOf(spec);
  if ('error' in found) return [];
  const options = (spec as unknown as Record<string, unknown>)[found.optionsKey];
  return found.definition.roleHolders?.(options) ?? [];
}

/** The packed-Paillier parameters of a paillier job (key size from n, headroom for maxClients). */
export function paillierParamsOf(spec: { maxClients: number; paillier: PaillierOptions }) {
  const options = spec.paillier;
  const keyBits = BigInt(`0x${options.publicKey.n}`).toString(2).length;
  return createPackedPaillierParams({
    keyBits,
    bits: options.bits,
    clipRange: options.clipRange,
    maxClients: spec.maxClients,
  });
}

/** The HE vector parameters of an he job (the parameter set and the quantiser). */
export function heParamsOf(options: HeOptions): { set: HeParameterSet; bits: number; clipRange: number } {
  return { set: heParameterSet(options.parameterSet), bits: options.bits, clipRange: options.clipRange };
}
