import { TributaryError } from '../../../shared/errors';
import type { AggregateResultBody } from '../../../shared/schemas/messages';
import type { HeDecryptRequest } from '../../../shared/schemas/heMessages';
import type { ClientLink } from '../../transport/clientDirectory';

/**
 * A decryption the coordinator asks for: a `sum` request as sent, or a `contributions` request with
 * each contribution's ciphertexts (`parts`, in the order of `contributions`), sent one message each.
 */
export type HeDecryption =
  | Extract<HeDecryptRequest, { form: 'sum' }>
  | (Extract<HeDecryptRequest, { form: 'contributions' }> & { parts: readonly Uint8Array[] });

interface Pending {
  request: HeDecryption;
  sent: boolean;
  timer: NodeJS.Timeout;
  resolve: (sums: Float32Array) => void;
  reject: (err: TributaryError) => void;
}

/**
 * The key holders of `he` jobs: which connection holds a job's secret key, and the one outstanding
 * decryption per job. A decryption waits (up to its timeout) for the key holder to be connected, is
 * sent as `he:decrypt` (with form `contributions`, followed by one `he:ciphertexts` per contribution,
 * in order, so no message exceeds one update's bytes), and resolves with the Float32 sums of the key holder's signed
 * `aggregate:result`. A key holder that disconnects mid-request gets the request again when it
 * rejoins within the timeout; otherwise the request fails with HE_KEYHOLDER_UNAVAILABLE. An answer
 * with a `refusal` is a refusal (HE_DECRYPT_REFUSED, `details.reason`), one with only an `error` a
 * failed decryption (HE_DECRYPT_FAILED). Same life cycle as the paillier mode's KeyHolderRegistry.
 */
export class HeKeyHolders {
  private readonly holders = new Map<string, { clientId: string; link: ClientLink }>();
  private readonly pending = new Map<string, Pending>();

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

  /** Asks the job's key holder to decrypt an aggregate; rejects with a coded error after `timeoutMs`. */
  decrypt(request: HeDecryption, timeoutMs: number): Promise<Float32Array> {
    const { jobId } = request;
    if (this.pending.has(jobId)) {
      return Promise.reject(new TributaryError('INTERNAL', `Job ${jobId} already has a decryption in progress.`));
    }
    return new Promise<Float32Array>((resolve, reject) => {
      const p: Pending = {
        request,
        sent: false,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.settle(
            jobId,
            p,
            new TributaryError(
              'HE_KEYHOLDER_UNAVAILABLE',
              p.sent
                ? `The HE key holder did not return the decrypted aggregate within ${timeoutMs} ms.`
                : `No HE key holder was connected to decrypt the aggregate within ${timeoutMs} ms.`,
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
    const holder = this.holders.get(jobId);
    if (!holder || holder.clientId !== clientId) {
      throw new TributaryError('HE_NOT_KEY_HOLDER', `The client is not the connected HE key holder of job ${jobId}.`);
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
          'HE_DECRYPT_REFUSED',
          `The HE key holder refused to decrypt round ${round} attempt ${body.attempt} (${body.refusal.reason}): ${body.error ?? 'no reason given'}`,
          { details: { reason: body.refusal.reason } },
        ),
      );
      return;
    }
    if (body.error !== undefined) {
      this.settle(
        jobId,
        p,
        new TributaryError('HE_DECRYPT_FAILED', `The HE key holder could not decrypt the aggregate: ${body.error}`),
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
      this.settle(jobId, p, new TributaryError('HE_KEYHOLDER_UNAVAILABLE', reason));
  }

  private trySend(jobId: string): void {
    const p = this.pending.get(jobId);
    const holder = this.holders.get(jobId);
    if (!p || !holder || p.sent) return;
    p.sent = true;
    const r = p.request;
    if (r.form === 'sum') {
      holder.link.send('he:decrypt', {
        ...r,
        ciphertexts: Buffer.from(r.ciphertexts.buffer, r.ciphertexts.byteOffset, r.ciphertexts.byteLength),
      });
      return;
    }
    const { parts, ...request } = r;
    holder.link.send('he:decrypt', request);
    // One message per contribution, in order: socket.io keeps the order on one connection.
    parts.forEach((c, index) => {
      holder.link.send('he:ciphertexts', {
        jobId: r.jobId,
        round: r.round,
        attempt: r.attempt,
        index,
        ciphertexts: Buffer.from(c.buffer, c.byteOffset, c.byteLength),
      });
    });
  }

  private settle(jobId: string, p: Pending, outcome: Float32Array | TributaryError): void {
    if (this.pending.get(jobId) !== p) return;
    this.pending.delete(jobId);
    clearTimeout(p.timer);
    if (outcome instanceof TributaryError) p.reject(outcome);
    else p.resolve(outcome);
  }
}
