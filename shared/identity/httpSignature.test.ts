import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { codeOf } from '../../test/support/codeOf';
import { generateIdentity } from './keyPair';
import {
  contentDigest,
  declaredSha256,
  HTTP_SIGNATURE_TAG,
  parseHttpSignature,
  signatureBase,
  signHttpRequest,
  verifyHttpSignature,
} from './httpSignature';
import { ReplayGuard } from './replayGuard';
import { SignatureVerifier } from './signing';

describe('RFC 9421 signature base', () => {
  // RFC 9421 Appendix B.2.6 (Signing a Request Using ed25519) with the key of Appendix B.1.4.
  const privateKey = createPrivateKey(
    '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n',
  );
  const request = {
    method: 'POST',
    url: 'https://example.com/foo?param=Value&Pet=dog',
    headers: {
      date: 'Tue, 20 Apr 2021 02:07:55 GMT',
      'content-type': 'application/json',
      'content-length': '18',
    },
  };

  it('reproduces the RFC test vector byte for byte', () => {
    const components = ['date', '@method', '@path', '@authority', 'content-type', 'content-length'];
    const base = signatureBase(
      components,
      { created: 1618884473, keyid: 'test-key-ed25519', nonce: '' },
      request,
      '("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
    );
    expect(base).toBe(
      '"date": Tue, 20 Apr 2021 02:07:55 GMT\n"@method": POST\n"@path": /foo\n"@authority": example.com\n"content-type": application/json\n"content-length": 18\n"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
    );
    expect(sign(null, Buffer.from(base), privateKey).toString('base64')).toBe(
      'wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==',
    );
    expect(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).length).toBe(44);
  });

  it('derives @query as "?" plus the query, or "?" alone (RFC 9421 §2.2.7)', () => {
    const base = (url: string) =>
      signatureBase(['@query'], { created: 1, keyid: 'k', nonce: 'n' }, { method: 'GET', url, headers: {} });
    expect(base('https://example.com/path?param=value&foo=bar&baz=bat%2Dman').split('\n')[0]).toBe(
      '"@query": ?param=value&foo=bar&baz=bat%2Dman',
    );
    expect(base('https://example.com/path').split('\n')[0]).toBe('"@query": ?');
  });
});

describe('signed REST requests', () => {
  const verifier = new SignatureVerifier();
  const alice = generateIdentity();
  const url = 'http://127.0.0.1:8080/v1/jobs?status=running';
  const body = '{"name":"job"}';
  const nowMs = 1_800_000_000_000;
  const signed = (over: Partial<{ method: string; url: string; body: string }> = {}) =>
    signHttpRequest(alice, { method: 'POST', url, body, ...over }, { created: nowMs / 1000 });
  const verify = (headers: Record<string, string>, over: Partial<{ method: string; url: string }> = {}) =>
    verifyHttpSignature(
      { method: over.method ?? 'POST', url: over.url ?? url, headers },
      { verifier, windowMs: 60_000, nowMs, hasBody: true },
    );

  it('verifies under the signer key and covers method, authority, path, query and body digest', () => {
    const headers = signed();
    const parsed = verify(headers);
    expect(parsed.params.keyid).toBe(alice.clientId);
    expect(parsed.components).toEqual(['@method', '@authority', '@path', '@query', 'content-digest']);
    expect(parsed.params.tag).toBe(HTTP_SIGNATURE_TAG);
    expect(declaredSha256(headers['content-digest'])).toEqual(declaredSha256(contentDigest(body)));
  });

  it.each([
    ['method', { method: 'PUT' }],
    ['path', { url: 'http://127.0.0.1:8080/v1/jobs/other?status=running' }],
    ['query', { url: 'http://127.0.0.1:8080/v1/jobs?status=failed' }],
    ['authority', { url: 'http://127.0.0.1:9090/v1/jobs?status=running' }],
  ])('a request with another %s does not verify', (_what, change) => {
    expect(codeOf(() => verify(signed(), change))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('refuses a changed digest, another key, stale or future times, and missing coverage', () => {
    const headers = signed();
    expect(codeOf(() => verify({ ...headers, 'content-digest': contentDigest('{"name":"evil"}') }))).toBe(
      'AUTH_BAD_SIGNATURE',
    );
    const mallory = generateIdentity();
    const forged = signHttpRequest(mallory, { method: 'POST', url, body }, { created: nowMs / 1000 });
    // Mallory's signature presented under Alice's keyid.
    const swapped = {
      ...forged,
      'signature-input': forged['signature-input'].replace(mallory.clientId, alice.clientId),
    };
    expect(codeOf(() => verify(swapped))).toBe('AUTH_BAD_SIGNATURE');
    const stale = signHttpRequest(alice, { method: 'POST', url, body }, { created: nowMs / 1000 - 61 });
    expect(codeOf(() => verify(stale))).toBe('AUTH_STALE');
    const future = signHttpRequest(alice, { method: 'POST', url, body }, { created: nowMs / 1000 + 61 });
    expect(codeOf(() => verify(future))).toBe('AUTH_STALE');
    // Signed without a body, then sent with one: content-digest is not covered.
    const noBody = signHttpRequest(alice, { method: 'POST', url }, { created: nowMs / 1000 });
    expect(codeOf(() => verify(noBody))).toBe('AUTH_BAD_SIGNATURE');
    expect(codeOf(() => verify({ signature: headers.signature }))).toBe('AUTH_BAD_SIGNATURE');
  });

  it('parses strictly: malformed dictionaries, labels, lengths and parameters are refused', () => {
    const sig = `tributary=:${Buffer.alloc(64).toString('base64')}:`;
    const cases = [
      'tributary=("@method" "@path")',
      'tributary=("@method");created=1;keyid="k";nonce="n";created=2',
      'tributary=(@method);created=1;keyid="k";nonce="n"',
      'tributary=("@method" "@method");created=1;keyid="k";nonce="n"',
      `tributary=("${'x'.repeat(3000)}");created=1;keyid="k";nonce="n"`,
    ];
    for (const input of cases) expect(codeOf(() => parseHttpSignature(input, sig))).toBe('AUTH_BAD_SIGNATURE');
    const ok = 'tributary=("@method");created=1;keyid="k";nonce="n"';
    expect(parseHttpSignature(ok, sig).params).toEqual({ created: 1, keyid: 'k', nonce: 'n' });
    expect(codeOf(() => parseHttpSignature(ok, `other=${sig.slice('tributary='.length)}`))).toBe('AUTH_BAD_SIGNATURE');
    expect(codeOf(() => parseHttpSignature(ok, `tributary=:${Buffer.alloc(32).toString('base64')}:`))).toBe(
      'AUTH_BAD_SIGNATURE',
    );
  });

  it('reads only well-formed SHA-256 digests', () => {
    expect(declaredSha256(contentDigest('x'))?.length).toBe(32);
    expect(declaredSha256(`sha-512=:${Buffer.alloc(64).toString('base64')}:, ${contentDigest('x')}`)).toEqual(
      declaredSha256(contentDigest('x')),
    );
    expect(declaredSha256('sha-256=:AAAA:')).toBeNull();
    expect(declaredSha256(undefined)).toBeNull();
  });
});

describe('replay guard', () => {
  it('refuses a nonce twice per key within the window and forgets it after', () => {
    let now = 0;
    const guard = new ReplayGuard({ windowMs: 1000, now: () => now });
    guard.check('a', 'n1');
    expect(codeOf(() => guard.check('a', 'n1'))).toBe('AUTH_REPLAY');
    guard.check('b', 'n1');
    now = 1999;
    expect(codeOf(() => guard.check('a', 'n1'))).toBe('AUTH_REPLAY');
    now = 2000;
    // By now a signature made when n1 was first seen is stale, so the nonce may be forgotten.
    guard.check('a', 'n1');
    expect(guard.size).toBe(1);
  });

  it('bounds memory per key and in total by refusing, never by forgetting live nonces', () => {
    let now = 0;
    const guard = new ReplayGuard({ windowMs: 1000, maxPerKey: 3, maxTotal: 5, now: () => now });
    for (const n of ['1', '2', '3']) guard.check('a', n);
    expect(codeOf(() => guard.check('a', '4'))).toBe('RATE_LIMITED');
    guard.check('b', '1');
    guard.check('c', '1');
    expect(guard.size).toBe(5);
    expect(codeOf(() => guard.check('d', '1'))).toBe('RATE_LIMITED');
    // Still refused as replays: nothing was evicted.
    expect(codeOf(() => guard.check('a', '1'))).toBe('AUTH_REPLAY');
    now = 2000;
    guard.check('d', '1');
    expect(guard.size).toBe(1);
  });

  it('stays bounded under a flood of throwaway keys', () => {
    let now = 0;
    const guard = new ReplayGuard({ windowMs: 1000, maxTotal: 10_000, now: () => now });
    let refused = 0;
    for (let i = 0; i < 50_000; i++) {
      now = i / 10; // 50,000 requests over 5 s
      try {
        guard.check(`key${i}`, 'n');
      } catch {
        refused++;
      }
    }
    expect(guard.size).toBeLessThanOrEqual(10_000);
    expect(refused).toBeGreaterThan(0);
  });
});
