import type { z } from 'zod';
import {
  ApiKeyListSchema,
  ApiKeyViewSchema,
  type CreateApiKeyInput,
  CreatedApiKeySchema,
} from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type CreateApiKeyParameters = CreateApiKeyInput;
export type CreateApiKeyReturnType = z.infer<typeof CreatedApiKeySchema>;
export type CreateApiKeyErrorType = TributaryApiError<
  'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'QUOTA_EXCEEDED' | 'VALIDATION_FAILED'
>;

/**
 * Creates an API key for the client's identity (POST /v1/api-keys). The token is in `key` and is never
 * shown again; machines send it as a bearer token: `createBuyerClient({ url, apiKey: key })`. Only a
 * signed (or signed-in) client can manage keys.
 * @example
 * const { key, expiresAt } = await createApiKey(client, { name: 'ci', scopes: ['jobs:read'], expiresInSeconds: 86_400 });
 */
export async function createApiKey(
  client: BuyerClient,
  parameters: CreateApiKeyParameters,
): Promise<CreateApiKeyReturnType> {
  return client.request({
    method: 'POST',
    path: '/v1/api-keys',
    json: parameters,
    response: { schema: CreatedApiKeySchema },
  });
}

export type ListApiKeysReturnType = z.infer<typeof ApiKeyListSchema>['keys'];
export type ListApiKeysErrorType = TributaryApiError<'AUTH_REQUIRED' | 'AUTH_FORBIDDEN'>;

/**
 * The client's API keys, newest first, without their tokens (GET /v1/api-keys).
 * @example
 * const live = (await listApiKeys(client)).filter((k) => !k.revokedAt);
 */
export async function listApiKeys(client: BuyerClient): Promise<ListApiKeysReturnType> {
  return (await client.request({ method: 'GET', path: '/v1/api-keys', response: { schema: ApiKeyListSchema } })).keys;
}

export type RevokeApiKeyParameters = { id: string };
export type RevokeApiKeyReturnType = z.infer<typeof ApiKeyViewSchema>;
export type RevokeApiKeyErrorType = TributaryApiError<'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'NOT_FOUND'>;

/**
 * Revokes one of the client's API keys (DELETE /v1/api-keys/:id); requests with it fail with API_KEY_INVALID from then on.
 * @example
 * await revokeApiKey(client, { id: created.id });
 */
export async function revokeApiKey(
  client: BuyerClient,
  { id }: RevokeApiKeyParameters,
): Promise<RevokeApiKeyReturnType> {
  return client.request({
    method: 'DELETE',
    path: `/v1/api-keys/${encodeURIComponent(id)}`,
    response: { schema: ApiKeyViewSchema },
  });
}
