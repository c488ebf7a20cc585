import { TributaryError } from '../../shared/errors';
import type { AdmissionCheck } from '../ports';
import { verifyPayoutBinding } from './verifyPayoutBinding';

/**
 * The payout binding at join: a provider that sends one must prove both signatures (its Ed25519 key
 * signed the address, the address's key signed the Ed25519 key); a paid job (`chain` config) admits
 * only providers that send one, since it pays to the bound address.
 */
export const payoutAdmission: AdmissionCheck = ({ job, clientId, payout }) => {
  const payoutAddress = payout ? verifyPayoutBinding(clientId, payout) : undefined;
  if (job.spec.chain && !payoutAddress) {
    throw new TributaryError(
      'PAYOUT_BINDING_INVALID',
      `Job ${job.id} pays contributors on chain: join with a payout address bound to your key (body.payout).`,
    );
  }
  return payoutAddress ? { payoutAddress } : undefined;
};
