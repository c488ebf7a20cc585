import { getAddress, verifyMessage } from 'ethers';
import { TributaryError } from '../../shared/errors';
import { payoutBindingBytes, payoutBindingText } from '../../shared/identity/payoutBinding';
import { SignatureVerifier } from '../../shared/identity/signing';
import type { PayoutBinding } from '../../shared/schemas/messages';

const verifier = new SignatureVerifier();

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
    throw new TributaryError(
      'PAYOUT_BINDING_INVALID',
      `"${binding.address}" is not a valid Ethereum address (bad checksum?).`,
    );
  }
  if (!verifier.verifyBytes(clientId, payoutBindingBytes(clientId, address), binding.ed25519Signature)) {
    throw new TributaryError(
      'PAYOUT_BINDING_INVALID',
      "The Ed25519 signature over the payout address does not verify under the client's key.",
    );
  }
  let signer: string;
  try {
    signer = verifyMessage(payoutBindingText(clientId), binding.ethSignature);
  } catch {
    signer = '';
  }
  if (signer !== address) {
    throw new TributaryError(
      'PAYOUT_BINDING_INVALID',
      `The EIP-191 signature over the client id was not made by ${address}.`,
    );
  }
  return address;
}
