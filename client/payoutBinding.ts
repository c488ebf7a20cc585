import type { Wallet } from 'ethers';
import type { Identity } from '../shared/identity/keyPair';
import { payoutBindingBytes, payoutBindingText } from '../shared/identity/payoutBinding';
import { signBytes } from '../shared/identity/signing';
import type { PayoutBinding } from '../shared/schemas/messages';

/**
 * The client's half of the payout binding (shared/identity/payoutBinding.ts): the Ed25519 identity
 * signs the address and the Ethereum key signs the Ed25519 public key (EIP-191). Sent at join.
 */
export async function createPayoutBinding(
  identity: Identity,
  wallet: Pick<Wallet, 'address' | 'signMessage'>,
): Promise<PayoutBinding> {
  const address = wallet.address;
  const ed25519Signature = signBytes(identity.secretKey, payoutBindingBytes(identity.clientId, address));
  const ethSignature = await wallet.signMessage(payoutBindingText(identity.clientId));
  return { address, ed25519Signature, ethSignature };
}
