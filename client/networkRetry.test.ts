import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hasCode } from '../shared/errors';
import { describeFailure, isNetworkFailure, rateLimitedError, withNetworkRetries } from './networkRetry';

jest.setTimeout(60_000);

/** A loopback HTTP server that cuts the connection of its first `cut` requests, then answers `status`. */
async function flakyServer(
  cut: number,
  status = 200,
): Promise<{ url: string; requests: () => number; server: Server }> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    if (requests <= cut) {
      req.socket.destroy(); // no response: what a reset or a closed keep-alive connection looks like to fetch
      return;
    }
    res.writeHead(status, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.from([1, 2, 3]));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/model`, requests: () => requests, server };
}

const download = (url: string) => async () => {
  const res = await fetch(url);
  return { status: res.status, body: [...new Uint8Array(await res.arrayBuffer())] };
};

describe('withNetworkRetries', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
  });

  it('retries a download whose connection was cut, and returns the response that follows', async () => {
    const s = await flakyServer(2);
    servers.push(s.server);
    const retried: unknown[] = [];
    const got = await withNetworkRetries(download(s.url), { backoffMs: 10, onRetry: (err) => retried.push(err) });
    expect(got).toEqual({ status: 200, body: [1, 2, 3] });
    expect(s.requests()).toBe(3);
    expect(retried).toHaveLength(2);
    expect(retried.every(isNetworkFailure)).toBe(true);
    expect(describeFailure(retried[0])).toMatch(/^TypeError: fetch failed \(.+\)$/); // the cause is named
  });

  it('gives up after `attempts` tries with the network failure', async () => {
    const s = await flakyServer(100);
    servers.push(s.server);
    const err = await withNetworkRetries(download(s.url), { attempts: 3, backoffMs: 10 }).catch((e: unknown) => e);
    expect(isNetworkFailure(err)).toBe(true);
    expect(s.requests()).toBe(3);
  });

  it('returns an HTTP error response as is, and never retries other errors', async () => {
    const s = await flakyServer(0, 503);
    servers.push(s.server);
    expect(await withNetworkRetries(download(s.url), { backoffMs: 10 })).toEqual({ status: 503, body: [1, 2, 3] });
    expect(s.requests()).toBe(1);
    let calls = 0;
    const refusal = new Error('hash mismatch');
    await expect(
      withNetworkRetries(
        async () => {
          calls++;
          throw refusal;
        },
        { backoffMs: 10 },
      ),
    ).rejects.toBe(refusal);
    expect(calls).toBe(1);
  });

  it('starts no retry after `until` (the round deadline)', async () => {
    const s = await flakyServer(100);
    servers.push(s.server);
    const err = await withNetworkRetries(download(s.url), { backoffMs: 10, until: Date.now() - 1 }).catch(
      (e: unknown) => e,
    );
    expect(isNetworkFailure(err)).toBe(true);
    expect(s.requests()).toBe(1);
  });

  it('retries a rate-limited download after the wait its Retry-After asks for, within `until`', async () => {
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      if (requests === 1) res.writeHead(429, { 'retry-after': '1' }).end();
      else res.writeHead(200).end(Buffer.from([7]));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model`;
    const get = async () => {
      const res = await fetch(url);
      if (res.status === 429) throw rateLimitedError('The test download', res.headers.get('retry-after'));
      return [...new Uint8Array(await res.arrayBuffer())];
    };
    const retried: unknown[] = [];
    const started = Date.now();
    const body = await withNetworkRetries(get, { backoffMs: 10, onRetry: (err) => retried.push(err) });
    expect(body).toEqual([7]);
    expect(requests).toBe(2);
    // It waited for the server's second, not its own 10 ms backoff.
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(hasCode(retried[0], 'RATE_LIMITED') && retried[0].details?.retryAfterMs).toBe(1000);

    // A wait past the round's deadline is not taken: the refusal is thrown at once.
    requests = 0;
    const late = await withNetworkRetries(get, { backoffMs: 10, until: Date.now() + 500 }).catch((e: unknown) => e);
    expect(hasCode(late, 'RATE_LIMITED')).toBe(true);
    expect(requests).toBe(1);
  });
});

describe('rateLimitedError', () => {
  it('reads Retry-After as seconds or an HTTP date, and waits 1 s when it is absent or unreadable', () => {
    const wait = (h: string | null, now?: number) => rateLimitedError('x', h, now).details as { retryAfterMs: number };
    expect(wait('3').retryAfterMs).toBe(3000);
    expect(wait(' 0 ').retryAfterMs).toBe(0);
    const now = Date.parse('Wed, 02 Dec 2026 03:00:00 GMT');
    expect(wait('Wed, 02 Dec 2026 03:00:05 GMT', now).retryAfterMs).toBe(5000);
    expect(wait('Wed, 02 Dec 2026 02:59:00 GMT', now).retryAfterMs).toBe(0);
    expect(wait(null).retryAfterMs).toBe(1000);
    expect(wait('soon').retryAfterMs).toBe(1000);
    expect(rateLimitedError('x', '2').code).toBe('RATE_LIMITED');
  });
});
