import type { HeDecryptRequest } from '../../../shared/schemas/heMessages';
import type { ClientLink } from '../../transport/clientDirectory';
import { KeyHolderDesk } from '../keyHolderDesk';

/**
 * A decryption the coordinator asks for: a `sum` request as sent, or a `contributions` request with
 * each contribution's ciphertexts (`parts`, in the order of `contributions`), sent one message each.
 */
export type HeDecryption =
  | Extract<HeDecryptRequest, { form: 'sum' }>
  | (Extract<HeDecryptRequest, { form: 'contributions' }> & { parts: readonly Uint8Array[] });

/** `he:decrypt`, then (form `contributions`) one `he:ciphertexts` per contribution, in order. */
function sendHeDecryption(link: ClientLink, r: HeDecryption): void {
  if (r.form === 'sum') {
    link.send('he:decrypt', {
      ...r,
      ciphertexts: Buffer.from(r.ciphertexts.buffer, r.ciphertexts.byteOffset, r.ciphertexts.byteLength),
    });
    return;
  }
  const { parts, ...request } = r;
  link.send('he:decrypt', request);
  // One message per contribution, in order: socket.io keeps the order on one connection, and no
  // message exceeds one update's bytes.
  parts.forEach((c, index) => {
    link.send('he:ciphertexts', {
      jobId: r.jobId,
      round: r.round,
      attempt: r.attempt,
      index,
      ciphertexts: Buffer.from(c.buffer, c.byteOffset, c.byteLength),
    });
  });
}

/**
 * The key holders of `he` jobs (the life cycle of KeyHolderDesk): decryptions are sent as
 * `he:decrypt` (+ `he:ciphertexts`); failures are HE_KEYHOLDER_UNAVAILABLE, HE_NOT_KEY_HOLDER,
 * HE_DECRYPT_REFUSED (`details.reason`) and HE_DECRYPT_FAILED.
 */
export class HeKeyHolders extends KeyHolderDesk<HeDecryption> {
  constructor() {
    super({
      label: 'HE key holder',
      codes: {
        unavailable: 'HE_KEYHOLDER_UNAVAILABLE',
        notKeyHolder: 'HE_NOT_KEY_HOLDER',
        refused: 'HE_DECRYPT_REFUSED',
        failed: 'HE_DECRYPT_FAILED',
      },
      send: sendHeDecryption,
    });
  }
}
