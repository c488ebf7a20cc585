import type { ClientLink } from '../../transport/clientDirectory';
import { KeyHolderDesk, type KeyHolderRequest } from '../keyHolderDesk';
import type { PaillierContribution } from './paillierAggregator';

/** What the coordinator asks a key holder to decrypt: one round attempt's contributions. */
export interface DecryptionRequest extends KeyHolderRequest {
  /** The attempt's selection, as the round's record will show it. */
  selected: readonly string[];
  contributions: readonly PaillierContribution[];
}

/** `aggregate:decrypt` (the attempt, its selection, each contributor's id and signature), then one `aggregate:ciphertexts` per contributor. */
function sendPaillierDecryption(link: ClientLink, request: DecryptionRequest): void {
  const { jobId, round, attempt, length, selected, contributions } = request;
  link.send('aggregate:decrypt', {
    jobId,
    round,
    attempt,
    length,
    selected: [...selected],
    contributions: contributions.map(({ clientId, signature }) => ({ clientId, signature })),
  });
  // One message per contributor, in order: socket.io keeps the order on one connection.
  contributions.forEach(({ ciphertexts: c }, index) => {
    link.send('aggregate:ciphertexts', {
      jobId,
      round,
      attempt,
      index,
      ciphertexts: Buffer.from(c.buffer, c.byteOffset, c.byteLength),
    });
  });
}

/**
 * The key holders of `paillier` jobs (the life cycle of KeyHolderDesk): decryptions are sent as
 * `aggregate:decrypt` + `aggregate:ciphertexts`; failures are PAILLIER_KEYHOLDER_UNAVAILABLE,
 * PAILLIER_NOT_KEY_HOLDER, PAILLIER_DECRYPT_REFUSED (`details.reason`) and PAILLIER_DECRYPT_FAILED.
 *
 * Bandwidth: the key holder receives every contributor's ciphertexts, clients × update bytes per
 * round (bounded at job creation by MAX_DECRYPT_REQUEST_BYTES), one message per contributor so no
 * message exceeds one update (MAX_PAILLIER_UPDATE_BYTES).
 */
export class KeyHolderRegistry extends KeyHolderDesk<DecryptionRequest> {
  constructor() {
    super({
      label: 'key holder',
      codes: {
        unavailable: 'PAILLIER_KEYHOLDER_UNAVAILABLE',
        notKeyHolder: 'PAILLIER_NOT_KEY_HOLDER',
        refused: 'PAILLIER_DECRYPT_REFUSED',
        failed: 'PAILLIER_DECRYPT_FAILED',
      },
      send: sendPaillierDecryption,
    });
  }
}
