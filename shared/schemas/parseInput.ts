import type { z } from 'zod';
import { toTributaryError } from '../errors';

/** Parses input from a peer or a user: a mismatch throws VALIDATION_FAILED naming the fields (never a raw ZodError). */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw toTributaryError(result.error);
  return result.data;
}
