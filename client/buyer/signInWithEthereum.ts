import type { Signer } from 'ethers';
import { SiweMessage } from 'siwe';
import type { z } from 'zod';
import { SessionSchema, SiweNonceSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type SignInWithEthereumParameters = {
  /** The wallet that signs the EIP-4361 message (any ethers Signer: a Wallet, a browser signer). */
  wallet: Signer;
  /** EIP-155 chain id named in the message. @default 1 */
  chainId?: number;
  /** Human-readable statement in the message. @default "Sign in to the Tributary coordinator." */
  statement?: string;
};
export type SignInWithEthereumReturnType = z.infer<typeof SessionSchema>;
export type SignInWithEthereumErrorType = TributaryApiError<'AUTH_SIWE_INVALID' | 'RATE_LIMITED'>;

/**
 * Signs in with an Ethereum wallet (EIP-4361): fetches a nonce, signs the message for this coordinator's
 * domain, and exchanges it for a short-lived bearer token for `eth:<address>`.
 * @example
 * const session = await signInWithEthereum(createBuyerClient({ url }), { wallet });
 * const client = createBuyerClient({ url, token: session.token });
 */
export async function signInWithEthereum(
  client: BuyerClient,
  { wallet, chainId = 1, statement = 'Sign in to the Tributary coordinator.' }: SignInWithEthereumParameters,
): Promise<SignInWithEthereumReturnType> {
  const challenge = await client.request({
    method: 'GET',
    path: '/v1/auth/siwe/nonce',
    response: { schema: SiweNonceSchema },
  });
  const message = new SiweMessage({
    domain: challenge.domain,
    address: await wallet.getAddress(),
    statement,
    uri: challenge.uri,
    version: '1',
    chainId,
    nonce: challenge.nonce,
    issuedAt: new Date().toISOString(),
    expirationTime: challenge.expiresAt,
  }).prepareMessage();
  const signature = await wallet.signMessage(message);
  return client.request({
    method: 'POST',
    path: '/v1/auth/siwe',
    json: { message, signature },
    response: { schema: SessionSchema },
  });
}
