import mongoose from 'mongoose';
import { isErrorCode, type TributaryError } from '../../shared/errors';
import { isRetryableStoreError, withStoreRetry } from './retryableWrites';

// What FerretDB's SQLite backend answers when a write cannot take the database's write lock.
const busy = () =>
  Object.assign(
    new mongoose.mongo.MongoServerError({
      message:
        '[msg_update.go:133 handler.(*Handler).updateDocument] [collection.go:135 sqlite.(*collection).InsertAll.func1] database is locked (5) (SQLITE_BUSY)',
      code: 1,
    }),
  );

describe('isRetryableStoreError', () => {
  it("recognises FerretDB's SQLITE_BUSY, MongoDB's retryable labels and write conflicts, and nothing else", () => {
    expect(isRetryableStoreError(busy())).toBe(true);
    const labelled = new mongoose.mongo.MongoServerError({ message: 'x', code: 91 });
    labelled.addErrorLabel('RetryableWriteError');
    expect(isRetryableStoreError(labelled)).toBe(true);
    expect(isRetryableStoreError(new mongoose.mongo.MongoServerError({ message: 'WriteConflict', code: 112 }))).toBe(
      true,
    );
    expect(
      isRetryableStoreError(new mongoose.mongo.MongoServerError({ message: 'E11000 duplicate key', code: 11000 })),
    ).toBe(false);
    expect(isRetryableStoreError(new Error('validation failed'))).toBe(false);
    expect(isRetryableStoreError('database is locked')).toBe(false);
  });
});

describe('withStoreRetry', () => {
  it('sends the write again after a busy store and returns its result', async () => {
    let calls = 0;
    const result = await withStoreRetry(
      'a join',
      async () => {
        if (++calls < 3) throw busy();
        return 'stored';
      },
      { baseDelayMs: 1 },
    );
    expect(result).toBe('stored');
    expect(calls).toBe(3);
  });

  it('gives up after maxAttempts with STORE_BUSY naming the write and the attempts, the cause kept', async () => {
    let calls = 0;
    const err = await withStoreRetry(
      '7 participant join(s)',
      async () => {
        calls++;
        throw busy();
      },
      { maxAttempts: 4, baseDelayMs: 1 },
    ).catch((e: unknown) => e);
    expect(calls).toBe(4);
    expect(isErrorCode((err as TributaryError).code) && (err as TributaryError).code).toBe('STORE_BUSY');
    expect((err as TributaryError).message).toMatch(/7 participant join\(s\) 4 times.*SQLITE_BUSY/);
    expect((err as TributaryError).details).toEqual({ attempts: 4 });
    expect((err as TributaryError).cause).toBeInstanceOf(mongoose.mongo.MongoServerError);
  });

  it('throws any other error at once, untouched', async () => {
    let calls = 0;
    const other = new Error('schema says no');
    await expect(
      withStoreRetry('x', async () => {
        calls++;
        throw other;
      }),
    ).rejects.toBe(other);
    expect(calls).toBe(1);
  });

  it('also retries what alsoRetry accepts', async () => {
    let calls = 0;
    const dup = Object.assign(new Error('E11000'), { code: 11000 });
    await withStoreRetry(
      'x',
      async () => {
        if (++calls === 1) throw dup;
      },
      { alsoRetry: (e) => (e as { code?: number }).code === 11000, baseDelayMs: 1 },
    );
    expect(calls).toBe(2);
  });
});
