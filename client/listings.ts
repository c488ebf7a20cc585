import { closeSync, readSync } from 'node:fs';
import { z } from 'zod';
import { parseCsv } from '../shared/data/csvParser';
import { formatFromPath, loadDatasetFile, openDatasetFile, type DatasetFormat } from '../shared/data/loadDataset';
import { TributaryError } from '../shared/errors';
import type { Identity } from '../shared/identity/keyPair';
import { signListing, signListingDelete, type ListingDescription } from '../shared/identity/listingSignature';
import type { ListingId } from '../shared/schemas/jobAccess';
import { InputSpecSchema, LIMITS, type InputSpec } from '../shared/schemas/jobSpec';
import type { ListingQuery, PublishedListing } from '../shared/schemas/listing';
import { parseInput } from '../shared/schemas/parseInput';
import { createBuyerClient } from './buyer/client';
import { searchListings as searchListingsAction } from './buyer/searchListings';
import { verifyPublishedListing } from './listingVerification';

export { verifyPublishedListing };

/*
 * The marketplace from the client side: providers publish and delete signed dataset listings,
 * buyers search them (through the buyer SDK's client, signed by the provider's key where there is
 * one); every answer is validated, and every listing that comes back is re-verified (id and provider
 * signature), so a coordinator cannot forge or alter one.
 */

/** Options of publishListing. */
export interface PublishListingOptions {
  /** Coordinator base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** The provider's identity: its client id becomes the listing's `provider`. */
  identity: Identity;
  /** What to publish (name, schema, rows, tags, pricePerRoundWei, description). */
  listing: ListingDescription;
}

/**
 * Signs a listing with the provider's key and publishes it (POST /v1/listings).
 * @example
 * const { id } = await publishListing({ url, identity, listing: {
 *   name: 'Seattle weather 2012-2015', schema: { shape: [4], numClasses: 5 }, rows: 1461,
 *   tags: ['weather'], pricePerRoundWei: '1000000000000000' } });
 */
export async function publishListing(options: PublishListingOptions): Promise<PublishedListing> {
  const signed = signListing(options.identity, options.listing);
  const client = createBuyerClient({ url: options.url, identity: options.identity });
  return verifyPublishedListing(
    await client.request({ method: 'POST', path: '/v1/listings', json: signed, response: { schema: z.unknown() } }),
  );
}

/** Searches listings (GET /v1/listings); every criterion given must hold. At most `query.limit` (default 20, at most 100). */
export async function searchListings(url: string, query: ListingQuery = {}): Promise<PublishedListing[]> {
  const { ids: _ids, after: _after, ...criteria } = query;
  return (await searchListingsAction(createBuyerClient({ url }), criteria)).listings;
}

/** One listing (GET /v1/listings/:id). */
export async function getListing(url: string, id: ListingId): Promise<PublishedListing> {
  const client = createBuyerClient({ url });
  return verifyPublishedListing(
    await client.request({
      method: 'GET',
      path: `/v1/listings/${encodeURIComponent(id)}`,
      response: { schema: z.unknown() },
    }),
  );
}

/** Deletes one of the provider's own listings (DELETE /v1/listings/:id, signed). */
export async function deleteListing(url: string, identity: Identity, id: ListingId): Promise<void> {
  await createBuyerClient({ url, identity }).request({
    method: 'DELETE',
    path: `/v1/listings/${encodeURIComponent(id)}`,
    json: signListingDelete(identity, id),
    response: { empty: true },
  });
}

/** Options of describeDatasetFile. */
export interface DescribeDatasetOptions {
  /** @default from the file extension */
  format?: DatasetFormat;
  /** @default "label" */
  labelColumn?: string;
  /** @default the largest label + 1 (at least 2) */
  numClasses?: number;
  /** Shape of one example. @default [number of feature columns]; required for JSON lines with `features` arrays */
  shape?: number[];
  /** @default every CSV column but the label, in header order */
  featureColumns?: string[];
}

/**
 * The schema and row count of a provider's dataset file, read and fully validated by the same
 * loaders the client trains with, so a listing describes data that will actually load.
 */
export function describeDatasetFile(
  path: string,
  options: DescribeDatasetOptions = {},
): { schema: InputSpec; rows: number } {
  const format = options.format ?? formatFromPath(path);
  const labelColumn = options.labelColumn ?? 'label';
  let featureColumns = options.featureColumns;
  if (!featureColumns && format === 'csv') {
    const header = readCsvHeader(path);
    featureColumns = header.filter((c) => c !== labelColumn);
    if (featureColumns.length === header.length) {
      throw new TributaryError(
        'DATA_COLUMNS_MISMATCH',
        `The CSV header of "${path}" has no label column ${JSON.stringify(labelColumn)}; pass --label-column.`,
      );
    }
  }
  const shape = options.shape ?? (featureColumns ? [featureColumns.length] : undefined);
  if (!shape) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Cannot tell the example shape of the JSON-lines file "${path}": pass the shape (e.g. --shape 28,28,1).`,
    );
  }
  const probe = parseInput(InputSpecSchema, {
    shape,
    featureColumns,
    labelColumn,
    numClasses: options.numClasses ?? LIMITS.maxClasses,
  });
  const dataset = loadDatasetFile(path, probe, { format });
  let largest = 0;
  for (let i = 0; i < dataset.count; i++) largest = Math.max(largest, dataset.y[i]);
  const schema = parseInput(InputSpecSchema, { ...probe, numClasses: options.numClasses ?? Math.max(2, largest + 1) });
  return { schema, rows: dataset.count };
}

/** The first record of a CSV file (its header), reading at most 1 MiB. */
function readCsvHeader(path: string): string[] {
  const fd = openDatasetFile(path);
  try {
    const buffer = Buffer.alloc(1024 * 1024);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    const text = buffer.subarray(0, n).toString('utf8');
    const end = text.search(/\r?\n/);
    const header = parseCsv(end >= 0 ? text.slice(0, end) : text)[0]?.fields;
    if (!header) throw new TributaryError('DATA_FILE_EMPTY', `The dataset file "${path}" has no header.`);
    return header;
  } finally {
    closeSync(fd);
  }
}
