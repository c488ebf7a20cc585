import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { TributaryError } from '../shared/errors';
import { LIMITS } from '../shared/schemas/jobSpec';
import type { DecryptRefusalReason } from '../shared/schemas/messages';

const EntrySchema = z
  .object({
    round: z.number().int().positive(),
    attempt: z.number().int().min(0),
    fingerprint: z.string().regex(/^[0-9a-f]{64}$/),
    contributors: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(LIMITS.maxClientsPerRound),
  })
  .strict();
type Entry = z.infer<typeof EntrySchema>;

const LedgerFileSchema = z
  .object({
    version: z.literal(1),
    kind: z.literal('tributary-he-decrypt-ledger'),
    jobId: z.string(),
    decrypted: z.array(EntrySchema).max(1_000_000),
  })
  .strict();

/**
 * What an `he` key holder has decrypted for one job, so that it decrypts each round attempt at most
 * once: the same (round, attempt) is answered again only for the very same request (a resend after
 * a reconnect); another attempt of a round may not overlap a decrypted attempt's contributors unless
 * it has exactly the same ones (two sums over overlapping sets would reveal their difference: one
 * client's update when they differ by one); and no request may go back to a round before the last
 * decrypted one. With a `path` the ledger is a JSON file written (atomically: temporary file, then
 * rename) before each decryption, so a restarted key holder keeps refusing; without one it lives
 * as long as the process.
 */
export class HeDecryptLedger {
  private readonly entries: Entry[] = [];

  constructor(
    private readonly jobId: string,
    private readonly path?: string,
  ) {
    if (path && existsSync(path)) {
      let file: z.infer<typeof LedgerFileSchema>;
      try {
        file = LedgerFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
      } catch (err) {
        throw new TributaryError('CONFIG_INVALID', `${path} is not an he key holder's decrypt ledger.`, { cause: err });
      }
      if (file.jobId !== jobId) {
        throw new TributaryError('CONFIG_INVALID', `${path} is the ledger of job ${file.jobId}, not ${jobId}.`);
      }
      this.entries.push(...file.decrypted);
    }
  }

  /**
   * Whether a request may be decrypted: 'new' (record it first), 'repeat' (the same request again),
   * or why to refuse it.
   */
  check(
    round: number,
    attempt: number,
    fingerprint: string,
    contributors: readonly string[],
  ): 'new' | 'repeat' | { reason: DecryptRefusalReason; message: string } {
    const same = this.entries.find((e) => e.round === round && e.attempt === attempt);
    if (same) {
      return same.fingerprint === fingerprint
        ? 'repeat'
        : {
            reason: 'already-decrypted',
            message: `round ${round} attempt ${attempt} was already decrypted, for other contributions`,
          };
    }
    const last = this.entries.reduce((m, e) => Math.max(m, e.round), 0);
    if (round < last) {
      return {
        reason: 'round-not-next',
        message: `round ${round} is before round ${last}, which was already decrypted`,
      };
    }
    const wanted = new Set(contributors);
    for (const e of this.entries) {
      if (e.round !== round) continue;
      const overlap = e.contributors.filter((c) => wanted.has(c)).length;
      const equal = overlap === wanted.size && overlap === e.contributors.length;
      if (overlap > 0 && !equal) {
        return {
          reason: 'overlaps-decrypted',
          message: `its contributors overlap those of round ${round} attempt ${e.attempt}, already decrypted, without being the same (the difference of the two sums would leak)`,
        };
      }
    }
    return 'new';
  }

  /** Records a request about to be decrypted (persisted first when the ledger has a file). */
  record(round: number, attempt: number, fingerprint: string, contributors: readonly string[]): void {
    this.entries.push({ round, attempt, fingerprint, contributors: [...contributors] });
    if (!this.path) return;
    const file = { version: 1, kind: 'tributary-he-decrypt-ledger', jobId: this.jobId, decrypted: this.entries };
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const temporary = `${this.path}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(file)}\n`, { mode: 0o600 });
    renameSync(temporary, this.path);
  }
}
