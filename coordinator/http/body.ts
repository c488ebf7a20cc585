import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { TributaryError } from '../../shared/errors';
import { assertSignedBody, hasBody } from '../auth/authenticate';

/*
 * Request bodies are read only by the routes that take one, after authentication and authorisation
 * (so a refused request is never parsed), with a per-route size limit (a larger Content-Length is
 * refused before reading), and checked against the Content-Digest a signed request committed to.
 */

/**
 * Reads the body as bytes (req.body: Buffer), at most `limit` bytes, and checks a signed digest; `gate`
 * admits it first. res.locals.bodySha256 holds the body's SHA-256 (hex).
 */
export function rawBody(limit: number, gate?: RequestHandler): RequestHandler[] {
  return [
    ...(gate ? [gate] : []),
    express.raw({ type: () => true, limit }),
    (req: Request, res: Response, next: NextFunction) => {
      const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      req.body = bytes;
      try {
        res.locals.bodySha256 = assertSignedBody(req, bytes).toString('hex');
        next();
      } catch (err) {
        next(err);
      }
    },
  ];
}

/** A JSON body (Content-Type application/json), at most `limit` bytes: req.body is the parsed value. */
export function jsonBody(limit: number, gate?: RequestHandler): RequestHandler[] {
  return [
    (req: Request, _res: Response, next: NextFunction) => {
      // Checked before reading, so a wrongly typed body costs nothing.
      if (!req.is('application/json')) {
        next(new TributaryError('VALIDATION_FAILED', 'Expected a JSON body (Content-Type: application/json).'));
      } else next();
    },
    ...rawBody(limit, gate),
    (req: Request, _res: Response, next: NextFunction) => {
      try {
        req.body = JSON.parse((req.body as Buffer).toString('utf8'));
        next();
      } catch {
        next(new TributaryError('VALIDATION_FAILED', 'The body is not valid JSON.'));
      }
    },
  ];
}

/** Like jsonBody, but a request without a body gets `{}`. */
export function optionalJsonBody(limit: number, gate?: RequestHandler): RequestHandler {
  const chain = jsonBody(limit, gate);
  return (req, res, next) => {
    if (!hasBody(req)) {
      req.body = {};
      next();
      return;
    }
    let i = 0;
    const step = (err?: unknown): void => {
      const handler = chain[i++];
      if (err) next(err);
      else if (!handler) next();
      else handler(req, res, step);
    };
    step();
  };
}
