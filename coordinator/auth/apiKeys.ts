import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { z } from 'zod';
import { TributaryError } from '../../shared/errors';
import type { CreateApiKeySchema } from '../../shared/schemas/restApi';
import type { ApiKeyRecord, Store } from '../store/store';
import type { Principal } from './principal';
import { CREATION_CLAIM_PENDING_MS } from '../store/slotClaims';

/** `trk_` + 16 hex digits of id + `_` + 43 base64url characters of secret (32 random bytes). */
const TOKEN_PATTERN = /^trk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** Whether a bearer token looks like an API key (and not a JWT). */
export const isApiKeyToken = (token: string) => token.startsWith('trk_');

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * Scoped, expiring, revocable API keys for machines. A key is `trk_<id>_<secret>`; the store keeps
 * only SHA-256 of the whole token (32 random secret bytes need no slow hash), so a store leak yields
 * no usable key. The token is returned once, at creation. Verification looks the key up by its id and
 * compares hashes in constant time; an unknown, revoked or expired key is API_KEY_INVALID (401).
 * Only an identity proven by a signature or a Sign-In with Ethereum token manages keys: a key cannot
 * mint, list or revoke keys.
 */
export class ApiKeyService {
  constructor(
    private readonly store: Store,
    private readonly options: { maxKeysPerOwner: number; now?: () => number },
  ) {}

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Creates a key for `owner`; the answer holds the token, which is never shown again. */
  async create(
    owner: Principal,
    input: z.output<typeof CreateApiKeySchema>,
  ): Promise<{ record: ApiKeyRecord; token: string }> {
    const limit = this.options.maxKeysPerOwner;
    const overQuota = (live: number) =>
      new TributaryError(
        'QUOTA_EXCEEDED',
        `This identity has ${live} live API keys; at most ${limit} are allowed. Revoke one first.`,
        { details: { resource: 'api-keys', limit } },
      );
    // Keys made before claim slots existed hold none: counted here.
    const active = (await this.store.listApiKeys(owner.id)).filter((k) => this.isLive(k));
    if (active.length >= limit) throw overQuota(active.length);
    const id = randomBytes(8).toString('hex');
    const now = this.now();
    // The quota is a claim slot in the store: a burst at one node or several cannot all pass it.
    const claim = await this.store.claimSlot({
      kind: 'api-keys',
      scope: owner.id,
      holder: id,
      limit,
      now: new Date(now),
      pendingMs: CREATION_CLAIM_PENDING_MS,
    });
    if (claim.outcome === 'refused') throw overQuota(claim.holders.length);
    const token = `trk_${id}_${randomBytes(32).toString('base64url')}`;
    const record: ApiKeyRecord = {
      id,
      owner: owner.id,
      name: input.name,
      scopes: [...input.scopes],
      tokenHash: sha256(token).toString('hex'),
      createdAt: new Date(now),
      expiresAt: new Date(now + input.expiresInSeconds * 1000),
    };
    try {
      await this.store.saveApiKey(record);
    } catch (err) {
      await this.store.releaseSlot('api-keys', owner.id, id).catch(() => {});
      throw err;
    }
    return { record, token };
  }

  /** The principal a token acts as; API_KEY_INVALID for anything else. */
  async verify(token: string): Promise<Principal> {
    const m = TOKEN_PATTERN.exec(token);
    const record = m ? await this.store.getApiKey(m[1]) : null;
    const invalid = () => new TributaryError('API_KEY_INVALID', 'The API key is unknown, revoked or expired.');
    if (!record) throw invalid();
    const presented = sha256(token);
    const stored = Buffer.from(record.tokenHash, 'hex');
    if (stored.length !== presented.length || !timingSafeEqual(stored, presented) || !this.isLive(record))
      throw invalid();
    const [kind, value] = record.owner.split(':');
    return {
      id: record.owner,
      via: 'api-key',
      scopes: record.scopes,
      apiKeyId: record.id,
      ...(kind === 'ed25519' ? { clientId: value } : { address: value }),
    };
  }

  /** The owner's keys (never their hashes). */
  async list(owner: Principal): Promise<ApiKeyRecord[]> {
    return this.store.listApiKeys(owner.id);
  }

  /** Revokes one of the owner's keys; NOT_FOUND if it has no such live key. */
  async revoke(owner: Principal, id: string): Promise<ApiKeyRecord> {
    const record = /^[0-9a-f]{16}$/.test(id) ? await this.store.getApiKey(id) : null;
    if (!record || record.owner !== owner.id)
      throw new TributaryError('NOT_FOUND', `You have no API key "${id.slice(0, 32)}".`);
    if (!(await this.store.revokeApiKey(id, new Date(this.now())))) {
      throw new TributaryError('NOT_FOUND', `API key ${id} is already revoked.`);
    }
    // Frees its quota slot now (a revoked key's slot would also count as free at the next claim).
    await this.store.releaseSlot('api-keys', owner.id, id);
    return { ...record, revokedAt: new Date(this.now()) };
  }

  private isLive(record: ApiKeyRecord): boolean {
    return !record.revokedAt && record.expiresAt.getTime() > this.now();
  }
}
