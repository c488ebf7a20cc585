import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeNewSecretJsonFile } from '../../shared/identity/secretFile';
import { TributaryError } from '../../shared/errors';
import { generateIdentity, identityFromSecretKey, type Identity } from '../../shared/identity/keyPair';

/** What the key file is for, written into it so a client key file is never taken for it (or the reverse). */
export const TRANSCRIPT_KEY_USE = 'tributary/coordinator-transcripts';

const TranscriptKeyFileSchema = z
  .object({
    version: z.literal(1),
    kind: z.literal('ed25519'),
    use: z.literal(TRANSCRIPT_KEY_USE),
    publicKey: z.string().regex(/^[0-9a-f]{64}$/),
    secretKey: z.string().regex(/^[0-9a-f]{128}$/),
  })
  .strict();

/**
 * The coordinator's Ed25519 transcript key from `path`, created there (mode 0600, directory 0700) when
 * the file does not exist. The file holds the secret key; it is never logged or echoed in errors.
 */
export function loadOrCreateTranscriptKey(path: string): Identity {
  if (!existsSync(path)) {
    const identity = generateIdentity();
    const file = {
      version: 1,
      kind: 'ed25519',
      use: TRANSCRIPT_KEY_USE,
      publicKey: identity.clientId,
      secretKey: Buffer.from(identity.secretKey).toString('hex'),
    };
    // 'wx': two coordinators started at once on one path never overwrite each other's key.
    writeNewSecretJsonFile(path, file);
    return identity;
  }
  let parsed: z.infer<typeof TranscriptKeyFileSchema>;
  try {
    parsed = TranscriptKeyFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Transcript key file ${path} is not a Tributary coordinator transcript key (version 1, use "${TRANSCRIPT_KEY_USE}").`,
      { cause: err },
    );
  }
  const identity = identityFromSecretKey(Buffer.from(parsed.secretKey, 'hex'));
  if (identity.clientId !== parsed.publicKey) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Transcript key file ${path}: the public key does not match the secret key.`,
    );
  }
  return identity;
}
