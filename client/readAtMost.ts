import { TributaryError } from '../shared/errors';

/**
 * Reads a response body, refusing (PAYLOAD_TOO_LARGE) as soon as it declares or delivers more than
 * `maxBytes`: a coordinator cannot make a client buffer more than the job's model size.
 */
export async function readAtMost(response: Response, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw new TributaryError(
      'PAYLOAD_TOO_LARGE',
      `The download declares ${declared} bytes; at most ${maxBytes} were expected.`,
    );
  }
  const out = new Uint8Array(maxBytes);
  let filled = 0;
  const reader = response.body?.getReader();
  if (!reader) return out.subarray(0, 0);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (filled + value.length > maxBytes) {
      await reader.cancel();
      throw new TributaryError('PAYLOAD_TOO_LARGE', `The download exceeds the ${maxBytes} bytes expected.`);
    }
    out.set(value, filled);
    filled += value.length;
  }
  return out.subarray(0, filled);
}
