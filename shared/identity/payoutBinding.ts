/**
 * The messages that bind a provider's payout (Ethereum) address to its Ed25519 identity. Both keys
 * sign, so neither can be claimed by someone who holds only the other: the Ed25519 key signs the
 * address (the identity chose this address) and the Ethereum key signs the Ed25519 public key with
 * EIP-191 personal_sign (the address's owner accepts this identity). Each side implements only its half:
 * the client signs (client/payoutBinding.ts), the coordinator verifies (coordinator/chain/verifyPayoutBinding.ts).
 */

/** Domain tag of both messages, so neither signature is valid in any other Tributary context. */
export const PAYOUT_BINDING_DOMAIN = 'tributary/payout-address/v1';

/** The bytes the Ed25519 key signs: a JSON array of the domain, the client id and the address (lowercase). */
export function payoutBindingBytes(clientId: string, address: string): Uint8Array {
  return Buffer.from(JSON.stringify([PAYOUT_BINDING_DOMAIN, clientId, address.toLowerCase()]), 'utf8');
}

/** The text the Ethereum key signs with EIP-191 (`personal_sign`). */
export function payoutBindingText(clientId: string): string {
  return `${PAYOUT_BINDING_DOMAIN}\nTributary client (Ed25519 public key): ${clientId}`;
}
