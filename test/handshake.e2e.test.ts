/**
 * Handshakes bound to their audience (issue 11, item 5), played as the attacker would over real
 * sockets: a handshake captured at one coordinator replayed at another, replayed at the same one
 * after it restarts, replayed at the same one while the victim is connected; and a client that the
 * coordinator disconnected comes back by itself with a fresh handshake.
 */
import { CoordinatorConnection, handshakeAuth } from '../client/coordinatorConnection';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity } from '../shared/identity/keyPair';
import { RawClient } from './support/rawClient';

jest.setTimeout(300_000);

async function outcome(url: string, auth: unknown): Promise<string> {
  const c = new RawClient(generateIdentity(), url);
  try {
    await c.connect(auth);
    c.socket.disconnect();
    return 'connected';
  } catch (err) {
    return ((err as { data?: { code?: string } }).data?.code ?? 'none') as string;
  }
}

describe('handshakes bound to their coordinator', () => {
  const started: Coordinator[] = [];
  const start = async (port = 0) => {
    const c = await startCoordinator({ port, logLevel: 'error' });
    started.push(c);
    return c;
  };
  afterAll(async () => {
    for (const c of started) await c.close();
  });

  it('refuses at coordinator B a handshake captured at coordinator A, and B never sees the key', async () => {
    const [a, b] = [await start(), await start()];
    const victim = generateIdentity();
    const captured = handshakeAuth(victim, a.url);
    expect(await outcome(b.url, captured)).toBe('AUTH_AUDIENCE_MISMATCH');
    expect(b.directory.link(victim.clientId)).toBeUndefined();
    // The same handshake is good at A, once.
    expect(await outcome(a.url, captured)).toBe('connected');
    expect(await outcome(a.url, captured)).toBe('AUTH_REPLAY');
  });

  it('refuses a handshake captured before a restart, at the same address', async () => {
    const first = await start();
    const port = first.port;
    const captured = handshakeAuth(generateIdentity(), first.url);
    await first.close();
    const again = await start(port);
    expect(again.url).toBe(first.url);
    expect(await outcome(again.url, captured)).toBe('AUTH_STALE');
  });

  it('does not let a replayed handshake evict the connected victim', async () => {
    const c = await start();
    const victim = generateIdentity();
    const auth = handshakeAuth(victim, c.url);
    const conn = new RawClient(victim, c.url);
    await conn.connect(auth);
    expect(await outcome(c.url, auth)).toBe('AUTH_REPLAY');
    await new Promise((r) => setTimeout(r, 200));
    expect(conn.socket.connected).toBe(true);
    expect(c.directory.link(victim.clientId)).toBeDefined();
    conn.socket.disconnect();
  });

  it('reconnects by itself after the coordinator closed its connection', async () => {
    const c = await start();
    const conn = new CoordinatorConnection({ url: c.url, identity: generateIdentity(), reconnectDelayMs: 50 });
    let connects = 0;
    const twice = new Promise<void>((resolve) =>
      conn.on('connected', () => {
        if (++connects === 2) resolve();
      }),
    );
    conn.connect();
    await new Promise<void>((resolve) => conn.once('connected', () => resolve()));
    for (const socket of c.io.sockets.sockets.values()) socket.disconnect(true);
    await twice;
    expect(conn.socket.connected).toBe(true);
    conn.close();
  });
});

describe('socket connection rate limits', () => {
  it('refuses a key that reconnects too often with RATE_LIMITED and Retry-After time, others unaffected', async () => {
    const c = await startCoordinator({ port: 0, logLevel: 'error', socketConnectionsPerKeyPerMinute: 3 });
    try {
      const flood = generateIdentity();
      const codes: string[] = [];
      for (let i = 0; i < 5; i++) {
        const raw = new RawClient(flood, c.url);
        try {
          await raw.connect();
          codes.push('connected');
          raw.socket.disconnect();
        } catch (err) {
          codes.push((err as { data?: { code?: string } }).data?.code ?? 'none');
        }
      }
      expect(codes).toEqual(['connected', 'connected', 'connected', 'RATE_LIMITED', 'RATE_LIMITED']);
      expect(await outcome(c.url, handshakeAuth(generateIdentity(), c.url))).toBe('connected');
      const metrics = await (await fetch(`${c.url}/metrics`)).text();
      expect(metrics).toMatch(/tributary_rate_limit_hits_total\{limiter="socket-key"\} 2/);
    } finally {
      await c.close();
    }
  });
});
