import { Worker } from 'node:worker_threads';
import { isErrorCode, TributaryError } from '../../shared/errors';
import type { InputSpec } from '../../shared/schemas/jobSpec';

type Reply =
  | { id: number; bytes: ArrayBuffer; examples: number; sha256: string }
  | { id: number; error: { code: string; message: string } };

/** A parsed validation set: dataset codec bytes, their SHA-256 (hex) and the number of examples. */
export interface ParsedValidationSet {
  bytes: Uint8Array;
  sha256: string;
  examples: number;
}

// Starts the worker file under whatever runs us: tsx or jest (TypeScript sources, so tsx registers
// itself in the thread) or compiled JavaScript.
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
if (workerData.entry.endsWith('.ts')) require('tsx/cjs');
require(workerData.entry);
`;

/**
 * Parses uploaded validation sets in one worker thread, so a large upload never stalls the event loop
 * (and with it /v1/health, sockets and every other job). Requests queue in order; the REST edge bounds
 * how many may be queued (each holds its body) and allows one per job at a time. The worker starts on
 * first use and is unref'd while idle, so it never keeps the process alive; close() ends it.
 */
export class ValidationSetParser {
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve(v: ParsedValidationSet): void; reject(e: unknown): void }>();

  /**
   * Dataset codec bytes, their SHA-256 and the example count of a UTF-8 CSV / JSON-lines body;
   * VALIDATION_SET_INVALID otherwise. The body is handed to the worker: do not use it afterwards.
   */
  parse(body: Uint8Array, format: 'csv' | 'jsonl', input: InputSpec): Promise<ParsedValidationSet> {
    const worker = this.start();
    const id = this.nextId++;
    // Transferred without a copy when the body owns its whole buffer (large bodies do); a small body may
    // view a shared, pooled buffer, so it is copied.
    const owns =
      body.byteOffset === 0 && body.buffer.byteLength === body.byteLength && body.buffer instanceof ArrayBuffer;
    const bytes = (owns ? body.buffer : new Uint8Array(body).buffer) as ArrayBuffer;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, bytes, format, input }, [bytes]);
    });
  }

  /** Ends the worker; pending parses fail with INTERNAL. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    this.failAll(new TributaryError('INTERNAL', 'The coordinator is shutting down.'));
    await worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const entry = require.resolve('./validationSetWorker');
    const worker = new Worker(BOOTSTRAP, { eval: true, workerData: { entry } });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const task = this.pending.get(reply.id);
      if (!task) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if ('error' in reply) {
        const cause = isErrorCode(reply.error.code) ? reply.error.code : 'VALIDATION_SET_INVALID';
        task.reject(
          new TributaryError('VALIDATION_SET_INVALID', `Validation set: ${reply.error.message}`, {
            details: { cause },
          }),
        );
      } else {
        task.resolve({ bytes: new Uint8Array(reply.bytes), examples: reply.examples, sha256: reply.sha256 });
      }
    });
    worker.on('error', (err) => {
      this.failAll(new TributaryError('INTERNAL', `validation-set worker failed: ${err.message}`, { cause: err }));
      this.worker = null;
    });
    worker.on('exit', () => {
      if (this.worker === worker) this.worker = null;
      this.failAll(new TributaryError('INTERNAL', 'The validation-set worker exited.'));
    });
    this.worker = worker;
    return worker;
  }

  private failAll(err: TributaryError): void {
    for (const task of this.pending.values()) task.reject(err);
    this.pending.clear();
  }
}
