import { Wallet } from 'ethers';
import { createPayoutBinding } from '../../client/payoutBinding';
import { generateIdentity } from '../../shared/identity/keyPair';
import { verifyPayoutBinding } from './verifyPayoutBinding';

describe('payout binding', () => {
  const identity = generateIdentity();
  const wallet = Wallet.createRandom();

  it('accepts a binding made by both keys and returns the checksummed address', async () => {
    const binding = await createPayoutBinding(identity, wallet);
    expect(verifyPayoutBinding(identity.clientId, binding)).toBe(wallet.address);
    expect(verifyPayoutBinding(identity.clientId, { ...binding, address: wallet.address.toLowerCase() })).toBe(
      wallet.address,
    );
  });

  it('refuses a binding presented by another identity, for another address, or signed by another Ethereum key', async () => {
    const binding = await createPayoutBinding(identity, wallet);
    const other = generateIdentity();
    const otherWallet = Wallet.createRandom();
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return `${(e as { code?: string; message: string }).code}: ${(e as Error).message}`;
      }
      return 'accepted';
    };
    // Someone replaying a provider's binding under their own identity.
    expect(code(() => verifyPayoutBinding(other.clientId, binding))).toMatch(
      /^PAYOUT_BINDING_INVALID: The Ed25519 signature/,
    );
    // The identity's signature over one address cannot redirect the payout to another.
    expect(code(() => verifyPayoutBinding(identity.clientId, { ...binding, address: otherWallet.address }))).toMatch(
      /^PAYOUT_BINDING_INVALID: The Ed25519 signature/,
    );
    // An address whose key did not accept this identity (the Ethereum signature is another key's).
    const foreign = await createPayoutBinding(identity, otherWallet);
    expect(
      code(() => verifyPayoutBinding(identity.clientId, { ...binding, ethSignature: foreign.ethSignature })),
    ).toMatch(/^PAYOUT_BINDING_INVALID: The EIP-191 signature/);
    expect(
      code(() => verifyPayoutBinding(identity.clientId, { ...binding, ethSignature: `0x${'00'.repeat(65)}` })),
    ).toMatch(/^PAYOUT_BINDING_INVALID/);
    // A mixed-case address with a wrong checksum (every letter's case flipped).
    const bad =
      binding.address.slice(0, 2) +
      [...binding.address.slice(2)].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
    expect(code(() => verifyPayoutBinding(identity.clientId, { ...binding, address: bad }))).toMatch(
      /^PAYOUT_BINDING_INVALID/,
    );
  });
});
