import { combine, split } from 'shamir-secret-sharing';
import { TributaryError } from '../errors';

/** Bytes of one share of a 32-byte secret: the 32 y-bytes and one x-coordinate byte (shamir-secret-sharing's format). */
export const SHARE_BYTES = 33;
export const SECRET_BYTES = 32;
/** shamir-secret-sharing works in GF(2^8): at most 255 shares. */
export const MAX_SHARES = 255;

/**
 * Splits a 32-byte secret into `shares` Shamir shares over GF(2^8), any `threshold` of which
 * reconstruct it (audited `shamir-secret-sharing` package; randomness from crypto.getRandomValues).
 */
export async function splitSecret(secret: Uint8Array, shares: number, threshold: number): Promise<Uint8Array[]> {
  if (secret.length !== SECRET_BYTES) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `a secret to share must be ${SECRET_BYTES} bytes, got ${secret.length}`,
    );
  }
  if (
    !(
      Number.isInteger(threshold) &&
      Number.isInteger(shares) &&
      threshold >= 2 &&
      threshold <= shares &&
      shares <= MAX_SHARES
    )
  ) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `expected 2 <= threshold <= shares <= ${MAX_SHARES}, got threshold ${threshold} of ${shares}`,
    );
  }
  return split(secret, shares, threshold);
}

/**
 * Reconstructs a secret from shares. The caller must pass at least the threshold: with fewer, Shamir
 * reconstruction returns an unrelated value (it cannot detect this); check the result where you can
 * (e.g. a reconstructed secret key against its public key).
 */
export async function combineShares(shares: readonly Uint8Array[]): Promise<Uint8Array> {
  if (shares.length < 2 || shares.length > MAX_SHARES) {
    throw new TributaryError('VALIDATION_FAILED', `expected 2 to ${MAX_SHARES} shares, got ${shares.length}`);
  }
  const xs = new Set<number>();
  for (const s of shares) {
    if (s.length !== SHARE_BYTES)
      throw new TributaryError('VALIDATION_FAILED', `a share must be ${SHARE_BYTES} bytes, got ${s.length}`);
    xs.add(s[SHARE_BYTES - 1]);
  }
  if (xs.size !== shares.length) throw new TributaryError('VALIDATION_FAILED', 'two shares have the same x-coordinate');
  return combine([...shares]);
}
