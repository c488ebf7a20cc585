import type { NextFunction, Request, Response } from 'express';
import { TributaryError } from '../../shared/errors';

type Handler = (req: Request, res: Response) => Promise<void>;

/** An async route handler for express 4: a rejection goes to the router's error handler instead of being lost. */
export const wrap = (h: Handler) => (req: Request, res: Response, next: NextFunction) => h(req, res).catch(next);

/** VALIDATION_FAILED unless the request declares a JSON body (express.json skips any other type, leaving no body). */
export function requireJsonBody(req: Request): void {
  if (!req.is('application/json'))
    throw new TributaryError('VALIDATION_FAILED', 'Expected a JSON body (Content-Type: application/json).');
}
