import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { TributaryError } from '../../shared/errors';
import type { Logger } from '../logger';

/** A cluster's Redis (coordinator/cluster): the socket.io adapter and the shared handshake nonces. */
export interface ClusterRedis {
  /** The socket.io adapter: rooms and broadcasts span every node (`io.adapter(redis.adapter)`). */
  readonly adapter: ReturnType<typeof createAdapter>;
  /**
   * Records `id` for `ttlMs` cluster-wide (SET NX PX): false if any node recorded it within its TTL.
   * Throws STORE_UNAVAILABLE while Redis cannot be reached (handshakes fail closed, clients retry).
   */
  claimNonce(id: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Bounds a Redis command: a blocked Redis must not hold a handshake for ever. */
const COMMAND_TIMEOUT_MS = 5_000;

/**
 * Connects to a cluster's Redis: one client for commands and publishing, a duplicate for the
 * adapter's subscriptions (a subscribed connection can run nothing else). node-redis reconnects by
 * itself with backoff; while it is away, broadcasts across nodes are lost (the classic pub/sub
 * adapter keeps nothing) and handshakes are refused, and nothing a round needs is affected: round
 * traffic never crosses Redis (docs/cluster.md).
 */
export async function connectClusterRedis(url: string, logger: Logger): Promise<ClusterRedis> {
  const pub = createClient({
    url,
    socket: { connectTimeout: COMMAND_TIMEOUT_MS, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2_000) },
    // Commands sent while disconnected fail at once rather than queueing for an unknown time.
    disableOfflineQueue: true,
  });
  const sub = pub.duplicate();
  let reported = false;
  for (const client of [pub, sub]) {
    client.on('error', (err: Error) => {
      if (!reported) logger.error('redis unavailable', { message: err.message });
      reported = true;
    });
    client.on('ready', () => {
      if (reported) logger.info('redis reconnected', {});
      reported = false;
    });
  }
  try {
    await Promise.all([pub.connect(), sub.connect()]);
  } catch (err) {
    await Promise.allSettled([pub.disconnect(), sub.disconnect()]);
    throw new TributaryError('CONFIG_INVALID', `Cannot reach Redis at ${redactUrl(url)}: ${String(err)}`, {
      cause: err,
    });
  }
  return {
    adapter: createAdapter(pub, sub, { key: 'tributary' }),
    async claimNonce(id, ttlMs) {
      try {
        const set = await Promise.race([
          pub.set(`tributary:nonce:${id}`, '1', { NX: true, PX: ttlMs }),
          new Promise<never>((_, reject) =>
            setTimeout(() => reject(new Error('timed out')), COMMAND_TIMEOUT_MS).unref(),
          ),
        ]);
        return set === 'OK';
      } catch (err) {
        throw new TributaryError('STORE_UNAVAILABLE', `The cluster's Redis cannot be reached: ${String(err)}.`, {
          cause: err,
        });
      }
    },
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
