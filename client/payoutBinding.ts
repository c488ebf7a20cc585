import type { Wallet } from 'ethers';
import nacl from 'tweetnacl';
import type { Identity } from '../shared/identity/keyPair';
import { payoutBindingBytes, payoutBindingText } from '../shared/identity/payoutBinding';
import type { PayoutBinding } from '../shared/schemas/messages';

/**
 * The client's half of the payout binding (shared/identity/payoutBinding.ts): the Ed25519 identity
 * signs the address and the Ethereum key signs the Ed25519 public key (EIP-191). Sent at join.
 */
export async function createPayoutBinding(identity: Identity, wallet: Pick<Wallet, 'address' | 'signMessage'>): Promise<PayoutBinding> {
  const address = wallet.address;
  const ed25519Signature = Buffer.from(nacl.sign.detached(payoutBindingBytes(identity.clientId, address), identity.secretKey)).toString('hex');
  const ethSignature = await wallet.signMessage(payoutBindingText(identity.clientId));
  return { address, ed25519Signature, ethSignature };
}
