import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { TributaryError } from '../shared/errors';
import { JobIdSchema } from '../shared/schemas/messages';

const ClientIdSchema = z.string().regex(/^[0-9a-f]{64}$/);
/** Far more entries than any job has round attempts (rounds × (maxRoundRetries + 1)). */
const MAX_ENTRIES = 1_000_000;

/** One round attempt the key holder decrypted (recorded before it decrypts). */
export const DecryptedAttemptSchema = z
  .object({
    round: z.number().int().positive(),
    attempt: z.number().int().min(0),
    /** SHA-256 hex over the contributions: each client id with its ciphertext digest (keyHolderPolicy.contributionsDigest). */
    digest: z.string().regex(/^[0-9a-f]{64}$/),
    /** Client ids of the contributors, sorted. */
    contributors: z.array(ClientIdSchema),
    /** The attempt's selection as the coordinator claimed it, sorted: checked later against its records. */
    selected: z.array(ClientIdSchema),
    decryptedAt: z.string().max(64),
  })
  .strict();
export type DecryptedAttempt = z.infer<typeof DecryptedAttemptSchema>;

const LedgerFileSchema = z
  .object({
    version: z.literal(1),
    kind: z.literal('tributary-keyholder-ledger'),
    jobId: JobIdSchema,
    keyHolder: ClientIdSchema,
    entries: z.array(DecryptedAttemptSchema).max(MAX_ENTRIES),
  })
  .strict();

/**
 * What a key holder has decrypted for one job, so that it decrypts each (round, attempt) at most
 * once across restarts. With a `path` every new entry is written (temporary file, fsync, rename)
 * before the decryption it records, so a crash can lose a decryption but never forget one. Without
 * a path the ledger lives in memory only, and a restarted key holder starts empty: in-process use
 * and tests only (`tributary keyholder run` always keeps a file).
 */
export class KeyHolderLedger {
  private readonly list: DecryptedAttempt[];

  private constructor(
    private readonly path: string | undefined,
    private readonly jobId: string,
    private readonly keyHolder: string,
    entries: DecryptedAttempt[],
  ) {
    this.list = entries;
  }

  /**
   * Opens the ledger at `path` (an empty one when the file does not exist yet). CONFIG_INVALID when
   * the file is not a ledger, or is the ledger of another job or key holder.
   */
  static open(path: string | undefined, jobId: string, keyHolder: string): KeyHolderLedger {
    if (path === undefined || !existsSync(path)) return new KeyHolderLedger(path, jobId, keyHolder, []);
    let parsed: z.infer<typeof LedgerFileSchema>;
    try {
      parsed = LedgerFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
    } catch (err) {
      throw new TributaryError('CONFIG_INVALID', `${path} is not a Tributary key-holder ledger (version 1).`, {
        cause: err,
      });
    }
    if (parsed.jobId !== jobId || parsed.keyHolder !== keyHolder) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `${path} is the ledger of job ${parsed.jobId} and key holder ${parsed.keyHolder.slice(0, 12)}…, not of job ${jobId} and key holder ${keyHolder.slice(0, 12)}….`,
      );
    }
    return new KeyHolderLedger(path, jobId, keyHolder, parsed.entries);
  }

  /** Every recorded decryption, oldest first. */
  entries(): readonly DecryptedAttempt[] {
    return this.list;
  }

  /** The decryption recorded for (round, attempt), if any. */
  find(round: number, attempt: number): DecryptedAttempt | undefined {
    return this.list.find((e) => e.round === round && e.attempt === attempt);
  }

  /** Records a decryption about to happen; persisted before it returns. Refuses a second entry for one attempt. */
  record(entry: DecryptedAttempt): void {
    if (this.find(entry.round, entry.attempt)) {
      throw new TributaryError('INTERNAL', `Round ${entry.round} attempt ${entry.attempt} is already in the ledger.`);
    }
    const next = [...this.list, DecryptedAttemptSchema.parse(entry)];
    if (this.path !== undefined) this.write(next);
    this.list.push(entry);
  }

  private write(entries: DecryptedAttempt[]): void {
    const path = this.path as string;
    const file = {
      version: 1,
      kind: 'tributary-keyholder-ledger',
      jobId: this.jobId,
      keyHolder: this.keyHolder,
      entries,
    };
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const temporary = `${path}.${process.pid}.tmp`;
    const fd = openSync(temporary, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(file, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // The rename is atomic: a reader (or a restarted key holder) sees the old ledger or the new one.
    renameSync(temporary, path);
  }
}
