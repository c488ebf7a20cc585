import { BatchedWriter } from './batchedWriter';

describe('BatchedWriter', () => {
  it('answers every item, never has more than `concurrency` writes in flight, and respects maxBatch', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const batches: number[][] = [];
    const writer = new BatchedWriter<number>(
      async (items) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        batches.push(items);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
      },
      { maxBatch: 16, concurrency: 2 },
    );
    await Promise.all(Array.from({ length: 300 }, (_, i) => writer.submit(i)));
    expect(maxInFlight).toBe(2);
    expect(batches.every((b) => b.length <= 16)).toBe(true);
    // Every item written exactly once, in submission order.
    expect(batches.flat()).toEqual(Array.from({ length: 300 }, (_, i) => i));
    // Coalesced: far fewer writes than items.
    expect(batches.length).toBeLessThanOrEqual(Math.ceil(300 / 16) + 2);
  });

  it("rejects exactly the items of a failed write, with that write's error, and carries on", async () => {
    let calls = 0;
    const writer = new BatchedWriter<string>(async (items) => {
      calls++;
      if (items.includes('bad')) throw new Error(`refused ${items.join(',')}`);
    });
    const first = writer.submit('a'); // goes out alone
    const bad = writer.submit('bad');
    const sameBatch = writer.submit('b');
    await expect(first).resolves.toBeUndefined();
    await expect(bad).rejects.toThrow('refused bad,b');
    await expect(sameBatch).rejects.toThrow('refused bad,b');
    await expect(writer.submit('c')).resolves.toBeUndefined();
    expect(calls).toBe(3);
    expect(writer.pending).toBe(0);
  });

  it('turns a flush that throws synchronously into rejections', async () => {
    const writer = new BatchedWriter<number>(() => {
      throw new Error('sync');
    });
    await expect(writer.submit(1)).rejects.toThrow('sync');
  });

  it('refuses nonsense options', () => {
    expect(() => new BatchedWriter(async () => {}, { maxBatch: 0 })).toThrow(RangeError);
    expect(() => new BatchedWriter(async () => {}, { concurrency: 1.5 })).toThrow(RangeError);
  });
});
