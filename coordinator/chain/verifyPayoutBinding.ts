import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { getAddress, verifyMessage } from 'ethers';
import { TributaryError } from '../../shared/errors';
import { payoutBindingBytes, payoutBindingText } from '../../shared/identity/payoutBinding';
import type { PayoutBinding } from '../../shared/schemas/messages';

// DER prefix of an Ed25519 SubjectPublicKeyInfo: node:crypto takes the raw 32-byte key behind it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * The coordinator's half of the payout binding: checks that the client's Ed25519 key signed the
 * address and that the address's key signed (EIP-191) the client's Ed25519 public key. Returns the
 * checksummed address; throws PAYOUT_BINDING_INVALID naming the signature that failed.
 */
export function verifyPayoutBinding(clientId: string, binding: PayoutBinding): string {
  let address: string;
  try {
    address = getAddress(binding.address);
  } catch {
    throw new TributaryError('PAYOUT_BINDING_INVALID', `"${binding.address}" is not a valid Ethereum address (bad checksum?).`);
  }
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(clientId, 'hex')]), format: 'der', type: 'spki' });
  const edOk = cryptoVerify(null, payoutBindingBytes(clientId, address), key, Buffer.from(binding.ed25519Signature, 'hex'));
  if (!edOk) {
    throw new TributaryError('PAYOUT_BINDING_INVALID', 'The Ed25519 signature over the payout address does not verify under the client\'s key.');
  }
  let signer: string;
  try {
    signer = verifyMessage(payoutBindingText(clientId), binding.ethSignature);
  } catch {
    signer = '';
  }
  if (signer !== address) {
    throw new TributaryError('PAYOUT_BINDING_INVALID', `The EIP-191 signature over the client id was not made by ${address}.`);
  }
  return address;
}
