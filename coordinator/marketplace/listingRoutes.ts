import express, { type Router } from 'express';
import { requireJsonBody, wrap } from '../http/asyncRoute';
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

/** Mounts the marketplace endpoints (/listings) on the /v1 router; errors flow to its error handler. */
export function mountListingRoutes(r: Router, listings: ListingRegistry): void {
  // Listings are small: a listing with 10,000 feature columns is about 200 kB.
  const json = express.json({ limit: 1024 * 1024 });

  r.post(
    '/listings',
    json,
    wrap(async (req, res) => {
      requireJsonBody(req);
      res.status(201).json(listingView(await listings.publish(req.body)));
    }),
  );

  r.get(
    '/listings',
    wrap(async (req, res) => {
      res.json({ listings: (await listings.search(req.query)).map(listingView) });
    }),
  );

  r.get(
    '/listings/:listingId',
    wrap(async (req, res) => {
      res.json(listingView(await listings.get(req.params.listingId)));
    }),
  );

  r.delete(
    '/listings/:listingId',
    json,
    wrap(async (req, res) => {
      requireJsonBody(req);
      await listings.remove(req.params.listingId, req.body);
      res.status(204).end();
    }),
  );
}
