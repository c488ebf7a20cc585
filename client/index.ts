/**
 * `tributary/client`: the data provider's side. Join a job with TributaryClient (training stays on
 * this machine; only updates leave), keep the identity in a key file, publish dataset listings, claim
 * payouts, hold a paillier job's decryption key, and sign REST requests with createSignedFetch.
 *
 * @example
 * import { TributaryClient, loadOrCreateIdentity } from 'tributary/client';
 * const client = new TributaryClient({ url, jobId, identity: loadOrCreateIdentity('client.key'), dataset });
 * await client.run();
 */
export { TributaryClient, type TributaryClientOptions, type RoundTrainedEvent } from './tributaryClient';
export { loadOrCreateIdentity, loadOrCreatePayoutKey, assertPrivateKeyFile } from './keyFile';
export { createSignedFetch, type SignedFetch } from './signedFetch';
export { createPayoutBinding } from './payoutBinding';
export { claimPayout, fetchPayoutProof, type ClaimOptions, type ClaimResult, type PayoutProof } from './claimPayout';
export {
  deleteListing,
  describeDatasetFile,
  getListing,
  publishListing,
  searchListings,
  verifyPublishedListing,
  type PublishListingOptions,
} from './listings';
export {
  KeyHolder,
  generateKeyHolderKeys,
  keyHolderSpecFields,
  loadKeyHolderKeyFile,
  writeKeyHolderKeyFile,
  type KeyHolderKeys,
  type KeyHolderOptions,
} from './keyHolder';
export { generateIdentity, identityFromSecretKey, type Identity } from '../shared/identity/keyPair';
