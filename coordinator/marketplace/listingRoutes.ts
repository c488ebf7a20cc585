import type { RequestHandler, Router } from 'express';
import { z } from 'zod';
import { ListingDeleteRequestSchema, SignedListingSchema } from '../../shared/schemas/listing';
import { type ApiDocument, mountRoute } from '../http/apiRoute';
import {
  ListingListSchema,
  ListingParamsSchema,
  ListingViewSchema,
  PageQuerySchema,
} from '../../shared/schemas/restApi';
import { jsonBody } from '../http/body';
import { pageOf, readTimeCursor, timeCursor } from '../http/pagination';
import type { ListingRecord } from '../store/store';
import type { ListingRegistry } from './listingRegistry';

/** The public view of a listing: the signed listing as published (anyone can re-verify it), its id and when it arrived. */
export function listingView(record: ListingRecord) {
  return {
    id: record.id,
    listing: record.listing,
    signature: record.signature,
    publishedAt: record.publishedAt.toISOString(),
  };
}

/** A listing in a summary list: what a buyer filters on, without the signature. */
export function listingSummary(record: ListingRecord) {
  const l = record.listing;
  return {
    id: record.id,
    provider: l.provider,
    name: l.name,
    rows: l.rows,
    tags: l.tags,
    shape: l.schema.shape,
    numClasses: l.schema.numClasses,
    pricePerRoundWei: l.pricePerRoundWei,
    publishedAt: record.publishedAt.toISOString(),
  };
}

// Search criteria (shared/schemas/listing.ts ListingSearchParamsSchema) plus paging, for the documentation.
const ListingQueryDoc = PageQuerySchema.extend({
  tags: z.string().optional(),
  shape: z.string().optional(),
  numClasses: z.string().optional(),
  featureColumns: z.string().optional(),
  labelColumn: z.string().optional(),
  minRows: z.string().optional(),
  provider: z.string().optional(),
});

/** Mounts the marketplace endpoints (/listings) on the /v1 router; errors flow to its error handler. */
export function mountListingRoutes(
  r: Router,
  doc: ApiDocument,
  listings: ListingRegistry,
  gate?: RequestHandler,
): void {
  // Listings are small: a listing with 10,000 feature columns is about 200 kB.
  const json = jsonBody(1024 * 1024, gate);
  const tag = 'marketplace';

  mountRoute(
    r,
    doc,
    {
      method: 'post',
      path: '/listings',
      tag,
      auth: 'none',
      summary: 'Publish a dataset listing signed by its provider',
      description: 'The body carries its own Ed25519 signature, time and nonce; a quota bounds listings per provider.',
      body: { contentType: 'application/json', schema: SignedListingSchema },
      responses: { 201: { description: 'The listing as stored.', schema: ListingViewSchema } },
    },
    ...json,
    async (req, res) => {
      res.status(201).json(listingView(await listings.publish(req.body)));
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/listings',
      tag,
      auth: 'none',
      summary: 'Search listings, newest first',
      description:
        'Every criterion given must hold; lists are comma-separated. Paged; view=full (signed listings) by default.',
      query: ListingQueryDoc,
      responses: { 200: { description: 'One page of listings.', schema: ListingListSchema } },
    },
    async (req, res) => {
      const { limit: rawLimit, cursor, view: rawView, ...criteria } = req.query;
      const page = PageQuerySchema.parse({ limit: rawLimit, cursor, view: rawView });
      const { view, limit } = pageOf(page, 'full');
      const after = page.cursor !== undefined ? readTimeCursor(page.cursor) : undefined;
      const found = await listings.search(criteria, {
        limit: limit + 1,
        ...(after ? { after: { publishedAt: after.at, id: after.id } } : {}),
      });
      const shown = found.slice(0, limit);
      const last = shown[shown.length - 1];
      res.json({
        listings: shown.map((x) => (view === 'full' ? listingView(x) : listingSummary(x))),
        nextCursor: found.length > limit && last ? timeCursor(last.publishedAt, last.id) : null,
      });
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'get',
      path: '/listings/:listingId',
      tag,
      auth: 'none',
      summary: 'One listing, with its provider signature',
      params: ListingParamsSchema,
      responses: { 200: { description: 'The listing.', schema: ListingViewSchema } },
    },
    async (req, res) => {
      res.json(listingView(await listings.get(req.params.listingId)));
    },
  );

  mountRoute(
    r,
    doc,
    {
      method: 'delete',
      path: '/listings/:listingId',
      tag,
      auth: 'none',
      summary: "Delete a listing at its provider's signed request",
      params: ListingParamsSchema,
      body: { contentType: 'application/json', schema: ListingDeleteRequestSchema },
      responses: { 204: { description: 'Deleted.' } },
    },
    ...json,
    async (req, res) => {
      await listings.remove(req.params.listingId, req.body);
      res.status(204).end();
    },
  );
}
