import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { declaredSha256, verifyHttpSignature } from '../../shared/identity/httpSignature';
import { generateIdentity } from '../../shared/identity/keyPair';
import { SignatureVerifier } from '../../shared/identity/signing';
import { createSignedFetch } from '../signedFetch';
import { createBuyerClient } from './client';
import { createJob } from './createJob';
import { isApiError, TributaryApiError } from './errors';
import { waitForJob } from './waitForJob';

/** A stand-in coordinator that records each request and answers from a script. */
async function fake(
  answer: (req: IncomingMessage, body: Buffer, n: number) => [number, unknown, Record<string, string>?],
) {
  const requests: Array<{ req: IncomingMessage; body: Buffer }> = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ req, body });
      const [status, json, headers] = answer(req, body, requests.length);
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(json));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((r) => server.close(r)),
  };
}

describe('buyer SDK client', () => {
  const identity = generateIdentity();
  const verifier = new SignatureVerifier();

  it('signs each request (method, URL, body digest) so the coordinator can verify it', async () => {
    const server = await fake(() => [400, { error: { code: 'JOB_SPEC_INVALID', message: 'rounds: too small' } }]);
    try {
      const err = await createJob(createBuyerClient({ url: server.url, identity }), {
        spec: { name: 'x', model: { kind: 'builtin', name: 'mlp' }, input: { shape: [2], numClasses: 2 }, rounds: 1 },
      }).catch((e: unknown) => e);
      const { req, body } = server.requests[0];
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      const parsed = verifyHttpSignature(
        { method: 'POST', url: `${server.url}${req.url}`, headers },
        { verifier, windowMs: 60_000, nowMs: Date.now(), hasBody: true },
      );
      expect(parsed.params.keyid).toBe(identity.clientId);
      expect(declaredSha256(headers['content-digest'])).toEqual(
        require('node:crypto').createHash('sha256').update(body).digest(),
      );
      // A coded answer becomes a typed TributaryApiError with the request named.
      expect(isApiError(err, 'JOB_SPEC_INVALID')).toBe(true);
      expect(err).toMatchObject({
        status: 400,
        request: 'POST /v1/jobs',
        message: expect.stringContaining('rounds: too small'),
      });
    } finally {
      await server.close();
    }
  });

  it('sends tokens and API keys as bearer tokens, and maps unreachable coordinators and bad answers to coded errors', async () => {
    const server = await fake(() => [200, { not: 'a job' }]);
    try {
      await createBuyerClient({ url: server.url, apiKey: 'trk_x' }).request({
        method: 'GET',
        path: '/v1/jobs/x',
        response: { bytes: true },
      });
      expect(server.requests[0].req.headers.authorization).toBe('Bearer trk_x');
      const malformed = await waitForJob(createBuyerClient({ url: server.url }), { jobId: 'job_x' }).catch(
        (e: unknown) => e,
      );
      expect(malformed).toBeInstanceOf(TributaryApiError);
      expect(malformed).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('does not match the API') });
    } finally {
      await server.close();
    }
    const down = await createBuyerClient({ url: 'http://127.0.0.1:1' })
      .request({ method: 'GET', path: '/v1/health', response: { bytes: true } })
      .catch((e: unknown) => e);
    expect(down).toMatchObject({ code: 'INTERNAL', status: 0 });
    expect([...(down as TributaryApiError).chain()].length).toBeGreaterThan(1);
  });

  it('waits out RATE_LIMITED for the Retry-After the coordinator names, then returns the finished job', async () => {
    const job = {
      id: 'job_x',
      name: 'n',
      status: 'completed',
      visibility: 'public',
      currentRound: 1,
      rounds: 1,
      parameters: 4,
      secureAggregation: 'none',
      owner: null,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      modelHash: 'h',
      spec: {},
    };
    const server = await fake((_req, _body, n) =>
      n === 1
        ? [
            429,
            { error: { code: 'RATE_LIMITED', message: 'slow down', details: { retryAfterSeconds: 1 } } },
            { 'retry-after': '1' },
          ]
        : [200, job],
    );
    try {
      const started = Date.now();
      const done = await waitForJob(createBuyerClient({ url: server.url }), { jobId: 'job_x', pollMs: 10 });
      expect(done.status).toBe('completed');
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    } finally {
      await server.close();
    }
  });

  it('createSignedFetch signs what it sends', async () => {
    const server = await fake(() => [200, {}]);
    try {
      await createSignedFetch(identity)(`${server.url}/v1/jobs/job_x/checkpoints/3?x=1`);
      const { req } = server.requests[0];
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      expect(
        verifyHttpSignature(
          { method: 'GET', url: `${server.url}${req.url}`, headers },
          { verifier, windowMs: 60_000, nowMs: Date.now(), hasBody: false },
        ).params.keyid,
      ).toBe(identity.clientId);
    } finally {
      await server.close();
    }
  });
});
