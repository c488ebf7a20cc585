import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { Wallet } from 'ethers';
import { z } from 'zod';
import { writeNewSecretJsonFile } from '../shared/identity/secretFile';
import { TributaryError } from '../shared/errors';
import { generateIdentity, identityFromSecretKey, type Identity } from '../shared/identity/keyPair';

const KeyFileSchema = z.object({
  version: z.literal(1),
  kind: z.literal('ed25519'),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/),
  secretKey: z.string().regex(/^[0-9a-f]{128}$/),
  /** The payout (Ethereum) private key; added on first use to files written before it existed. */
  ethPrivateKey: z
    .string()
    .regex(/^0x[0-9a-f]{64}$/)
    .optional(),
});

/**
 * Loads the client's Ed25519 identity from `path`, creating it (mode 0600) on first run.
 * The file holds the secret key: it never leaves the provider's machine and is never logged.
 */
export function loadOrCreateIdentity(path: string): Identity {
  if (!existsSync(path)) {
    const identity = generateIdentity();
    const file = {
      version: 1,
      kind: 'ed25519',
      publicKey: identity.clientId,
      secretKey: Buffer.from(identity.secretKey).toString('hex'),
      ethPrivateKey: Wallet.createRandom().privateKey,
    };
    writeNewSecretJsonFile(path, file);
    return identity;
  }
  const parsed = readKeyFile(path);
  const identity = identityFromSecretKey(Buffer.from(parsed.secretKey, 'hex'));
  if (identity.clientId !== parsed.publicKey) {
    throw new TributaryError('CONFIG_INVALID', `Key file ${path}: the public key does not match the secret key.`);
  }
  return identity;
}

/**
 * CONFIG_INVALID when the key file can be read or written by its group or others, as ssh refuses such
 * private keys: another local user could take the identity (and the payout key). Fix with chmod 600.
 * (POSIX permissions only; skipped on Windows.)
 */
export function assertPrivateKeyFile(path: string): void {
  if (process.platform === 'win32') return;
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Key file ${path} has permissions 0${mode.toString(8)}: it is accessible by others. Run \`chmod 600 ${path}\`; the key is refused until then.`,
      { details: { mode: `0${mode.toString(8)}` } },
    );
  }
}

function readKeyFile(path: string): z.infer<typeof KeyFileSchema> {
  assertPrivateKeyFile(path);
  try {
    return KeyFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    // Never echo the file: it holds secret keys.
    throw new TributaryError('CONFIG_INVALID', `Key file ${path} is not a Tributary ed25519 key file (version 1).`, {
      cause: err,
    });
  }
}

/**
 * The client's payout (Ethereum) key from the same key file (created with the identity if absent;
 * added to an older file on first use, written atomically with mode 0600). Never logged.
 */
export function loadOrCreatePayoutKey(path: string): Wallet {
  loadOrCreateIdentity(path);
  const parsed = readKeyFile(path);
  if (parsed.ethPrivateKey) return new Wallet(parsed.ethPrivateKey);
  const wallet = Wallet.createRandom();
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ ...parsed, ethPrivateKey: wallet.privateKey }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return new Wallet(wallet.privateKey);
}
