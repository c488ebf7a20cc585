import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { TributaryError } from '../shared/errors';
import { generateIdentity, identityFromSecretKey, type Identity } from '../shared/identity/keyPair';

const KeyFileSchema = z.object({
  version: z.literal(1),
  kind: z.literal('ed25519'),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/),
  secretKey: z.string().regex(/^[0-9a-f]{128}$/),
});

/**
 * Loads the client's Ed25519 identity from `path`, creating it (mode 0600) on first run.
 * The file holds the secret key: it never leaves the provider's machine and is never logged.
 */
export function loadOrCreateIdentity(path: string): Identity {
  if (!existsSync(path)) {
    const identity = generateIdentity();
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const file = {
      version: 1,
      kind: 'ed25519',
      publicKey: identity.clientId,
      secretKey: Buffer.from(identity.secretKey).toString('hex'),
    };
    writeFileSync(path, JSON.stringify(file, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
    return identity;
  }
  let parsed: z.infer<typeof KeyFileSchema>;
  try {
    parsed = KeyFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new TributaryError('CONFIG_INVALID', `Key file ${path} is not a Tributary ed25519 key file (version 1).`, { cause: err });
  }
  const identity = identityFromSecretKey(Buffer.from(parsed.secretKey, 'hex'));
  if (identity.clientId !== parsed.publicKey) {
    throw new TributaryError('CONFIG_INVALID', `Key file ${path}: the public key does not match the secret key.`);
  }
  return identity;
}
