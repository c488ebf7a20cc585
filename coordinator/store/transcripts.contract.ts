import { randomUUID } from 'node:crypto';
import type { Store, TranscriptRecord } from './store';

/*
 * The transcript part of the Store contract (registered by runStoreContract, so it runs against
 * every backend): transcripts come back byte for byte, upsert by (jobId, round, kind), list in order.
 */

function makeTranscript(jobId: string, round: number, kind: TranscriptRecord['kind'], text: string): TranscriptRecord {
  return {
    jobId,
    round,
    kind,
    hash: `${round}${kind === 'round' ? 'a' : 'b'}`.padEnd(64, '0'),
    text,
    signature: 'c'.repeat(128),
    signer: 'd'.repeat(64),
    createdAt: new Date(Date.UTC(2031, 4, 5, 6, 7, 8, 9)),
  };
}

/** Registers the transcript contract tests on the store `getStore` returns. */
export function describeTranscriptContract(getStore: () => Store): void {
  describe('transcripts', () => {
    const jobId = () => `job_tr-${randomUUID()}`;

    it('keeps the signed text exactly: key order, number text, escapes and non-ASCII survive', async () => {
      const store = getStore();
      const id = jobId();
      // Canonical JSON as signed: a parser-and-serialiser round trip would reorder or reformat this.
      const text = '{"b":1e-7,"a":[0.1,-0,1e+21],"s":"\\u0001 \\"ü\\" \\ud83d\\ude00","z":{}}';
      const record = makeTranscript(id, 1, 'round', text);
      await store.saveTranscript(record);
      const loaded = await store.loadTranscript(id, 1, 'round');
      expect(loaded).toStrictEqual(record);
      expect(loaded!.text).toBe(text);
      expect(loaded!.createdAt).toBeInstanceOf(Date);
    });

    it('upserts by (jobId, round, kind) and lists by round, the round transcript before the scoring one', async () => {
      const store = getStore();
      const id = jobId();
      await store.saveTranscript(makeTranscript(id, 2, 'scoring', '{"n":4}'));
      await store.saveTranscript(makeTranscript(id, 2, 'round', '{"n":3}'));
      await store.saveTranscript(makeTranscript(id, 1, 'round', '{"n":1}'));
      await store.saveTranscript(makeTranscript(id, 1, 'round', '{"n":2}'));
      await store.saveTranscript(makeTranscript(jobId(), 1, 'round', '{"other":true}'));
      const listed = await store.listTranscripts(id);
      expect(listed.map((t) => [t.round, t.kind, t.text])).toEqual([
        [1, 'round', '{"n":2}'],
        [2, 'round', '{"n":3}'],
        [2, 'scoring', '{"n":4}'],
      ]);
    });

    it('answers null and an empty list for what was never stored, and keeps kinds apart', async () => {
      const store = getStore();
      const id = jobId();
      expect(await store.listTranscripts(id)).toEqual([]);
      expect(await store.loadTranscript(id, 1, 'round')).toBeNull();
      await store.saveTranscript(makeTranscript(id, 1, 'round', '{}'));
      expect(await store.loadTranscript(id, 1, 'scoring')).toBeNull();
      expect(await store.loadTranscript(id, 2, 'round')).toBeNull();
    });

    it('returns copies: mutating a loaded record changes nothing stored', async () => {
      const store = getStore();
      const id = jobId();
      await store.saveTranscript(makeTranscript(id, 1, 'round', '{"x":1}'));
      const loaded = (await store.loadTranscript(id, 1, 'round'))!;
      loaded.text = '{"x":2}';
      (await store.listTranscripts(id))[0].signature = 'e'.repeat(128);
      expect((await store.loadTranscript(id, 1, 'round'))!).toMatchObject({
        text: '{"x":1}',
        signature: 'c'.repeat(128),
      });
    });
  });
}
