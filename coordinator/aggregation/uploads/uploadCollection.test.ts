import { contentHash, decodeTensors, encodeTensors } from '../../../shared/codec/modelCodec';
import { TributaryError } from '../../../shared/errors';
import type { JobRecord } from '../../store/store';
import { ClientDirectory } from '../../transport/clientDirectory';
import { createLogger } from '../../logger';
import { PlaintextAggregator } from '../none/plaintextAggregator';
import type { UpdateChunkBody, UpdateCommitBody } from '../../../shared/schemas/messages';
import type { Collected } from '../aggregationMode';
import { type UploadAggregator, UploadCollection } from './uploadCollection';

/** An upload collection of one round for `selected`, with the deadline `deadlineMs` from now, driven as the runner does. */
class RoundCollector {
  readonly collection: UploadCollection;
  readonly done: Promise<Collected>;
  private finished = false;
  constructor(round: number, selected: string[], agg: UploadAggregator, chunkBytes: number, deadlineMs: number) {
    this.collection = new UploadCollection(
      {
        job: { id: 'job1' } as JobRecord,
        round,
        attempt: 0,
        selected,
        deadline: Date.now() + deadlineMs,
        chunkBytes,
        keepParts: false,
        directory: new ClientDirectory(),
        logger: createLogger('silent'),
        now: () => Date.now(),
      },
      agg,
      { modeName: 'none', keepMetrics: true },
    );
    this.done = this.collection.collect().finally(() => {
      this.finished = true;
    });
  }
  get isOpen(): boolean {
    return !this.finished;
  }
  handleChunk(clientId: string, body: UpdateChunkBody, data: Uint8Array) {
    this.collection.receive(clientId, { name: 'updateChunk', body, data });
  }
  handleCommit(clientId: string, body: UpdateCommitBody) {
    this.collection.receive(clientId, { name: 'updateCommit', body, data: undefined });
  }
  markFailed(clientId: string, reason: string) {
    this.collection.dropped(clientId, reason);
  }
  /** Stops collecting (as the deadline does) and returns what was collected. */
  async close(): Promise<Extract<Collected, { evaluations: unknown }>> {
    this.collection.stop();
    return (await this.done) as Extract<Collected, { evaluations: unknown }>;
  }
}

const manifest = [{ name: 'w', shape: [3] }];
const update = (v: number) => encodeTensors([{ name: 'w', shape: [3], data: new Float32Array([v, v, v]) }]);

function send(c: RoundCollector, clientId: string, bytes: Uint8Array, chunkBytes: number, numExamples = 1) {
  const transferId = 'ab'.repeat(16);
  const count = Math.ceil(bytes.length / chunkBytes);
  for (let index = 0; index < count; index++) {
    c.handleChunk(
      clientId,
      { transferId, index, count, totalBytes: bytes.length },
      bytes.subarray(index * chunkBytes, (index + 1) * chunkBytes),
    );
  }
  c.handleCommit(clientId, { transferId, updateHash: contentHash(bytes), numExamples, metrics: { loss: 0.5 } });
}

describe('UploadCollection', () => {
  it('finishes when every selected client answered, in small chunks', async () => {
    const agg = new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 });
    const c = new RoundCollector(1, ['a', 'b'], agg, 16, 60_000);
    send(c, 'a', update(1), 16, 1);
    expect(c.isOpen).toBe(true);
    send(c, 'b', update(3), 16, 3);
    await c.done;
    const r = await c.close();
    expect(r.participants).toEqual(['a', 'b']);
    expect(r.failures).toEqual([]);
    expect(Array.from(agg.result().weightedDeltaSum[0])).toEqual([10, 10, 10]);
  });

  it('refuses unselected, duplicate and late senders with codes', async () => {
    const c = new RoundCollector(
      1,
      ['a', 'b'],
      new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 }),
      1024,
      60_000,
    );
    expect(() => send(c, 'x', update(1), 1024)).toThrow(expect.objectContaining({ code: 'ROUND_NOT_SELECTED' }));
    send(c, 'a', update(1), 1024);
    expect(() => send(c, 'a', update(1), 1024)).toThrow(expect.objectContaining({ code: 'ROUND_DUPLICATE_UPDATE' }));
    await c.close();
    expect(() => send(c, 'b', update(1), 1024)).toThrow(expect.objectContaining({ code: 'ROUND_LATE_UPDATE' }));
  });

  it('lets a client retry with a fresh transfer after a rejected commit', async () => {
    const agg = new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 });
    const c = new RoundCollector(1, ['a'], agg, 16, 60_000);
    expect(() => send(c, 'a', update(NaN), 16)).toThrow(expect.objectContaining({ code: 'CODEC_NON_FINITE' }));
    send(c, 'a', update(2), 16);
    expect((await c.close()).participants).toEqual(['a']);
    expect(Array.from(agg.result().weightedDeltaSum[0])).toEqual([2, 2, 2]);
  });

  it('records deadline misses and disconnects as failures', async () => {
    const c = new RoundCollector(
      1,
      ['a', 'b', 'c'],
      new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 }),
      1024,
      50,
    );
    c.markFailed('b', 'DISCONNECTED');
    await c.done;
    const r = await c.close();
    expect(r.failures).toEqual([
      { clientId: 'b', reason: 'DISCONNECTED' },
      { clientId: 'a', reason: 'DEADLINE_EXCEEDED' },
      { clientId: 'c', reason: 'DEADLINE_EXCEEDED' },
    ]);
  });

  it('rejects chunk streams that are out of order, mis-sized, oversize or incomplete', async () => {
    const bytes = update(1);
    const c = new RoundCollector(
      1,
      ['a'],
      new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 }),
      16,
      60_000,
    );
    const t = 'cd'.repeat(16);
    const count = Math.ceil(bytes.length / 16);
    expect(() =>
      c.handleChunk('a', { transferId: t, index: 1, count, totalBytes: bytes.length }, bytes.subarray(16, 32)),
    ).toThrow(expect.objectContaining({ code: 'TRANSFER_CHUNK_INVALID' }));
    expect(() => c.handleChunk('a', { transferId: t, index: 0, count: 1, totalBytes: 10_000 }, bytes)).toThrow(
      expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }),
    );
    expect(() =>
      c.handleChunk(
        'a',
        { transferId: t, index: 0, count: count + 1, totalBytes: bytes.length },
        bytes.subarray(0, 16),
      ),
    ).toThrow(expect.objectContaining({ code: 'TRANSFER_CHUNK_INVALID' }));
    const c2 = new RoundCollector(
      1,
      ['a'],
      new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 }),
      16,
      60_000,
    );
    expect(() =>
      c2.handleChunk('a', { transferId: t, index: 0, count, totalBytes: bytes.length }, bytes.subarray(0, 15)),
    ).toThrow(expect.objectContaining({ code: 'TRANSFER_CHUNK_INVALID' }));
    const c3 = new RoundCollector(
      1,
      ['a'],
      new PlaintextAggregator(manifest, { maxExampleWeight: 100_000 }),
      16,
      60_000,
    );
    c3.handleChunk('a', { transferId: t, index: 0, count, totalBytes: bytes.length }, bytes.subarray(0, 16));
    expect(() =>
      c3.handleCommit('a', { transferId: t, updateHash: contentHash(bytes), numExamples: 1, metrics: {} }),
    ).toThrow(expect.objectContaining({ code: 'TRANSFER_INCOMPLETE' }));
    expect(() =>
      c3.handleCommit('a', {
        transferId: 'ef'.repeat(16),
        updateHash: contentHash(bytes),
        numExamples: 1,
        metrics: {},
      }),
    ).toThrow(expect.objectContaining({ code: 'TRANSFER_UNKNOWN' }));
    await c.close();
    await c2.close();
    await c3.close();
  });

  it('drops and blames a sender the aggregator names (sabotage); other refusals leave it free to retry', async () => {
    // A fake aggregator: an update of 666s is sabotage naming its sender, one of 13s a plain mistake.
    class Picky extends PlaintextAggregator {
      override accept(clientId: string, payload: Uint8Array, numExamples: number): void {
        const v = decodeTensors(payload)[0].data[0];
        if (v === 666)
          throw new TributaryError('PAILLIER_CIPHERTEXT_INVALID', 'sabotage', { details: { members: [clientId] } });
        if (v === 13) throw new TributaryError('PAILLIER_CIPHERTEXT_INVALID', 'a mistake');
        super.accept(clientId, payload, numExamples);
      }
    }
    const c = new RoundCollector(1, ['a', 'x', 'y'], new Picky(manifest, { maxExampleWeight: 100_000 }), 64, 60_000);
    expect(() => send(c, 'y', update(13), 64)).toThrow(
      expect.objectContaining({ code: 'PAILLIER_CIPHERTEXT_INVALID' }),
    );
    send(c, 'y', update(2), 64);
    expect(() => send(c, 'x', update(666), 64)).toThrow(
      expect.objectContaining({ code: 'PAILLIER_CIPHERTEXT_INVALID', details: { members: ['x'] } }),
    );
    // Out of this attempt: no second try.
    expect(() => send(c, 'x', update(1), 64)).toThrow(expect.objectContaining({ code: 'ROUND_NOT_SELECTED' }));
    expect(c.isOpen).toBe(true);
    send(c, 'a', update(1), 64);
    // Everyone answered (x by its refusal): the collection ends without waiting for the deadline.
    const r = (await c.done) as Extract<Collected, { evaluations: unknown }>;
    expect(r.participants).toEqual(['y', 'a']);
    expect(r.failures).toEqual([{ clientId: 'x', reason: 'PAILLIER_CIPHERTEXT_INVALID: sabotage' }]);
    expect(r.blamed).toEqual(['x']);
  });
});
