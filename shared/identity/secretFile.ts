import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Writes `value` as JSON to a new file that only its owner can read (0600, in a 0700 directory when
 * it creates one), for files that hold secret keys. Flag 'wx' refuses to overwrite: two processes
 * creating one key file at once never replace each other's key. chmod after the write, because the
 * process umask can narrow the mode given at creation but never widen a file's mode back.
 */
export function writeNewSecretJsonFile(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}
