import type { TributaryError } from '../../shared/errors';

/** The error code `fn` throws, or undefined if it returns: lets a test assert codes in one line. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as TributaryError).code;
  }
  return undefined;
}

/** The error code the promise `fn` returns rejects with, or undefined if it resolves. */
export async function codeOfAsync(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
  } catch (e) {
    return (e as TributaryError).code;
  }
  return undefined;
}
