import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ListingIdSchema, type ListingId } from './jobAccess';
import { InputSpecSchema, LIMITS, type InputSpec } from './jobSpec';

/*
 * Dataset listings: what a data provider publishes so buyers can find its dataset and invite it to a
 * job. A listing describes the data (the input spec it satisfies, its size, domain tags, a price);
 * it never carries data. The provider signs the canonical bytes with its Ed25519 client key, so
 * anyone holding the listing can check who published it and that nothing was altered.
 */

/** Domain tag of listing signatures: a listing signature is never valid as any other message. */
export const LISTING_SIGNING_DOMAIN = 'tributary/listing/v1';
/** Domain tag of a provider's request to delete one of its listings. */
export const LISTING_DELETE_DOMAIN = 'tributary/listing-delete/v1';

const ClientIdSchema = z.string().regex(/^[0-9a-f]{64}$/, 'expected an Ed25519 client id (32 bytes as lowercase hex)');
const NonceSchema = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 128-bit nonce as 32 lowercase hex digits');
const SignatureSchema = z
  .string()
  .regex(/^[0-9a-f]{128}$/, 'expected an Ed25519 signature as 128 lowercase hex digits');

/** A domain tag: lowercase letters, digits and dashes, e.g. "weather" or "medical-imaging". */
export const ListingTagSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,31}$/,
    'expected a tag of 1-32 lowercase letters, digits or dashes, starting with a letter or digit',
  );

/** Largest uint256: prices are paid on an EVM chain. */
const MAX_UINT256 = 2n ** 256n - 1n;

/** A price in wei as a decimal string (no sign, no leading zeros, at most 2^256 - 1). */
export const WeiAmountSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/, 'expected an amount in wei as a decimal string without leading zeros')
  // zod runs refinements even after the regex failed: BigInt only sees plain digits.
  .refine((v) => !/^[0-9]+$/.test(v) || BigInt(v) <= MAX_UINT256, { message: 'the amount exceeds 2^256 - 1 wei' });

/** Upper bounds of a listing's free-text and list fields. */
export const LISTING_LIMITS = {
  maxNameLength: 200,
  maxDescriptionLength: 4_000,
  maxTags: 16,
  /** More rows than any dataset a client can load (2 GiB files). */
  maxRows: 1_000_000_000_000,
} as const;

/** The listing a provider signs. */
export const ListingSchema = z
  .object({
    name: z.string().min(1).max(LISTING_LIMITS.maxNameLength),
    /** @default "" */
    description: z.string().max(LISTING_LIMITS.maxDescriptionLength).default(''),
    /** The input spec the dataset satisfies: a job with a matching `input` can train on it. */
    schema: InputSpecSchema,
    /** Number of examples. */
    rows: z.number().int().positive().max(LISTING_LIMITS.maxRows),
    /** Domain tags, distinct. @default [] */
    tags: z
      .array(ListingTagSchema)
      .max(LISTING_LIMITS.maxTags)
      .default([])
      .refine((t) => new Set(t).size === t.length, { message: 'tags must be distinct' }),
    /** What the provider asks per training round it takes part in, in wei (decimal string). */
    pricePerRoundWei: WeiAmountSchema,
    /** The provider's Ed25519 client id: the key that signs the listing and later joins jobs. */
    provider: ClientIdSchema,
    /** When the provider signed it (ms since the epoch); the coordinator accepts only fresh listings. */
    createdAt: z.number().int().positive().max(8.64e15),
    /** Makes every signed listing unique, so a captured one cannot be replayed. */
    nonce: NonceSchema,
  })
  .strict();
export type Listing = z.infer<typeof ListingSchema>;
/** A listing before defaults (description, tags, labelColumn) are filled in. */
export type ListingInput = z.input<typeof ListingSchema>;

/** Body of POST /v1/listings: the listing and the provider's signature over its canonical bytes. */
export const SignedListingSchema = z.object({ listing: ListingSchema, signature: SignatureSchema }).strict();
export type SignedListing = z.infer<typeof SignedListingSchema>;

/** Body of DELETE /v1/listings/:id, signed by the listing's provider. */
export const ListingDeleteRequestSchema = z
  .object({
    timestamp: z.number().int().positive().max(8.64e15),
    nonce: NonceSchema,
    signature: SignatureSchema,
  })
  .strict();
export type ListingDeleteRequest = z.infer<typeof ListingDeleteRequestSchema>;

/**
 * The exact bytes a provider signs: a JSON array in a fixed field order behind the domain tag, so
 * the bytes do not depend on key order. Computed from the parsed listing (defaults filled in).
 */
export function listingSigningBytes(listing: Listing): Buffer {
  const { provider, name, description, schema, rows, tags, pricePerRoundWei, createdAt, nonce, ...unsignedListing } =
    listing;
  const { shape, featureColumns, labelColumn, numClasses, ...unsignedSchema } = schema;
  // Every field must be signed: a field added to Listing or InputSpec fails to compile here until it is.
  void (unsignedListing satisfies Record<string, never>);
  void (unsignedSchema satisfies Record<string, never>);
  return Buffer.from(
    JSON.stringify([
      LISTING_SIGNING_DOMAIN,
      provider,
      name,
      description,
      [shape, featureColumns ?? null, labelColumn, numClasses],
      rows,
      tags,
      pricePerRoundWei,
      createdAt,
      nonce,
    ]),
    'utf8',
  );
}

/** The bytes a provider signs to delete listing `id`. */
export function listingDeleteBytes(id: ListingId, timestamp: number, nonce: string): Buffer {
  return Buffer.from(JSON.stringify([LISTING_DELETE_DOMAIN, id, timestamp, nonce]), 'utf8');
}

/** A listing's id: "lst_" and 24 hex digits of the SHA-256 of its canonical bytes. */
export function listingIdOf(listing: Listing): ListingId {
  return ListingIdSchema.parse(
    `lst_${createHash('sha256').update(listingSigningBytes(listing)).digest('hex').slice(0, 24)}`,
  );
}

/**
 * A listing search. Every field is optional; a listing matches when it meets all that are given.
 * `featureColumns` match as a set (loaders pick CSV columns by name, so order does not matter); a
 * listing that names no feature columns never matches a search that names some.
 */
export interface ListingQuery {
  /** The listing carries every one of these tags. */
  tags?: string[];
  shape?: number[];
  numClasses?: number;
  featureColumns?: string[];
  labelColumn?: string;
  /** At least this many rows. */
  minRows?: number;
  provider?: string;
  /** One of these listing ids (a store-side criterion: the REST search does not take it). */
  ids?: readonly string[];
  /** At most this many results. @default 100 */
  limit?: number;
  /** Start after this listing in the result order (newest publishedAt first, ties by id): the next page. */
  after?: { publishedAt: Date; id: string };
}

/** Search results per request at most. */
export const MAX_LISTING_RESULTS = 1_000;
export const DEFAULT_LISTING_RESULTS = 100;

/** The canonical key of a shape ("28x28x1"): equal shapes, equal keys. */
export function shapeKeyOf(shape: readonly number[]): string {
  return shape.join('x');
}

/** The canonical key of a set of feature columns (sorted, JSON): equal sets, equal keys. */
export function featureColumnsKeyOf(columns: readonly string[]): string {
  return JSON.stringify([...columns].sort());
}

/** Whether a listing meets a query's content criteria (the rule both store backends apply; `ids` is checked on the record). */
export function listingMatches(listing: Listing, query: ListingQuery): boolean {
  const s = listing.schema;
  if (query.provider !== undefined && listing.provider !== query.provider) return false;
  if (query.minRows !== undefined && listing.rows < query.minRows) return false;
  if (query.numClasses !== undefined && s.numClasses !== query.numClasses) return false;
  if (query.labelColumn !== undefined && s.labelColumn !== query.labelColumn) return false;
  if (query.shape !== undefined && shapeKeyOf(s.shape) !== shapeKeyOf(query.shape)) return false;
  if (query.featureColumns !== undefined) {
    if (!s.featureColumns || featureColumnsKeyOf(s.featureColumns) !== featureColumnsKeyOf(query.featureColumns))
      return false;
  }
  if (query.tags !== undefined && !query.tags.every((t) => listing.tags.includes(t))) return false;
  return true;
}

/**
 * The query that finds listings a job with input spec `input` can train on: same shape, classes and
 * label column, and the job's feature columns if it names them.
 */
export function queryForInput(input: InputSpec): ListingQuery {
  return {
    shape: input.shape,
    numClasses: input.numClasses,
    labelColumn: input.labelColumn,
    ...(input.featureColumns ? { featureColumns: input.featureColumns } : {}),
  };
}

// Query-string values arrive as a string or (repeated keys) an array of strings; lists are comma-separated.
const listParam = z.union([z.string(), z.array(z.string()).max(64)]).transform((v) =>
  (Array.isArray(v) ? v : [v])
    .flatMap((x) => x.split(','))
    .map((x) => x.trim())
    .filter((x) => x.length > 0),
);

/** Query parameters of GET /v1/listings (all optional; lists comma-separated). */
export const ListingSearchParamsSchema = z
  .object({
    tags: listParam.pipe(z.array(ListingTagSchema).max(LISTING_LIMITS.maxTags)).optional(),
    shape: listParam
      .pipe(
        z
          .array(
            z
              .string()
              .regex(/^[1-9][0-9]{0,8}$/, 'expected a positive integer')
              .transform(Number),
          )
          .min(1)
          .max(LIMITS.maxTensorRank),
      )
      .optional(),
    numClasses: z.coerce.number().int().min(2).max(LIMITS.maxClasses).optional(),
    featureColumns: listParam.pipe(z.array(z.string().min(1).max(128)).min(1).max(10_000)).optional(),
    labelColumn: z.string().min(1).max(128).optional(),
    minRows: z.coerce.number().int().min(0).max(LISTING_LIMITS.maxRows).optional(),
    provider: ClientIdSchema.optional(),
    limit: z.coerce.number().int().min(1).max(MAX_LISTING_RESULTS).optional(),
  })
  .strict();

/** A published listing as the REST API returns it (GET /v1/listings, /v1/listings/:id, POST's answer). */
export const PublishedListingSchema = z.object({
  id: ListingIdSchema,
  listing: ListingSchema,
  signature: SignatureSchema,
  publishedAt: z.string(),
});
export type PublishedListing = z.infer<typeof PublishedListingSchema>;
