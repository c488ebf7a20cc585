import type { SecAggPlusClient } from './clientProtocol';
import { open, pairwiseMaskSeed, publicKeyOf } from './keys';
import { applyMask } from './masks';
import { type ClientToServer, ShareBundlePlaintextSchema } from './messages';
import type { ClientId } from './neighbours';
import { combineShares } from './shamir';

/**
 * What an adversary can rebuild of one client's input from what it gathered: the tool the
 * malicious-coordinator tests (sans-IO in maliciousServer.test.ts, on sockets in
 * test/secaggMaliciousCoordinator.e2e.test.ts) use to assert what leaks, not only which error the
 * honest clients raise. Nothing in the protocol calls it.
 */

/** The shares of a target's two secrets (self-mask seed, mask key) the adversary holds. */
export interface Loot {
  selfMaskShares: Uint8Array[];
  maskKeyShares: Uint8Array[];
}

/** An empty Loot. */
export const noLoot = (): Loot => ({ selfMaskShares: [], maskKeyShares: [] });

/**
 * The adversary's attempt at a target's quantised input: rebuild its self-mask seed and mask key
 * from the loot (the key is checked against the target's advertised mask public key), then strip
 * every mask from its masked vector (`maskedWith`: the neighbours it masked with). Null when the
 * shares do not rebuild the key (fewer than t, or the wrong ones) or no masked vector arrived.
 */
export async function recoverInput(
  target: ClientId,
  loot: Loot,
  maskedVector: Uint32Array | undefined,
  maskKeys: ReadonlyMap<ClientId, Uint8Array>,
  maskedWith: readonly ClientId[],
  roundId: string,
): Promise<Uint32Array | null> {
  if (!maskedVector || loot.selfMaskShares.length < 2 || loot.maskKeyShares.length < 2) return null;
  const selfMaskSeed = await combineShares(loot.selfMaskShares);
  const maskKey = await combineShares(loot.maskKeyShares);
  const advertised = maskKeys.get(target);
  if (!advertised || !Buffer.from(publicKeyOf(maskKey)).equals(Buffer.from(advertised))) return null;
  const x = Uint32Array.from(maskedVector);
  applyMask(x, selfMaskSeed, -1);
  for (const j of maskedWith) applyMask(x, pairwiseMaskSeed(maskKey, maskKeys.get(j)!, roundId), target < j ? -1 : 1);
  return x;
}

/** Adds the target's shares in an unmask reply to the loot (anything else is ignored). */
export function takeShares(loot: Loot, target: ClientId, reply: ClientToServer | undefined): void {
  if (reply?.stage !== 'unmask') return;
  for (const s of reply.selfMaskShares) if (s.ownerId === target) loot.selfMaskShares.push(s.share);
  for (const s of reply.maskKeyShares) if (s.ownerId === target) loot.maskKeyShares.push(s.share);
}

/**
 * A colluding client (the adversary's own SecAggPlusClient) hands over its shares of the target's
 * secrets: read from its private state after collect-masked-vectors, as a colluder would.
 */
export function heldShares(
  colluder: SecAggPlusClient,
  target: ClientId,
): { selfMaskShare: Uint8Array; maskKeyShare: Uint8Array } {
  const held = (colluder as unknown as { held: Map<ClientId, { selfMaskShare: Uint8Array; maskKeyShare: Uint8Array }> })
    .held;
  const shares = held.get(target);
  if (!shares) throw new Error('the colluder holds no shares of the target');
  return { ...shares };
}

/** Adds a colluder's shares of the target to the loot. */
export function takeHeldShares(loot: Loot, colluder: SecAggPlusClient, target: ClientId): void {
  const shares = heldShares(colluder, target);
  loot.selfMaskShares.push(shares.selfMaskShare);
  loot.maskKeyShares.push(shares.maskKeyShare);
}

/**
 * Opens the share bundles a target sealed (its share-keys reply) with encryption secret keys the
 * adversary holds (keys it substituted for neighbours, by neighbour id), adding the shares to the loot.
 */
export function openSealedShares(
  loot: Loot,
  reply: ClientToServer | undefined,
  targetEncryptionKey: Uint8Array,
  secretKeys: ReadonlyMap<ClientId, Uint8Array>,
): void {
  if (reply?.stage !== 'share-keys') return;
  for (const b of reply.bundles) {
    const secretKey = secretKeys.get(b.to);
    const plain = secretKey && open(b, targetEncryptionKey, secretKey);
    if (!plain) continue;
    const bundle = ShareBundlePlaintextSchema.parse(JSON.parse(Buffer.from(plain).toString('utf8')));
    loot.selfMaskShares.push(new Uint8Array(Buffer.from(bundle.selfMaskShare, 'hex')));
    loot.maskKeyShares.push(new Uint8Array(Buffer.from(bundle.maskKeyShare, 'hex')));
  }
}
