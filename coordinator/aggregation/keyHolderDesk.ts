import { type ErrorCode, TributaryError } from '../../shared/errors';
import type { AggregateResultBody } from '../../shared/schemas/messages';
import type { ClientLink } from '../transport/clientDirectory';

/** What every key-holder decryption names: the round attempt and how many Float32 sums come back. */
export interface KeyHolderRequest {
  jobId: string;
  round: number;
  attempt: number;
  /** Values per vector (parameters + 1). */
  length: number;
}

/** How one mode talks to its key holders: its words, its error codes, and how a request is sent. */
export interface KeyHolderDialect<R extends KeyHolderRequest> {
  /** How messages name the key holder, e.g. "key holder" or "HE key holder". */
  label: string;
  codes: { unavailable: ErrorCode; notKeyHolder: ErrorCode; refused: ErrorCode; failed: ErrorCode };
  /** Sends `request` to the key holder (one or more messages, in order on the one connection). */
  send(link: ClientLink, request: R): void;
}

interface Pending<R> {
  request: R;
  sent: boolean;
  timer: NodeJS.Timeout;
  resolve: (sums: Float32Array) => void;
  reject: (err: TributaryError) => void;
}

/**
 * The key holders of a key-holder mode (`paillier`, `he`): which connection holds a job's secret key,
 * and the one outstanding decryption per job. A decryption waits (up to its timeout) for the key
 * holder to be connected, is sent in the mode's dialect, and resolves with the Float32 sums of the key
 * holder's signed `aggregate:result`. A key holder that disconnects mid-request gets the whole request
 * again when it rejoins within the timeout; otherwise the request fails with the dialect's
 * `unavailable` code. An answer with a `refusal` is a refusal (`refused`, `details.reason`), naming no
 * client: only the key holder's word; one with only an `error` a failed decryption (`failed`).
 */
export class KeyHolderDesk<R extends KeyHolderRequest> {
  private readonly holders = new Map<string, { clientId: string; link: ClientLink }>();
  private readonly pending = new Map<string, Pending<R>>();

  constructor(private readonly dialect: KeyHolderDialect<R>) {}

  /** Registers `link` as the key holder of `jobId` (the caller checked its client id against the spec). */
  register(jobId: string, clientId: string, link: ClientLink): void {
    this.holders.set(jobId, { clientId, link });
    this.trySend(jobId);
  }

  /** A connection went away: it no longer holds any job's key. */
  unregister(link: ClientLink): void {
    for (const [jobId, holder] of this.holders) {
      if (holder.link !== link) continue;
      this.holders.delete(jobId);
      const p = this.pending.get(jobId);
      if (p) p.sent = false;
    }
  }

  isConnected(jobId: string): boolean {
    return this.holders.has(jobId);
  }

  /** Asks the job's key holder to decrypt an aggregate; rejects with a coded error after `timeoutMs`. */
  decrypt(request: R, timeoutMs: number): Promise<Float32Array> {
    const { jobId } = request;
    if (this.pending.has(jobId)) {
      return Promise.reject(new TributaryError('INTERNAL', `Job ${jobId} already has a decryption in progress.`));
    }
    const { label, codes } = this.dialect;
    return new Promise<Float32Array>((resolve, reject) => {
      const p: Pending<R> = {
        request,
        sent: false,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.settle(
            jobId,
            p,
            new TributaryError(
              codes.unavailable,
              p.sent
                ? `The ${label} did not return the decrypted aggregate within ${timeoutMs} ms.`
                : `No ${label} was connected to decrypt the aggregate within ${timeoutMs} ms.`,
            ),
          );
        }, timeoutMs),
      };
      this.pending.set(jobId, p);
      this.trySend(jobId);
    });
  }

  /** A signed `aggregate:result` from `clientId`. Throws a coded error (to the sender) when it does not fit the request. */
  handleResult(
    clientId: string,
    jobId: string,
    round: number,
    body: AggregateResultBody,
    data: Uint8Array | undefined,
  ): void {
    const { label, codes } = this.dialect;
    const holder = this.holders.get(jobId);
    if (!holder || holder.clientId !== clientId) {
      throw new TributaryError(codes.notKeyHolder, `The client is not the connected ${label} of job ${jobId}.`);
    }
    const p = this.pending.get(jobId);
    if (!p?.sent) throw new TributaryError('ROUND_LATE_UPDATE', `Job ${jobId} has no decryption in progress.`);
    if (p.request.round !== round || p.request.attempt !== body.attempt) {
      throw new TributaryError(
        'ROUND_WRONG',
        `Expected the aggregate of round ${p.request.round} attempt ${p.request.attempt}, got round ${round} attempt ${body.attempt}.`,
      );
    }
    if (body.refusal !== undefined) {
      this.settle(
        jobId,
        p,
        new TributaryError(
          codes.refused,
          `The ${label} refused to decrypt round ${round} attempt ${body.attempt} (${body.refusal.reason}): ${body.error ?? 'no reason given'}`,
          { details: { reason: body.refusal.reason } },
        ),
      );
      return;
    }
    if (body.error !== undefined) {
      this.settle(
        jobId,
        p,
        new TributaryError(codes.failed, `The ${label} could not decrypt the aggregate: ${body.error}`),
      );
      return;
    }
    if (body.length !== p.request.length || !data || data.length !== p.request.length * 4) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `Expected ${p.request.length} Float32 sums (${p.request.length * 4} bytes of data).`,
      );
    }
    const sums = new Float32Array(p.request.length);
    new Uint8Array(sums.buffer).set(data);
    for (let i = 0; i < sums.length; i++) {
      if (!Number.isFinite(sums[i])) throw new TributaryError('VALIDATION_FAILED', `Sum ${i} is not finite.`);
    }
    this.settle(jobId, p, sums);
  }

  /** Fails every outstanding decryption (coordinator shutdown). */
  cancelAll(reason: string): void {
    for (const [jobId, p] of this.pending)
      this.settle(jobId, p, new TributaryError(this.dialect.codes.unavailable, reason));
  }

  private trySend(jobId: string): void {
    const p = this.pending.get(jobId);
    const holder = this.holders.get(jobId);
    if (!p || !holder || p.sent) return;
    p.sent = true;
    this.dialect.send(holder.link, p.request);
  }

  private settle(jobId: string, p: Pending<R>, outcome: Float32Array | TributaryError): void {
    if (this.pending.get(jobId) !== p) return;
    this.pending.delete(jobId);
    clearTimeout(p.timer);
    if (outcome instanceof TributaryError) p.reject(outcome);
    else p.resolve(outcome);
  }
}
