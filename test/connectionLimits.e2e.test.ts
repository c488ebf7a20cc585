/**
 * Per-address limits played by a stranger on one address with many keys, over real sockets and HTTP
 * on loopback: socket handshakes per IP (counted before any signature is checked, so unsigned junk
 * spends the budget too), REST requests per connecting address (a forged X-Forwarded-For changes
 * nothing), and the large-body gate, which answers a second large body from one
 * identity, or a third from one address, with 429 RATE_LIMITED before reading it while small bodies
 * pass, and admits again once the bodies in flight have ended.
 */
import { handshakeAuth } from '../client/coordinatorConnection';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { signHttpRequest } from '../shared/identity/httpSignature';
import { generateIdentity, type Identity } from '../shared/identity/keyPair';
import { RawClient } from './support/rawClient';

jest.setTimeout(120_000);

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

describe('per-address limits', () => {
  let c: Coordinator | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  it('refuses socket handshakes from one address beyond its budget, whatever keys they use, junk included', async () => {
    c = await startCoordinator({ port: 0, logLevel: 'error', socketConnectionsPerIpPerMinute: 5 });
    const url = c.url;
    // Two unsigned handshakes spend the address's budget as well (the limit runs before any signature work).
    expect(await outcome(url, {})).toBe('AUTH_REQUIRED');
    expect(await outcome(url, { protocolVersion: 3 })).toBe('AUTH_REQUIRED');
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const key = generateIdentity();
      codes.push(await outcome(url, handshakeAuth(key, url)));
    }
    expect(codes).toEqual(['connected', 'connected', 'connected', 'RATE_LIMITED', 'RATE_LIMITED']);
    // A refused handshake leaves no trace of its key.
    expect(c.directory.connectedCount).toBe(0);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/tributary_rate_limit_hits_total\{limiter="socket-ip"\} 2/);
  });

  it('counts REST requests per connecting address, whatever X-Forwarded-For claims', async () => {
    c = await startCoordinator({ port: 0, logLevel: 'error', rateLimitPerIp: 5 });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await fetch(`${c.url}/v1/jobs`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect((await fetch(`${c.url}/v1/health`)).status).toBe(200);
  });

  it('answers 429 to a second large body of one identity and a third of one address before reading them; small bodies pass', async () => {
    c = await startCoordinator({ port: 0, logLevel: 'error' });
    const jobsUrl = `${c.url}/v1/jobs`;
    // A valid job spec padded past the gate's 64 KB threshold with JSON whitespace.
    const spec = (name: string, padding: number) =>
      Buffer.from(
        `${JSON.stringify({
          name,
          model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
          input: { shape: [3], numClasses: 2 },
          rounds: 1,
          secureAggregation: 'none',
        })}${' '.repeat(padding)}`,
      );
    const post = (identity: Identity, body: Buffer) =>
      fetch(jobsUrl, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          ...signHttpRequest(identity, { method: 'POST', url: jobsUrl, body }),
        },
      });
    /** A large body sent in part and held open until `release` (chunked: its length is unknown). */
    const held = (identity: Identity, body: Buffer) => {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const stream = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(body.subarray(0, 1024));
          await released;
          controller.enqueue(body.subarray(1024));
          controller.close();
        },
      });
      const answer = fetch(jobsUrl, {
        method: 'POST',
        body: stream,
        headers: {
          'content-type': 'application/json',
          ...signHttpRequest(identity, { method: 'POST', url: jobsUrl, body }),
        },
        duplex: 'half',
      } as RequestInit);
      return { release, answer };
    };
    const codeOf = async (res: Response) =>
      `${res.status} ${((await res.json()) as { error?: { code?: string } }).error?.code ?? 'ok'}`;
    const [a, b, d] = [generateIdentity(), generateIdentity(), generateIdentity()];
    const jobsBefore = (await c.store.listJobs()).length;

    const first = held(a, spec('a-1', 100_000));
    await new Promise((r) => setTimeout(r, 300));
    // The same identity's second large body: refused before a byte of it is read.
    const second = await post(a, spec('a-2', 100_000));
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('1');
    expect(await codeOf(second)).toBe('429 RATE_LIMITED');
    // A small body of that identity is not gated.
    expect(await codeOf(await post(a, spec('a-small', 0)))).toBe('201 ok');
    // Another identity on the same address: admitted (two per address) ...
    const third = held(b, spec('b-1', 100_000));
    await new Promise((r) => setTimeout(r, 300));
    // ... and a third identity on that address is not.
    expect(await codeOf(await post(d, spec('d-1', 100_000)))).toBe('429 RATE_LIMITED');
    expect((await c.store.listJobs()).length).toBe(jobsBefore + 1);

    first.release();
    third.release();
    expect(await codeOf(await first.answer)).toBe('201 ok');
    expect(await codeOf(await third.answer)).toBe('201 ok');
    // Once they ended, the gate admits again.
    expect(await codeOf(await post(d, spec('d-2', 100_000)))).toBe('201 ok');
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metrics).toMatch(/tributary_rate_limit_hits_total\{limiter="large-bodies"\} 2/);
  });
});
