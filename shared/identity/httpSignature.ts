import { createHash, randomBytes, sign as cryptoSign } from 'node:crypto';
import { TributaryError } from '../errors';
import type { Identity } from './keyPair';
import { ed25519PrivateKey, type SignatureVerifier } from './signing';

/*
 * HTTP Message Signatures (RFC 9421) with Ed25519 (§3.3.6), and Content-Digest (RFC 9530), for the
 * REST API. Both halves live here (protocol math once): the client signs with `signHttpRequest`, the
 * coordinator rebuilds the same signature base with `verifyHttpSignature` and then checks the body
 * against the covered Content-Digest once it has read it.
 *
 * What a Tributary signature covers (§2.2 derived components, §2.1 fields): `@method`, `@authority`,
 * `@path`, `@query` and, when there is a body, `content-digest`; its parameters (§2.3) are `created`,
 * `keyid` (the Ed25519 public key as 64 hex digits, i.e. the client id), `nonce` (128 random bits),
 * `alg="ed25519"` and `tag` (our application tag, so the signature means nothing in another protocol).
 * The verifier bounds `created` to a window around its clock and remembers nonces (replayGuard.ts).
 * Only the subset of RFC 8941 structured fields these headers need is parsed, strictly.
 */

/** The `tag` parameter of every Tributary request signature. */
export const HTTP_SIGNATURE_TAG = 'tributary/rest/v1';
/** The dictionary label of the signature in Signature-Input and Signature. */
export const HTTP_SIGNATURE_LABEL = 'tributary';
/** Components every signed request must cover; `content-digest` too when there is a body. */
export const REQUIRED_COMPONENTS = ['@method', '@path', '@query'] as const;
/** Components a verifier accepts in a signature (anything else is refused rather than ignored). */
export const ACCEPTED_COMPONENTS = new Set([
  '@method',
  '@authority',
  '@path',
  '@query',
  'content-digest',
  'content-type',
  'content-length',
]);
/** Longest Signature-Input / Signature header accepted, in characters. */
const MAX_HEADER_CHARS = 2048;

/** Signature parameters (RFC 9421 §2.3) in the order they are serialised. */
export interface HttpSignatureParams {
  created: number;
  keyid: string;
  nonce: string;
  alg?: string;
  tag?: string;
  expires?: number;
}

/** What the signature base is computed from: method, absolute URL and the request's header fields. */
export interface HttpRequestParts {
  method: string;
  url: string | URL;
  /** Header fields by lowercase name. */
  headers: Readonly<Record<string, string | undefined>>;
}

/** A parsed Signature-Input + Signature pair. */
export interface ParsedHttpSignature {
  label: string;
  components: string[];
  params: HttpSignatureParams;
  signature: Buffer;
}

/** `sha-256=:<base64>:` of the body bytes (RFC 9530 §2, Content-Digest). */
export function contentDigest(body: Uint8Array | string): string {
  return `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
}

/** The SHA-256 digest a Content-Digest header declares, or null when it declares none (other algorithms are ignored). */
export function declaredSha256(header: string | undefined): Buffer | null {
  if (!header || header.length > MAX_HEADER_CHARS) return null;
  for (const member of header.split(',')) {
    const m = /^\s*sha-256=:([A-Za-z0-9+/]+={0,2}):\s*$/.exec(member);
    if (m) {
      const digest = Buffer.from(m[1], 'base64');
      return digest.length === 32 ? digest : null;
    }
  }
  return null;
}

/** The value of one covered component (RFC 9421 §2.1 fields, §2.2 derived components). */
export function componentValue(id: string, request: HttpRequestParts): string {
  const url = typeof request.url === 'string' ? new URL(request.url) : request.url;
  switch (id) {
    case '@method':
      return request.method.toUpperCase();
    case '@authority':
      // §2.2.3: the host, lowercased, with the port only when it is not the scheme's default.
      return url.host.toLowerCase();
    case '@path':
      return url.pathname || '/';
    case '@query':
      // §2.2.7: "?" followed by the query, or "?" alone when there is none.
      return url.search === '' ? '?' : url.search;
    default: {
      if (id.startsWith('@')) throw new TributaryError('AUTH_BAD_SIGNATURE', `Unsupported derived component ${id}.`);
      const value = request.headers[id];
      if (value === undefined) {
        throw new TributaryError('AUTH_BAD_SIGNATURE', `The signature covers the header "${id}", which is absent.`);
      }
      // §2.1: leading and trailing whitespace removed.
      return value.trim();
    }
  }
}

/** The @signature-params value: the inner list of components and the parameters (RFC 9421 §2.3). */
export function serializeSignatureParams(components: readonly string[], params: HttpSignatureParams): string {
  let out = `(${components.map((c) => `"${c}"`).join(' ')})`;
  out += `;created=${params.created}`;
  if (params.expires !== undefined) out += `;expires=${params.expires}`;
  out += `;keyid="${params.keyid}"`;
  out += `;nonce="${params.nonce}"`;
  if (params.alg !== undefined) out += `;alg="${params.alg}"`;
  if (params.tag !== undefined) out += `;tag="${params.tag}"`;
  return out;
}

/** The signature base (RFC 9421 §2.5): one `"<component>": <value>` line per component, then @signature-params. */
export function signatureBase(
  components: readonly string[],
  params: HttpSignatureParams,
  request: HttpRequestParts,
  serializedParams = serializeSignatureParams(components, params),
): string {
  const lines = components.map((id) => `"${id}": ${componentValue(id, request)}`);
  lines.push(`"@signature-params": ${serializedParams}`);
  return lines.join('\n');
}

/**
 * Signs bytes with an Ed25519 identity using node:crypto, the key imported once per key array
 * (signing.ts's ed25519PrivateKey: an import costs ~0.5 ms, about as much as the signature).
 */
export function ed25519Sign(identity: Identity, bytes: Uint8Array): Buffer {
  return cryptoSign(null, bytes, ed25519PrivateKey(identity.secretKey));
}

/** Options of signHttpRequest. */
export interface SignHttpRequestOptions {
  /** Unix time in seconds. @default now */
  created?: number;
  /** @default 128 random bits, hex */
  nonce?: string;
}

/**
 * The headers that sign a request as `identity`: Signature-Input, Signature, and Content-Digest when
 * there is a body. Sign the exact body bytes that will be sent and the URL that will be requested.
 * @example
 * const body = JSON.stringify(spec);
 * const headers = signHttpRequest(identity, { method: 'POST', url: `${base}/v1/jobs`, body });
 * await fetch(`${base}/v1/jobs`, { method: 'POST', body, headers: { ...headers, 'content-type': 'application/json' } });
 */
export function signHttpRequest(
  identity: Identity,
  request: { method: string; url: string | URL; body?: Uint8Array | string },
  options: SignHttpRequestOptions = {},
): Record<string, string> {
  const headers: Record<string, string> = {};
  const components: string[] = ['@method', '@authority', '@path', '@query'];
  if (request.body !== undefined && request.body.length > 0) {
    headers['content-digest'] = contentDigest(request.body);
    components.push('content-digest');
  }
  const params: HttpSignatureParams = {
    created: options.created ?? Math.floor(Date.now() / 1000),
    keyid: identity.clientId,
    nonce: options.nonce ?? randomBytes(16).toString('hex'),
    alg: 'ed25519',
    tag: HTTP_SIGNATURE_TAG,
  };
  const serialized = serializeSignatureParams(components, params);
  const base = signatureBase(components, params, { method: request.method, url: request.url, headers }, serialized);
  headers['signature-input'] = `${HTTP_SIGNATURE_LABEL}=${serialized}`;
  headers.signature = `${HTTP_SIGNATURE_LABEL}=:${ed25519Sign(identity, Buffer.from(base, 'utf8')).toString('base64')}:`;
  return headers;
}

function bad(message: string): TributaryError {
  return new TributaryError('AUTH_BAD_SIGNATURE', `HTTP signature: ${message}`);
}

/** Parses Signature-Input and Signature (one label, as this API signs); throws AUTH_BAD_SIGNATURE. */
export function parseHttpSignature(signatureInput: string, signature: string): ParsedHttpSignature {
  if (signatureInput.length > MAX_HEADER_CHARS || signature.length > MAX_HEADER_CHARS) {
    throw bad(`headers longer than ${MAX_HEADER_CHARS} characters.`);
  }
  // label=("c1" "c2" ...);k=v;k="v"  (RFC 8941 §3.2 dictionary with one inner-list member)
  const input =
    /^([a-z*][a-z0-9_\-.*]*)=\(((?:"[^"\\]*"(?: "[^"\\]*")*)?)\)((?:;[a-z*][a-z0-9_\-.*]*=(?:"[^"\\]*"|-?[0-9]{1,15}))*)$/.exec(
      signatureInput.trim(),
    );
  if (!input) throw bad('Signature-Input is not `label=("component" ...);param=value...`.');
  const [, label, list, rawParams] = input;
  const sig = /^([a-z*][a-z0-9_\-.*]*)=:([A-Za-z0-9+/]+={0,2}):$/.exec(signature.trim());
  if (!sig) throw bad('Signature is not `label=:base64:`.');
  if (sig[1] !== label) throw bad(`Signature has label "${sig[1]}", Signature-Input "${label}".`);
  const components = list === '' ? [] : list.split(' ').map((c) => c.slice(1, -1));
  if (new Set(components).size !== components.length) throw bad('a component is covered twice.');
  const params: Record<string, string | number> = {};
  for (const m of rawParams.matchAll(/;([a-z*][a-z0-9_\-.*]*)=("[^"\\]*"|-?[0-9]{1,15})/g)) {
    if (m[1] in params) throw bad(`parameter ${m[1]} given twice.`);
    params[m[1]] = m[2].startsWith('"') ? m[2].slice(1, -1) : Number(m[2]);
  }
  const { created, keyid, nonce, alg, tag, expires } = params;
  if (typeof created !== 'number') throw bad('the `created` parameter (an integer) is missing.');
  if (typeof keyid !== 'string') throw bad('the `keyid` parameter (a string) is missing.');
  if (typeof nonce !== 'string') throw bad('the `nonce` parameter (a string) is missing.');
  if (alg !== undefined && typeof alg !== 'string') throw bad('`alg` must be a string.');
  if (tag !== undefined && typeof tag !== 'string') throw bad('`tag` must be a string.');
  if (expires !== undefined && typeof expires !== 'number') throw bad('`expires` must be an integer.');
  const bytes = Buffer.from(sig[2], 'base64');
  if (bytes.length !== 64) throw bad(`an Ed25519 signature has 64 bytes; this one has ${bytes.length}.`);
  return {
    label,
    components,
    params: {
      created,
      keyid,
      nonce,
      ...(alg !== undefined ? { alg } : {}),
      ...(tag !== undefined ? { tag } : {}),
      ...(expires !== undefined ? { expires } : {}),
    },
    signature: bytes,
  };
}

/** Options of verifyHttpSignature. */
export interface VerifyHttpSignatureOptions {
  verifier: SignatureVerifier;
  /** How far `created` may be from `nowMs`, in ms. */
  windowMs: number;
  /** The verifier's clock, ms. */
  nowMs: number;
  /** Whether the request has a body (then `content-digest` must be covered). */
  hasBody: boolean;
}

/**
 * Verifies a request's RFC 9421 signature (not its nonce, and not the body against its digest: the
 * caller does both). Returns the parsed signature; throws AUTH_BAD_SIGNATURE or AUTH_STALE.
 */
export function verifyHttpSignature(
  request: HttpRequestParts,
  options: VerifyHttpSignatureOptions,
): ParsedHttpSignature {
  const input = request.headers['signature-input'];
  const signature = request.headers.signature;
  if (input === undefined || signature === undefined) throw bad('both Signature-Input and Signature are needed.');
  const parsed = parseHttpSignature(input, signature);
  const { components, params } = parsed;
  for (const c of components) if (!ACCEPTED_COMPONENTS.has(c)) throw bad(`component "${c}" is not accepted here.`);
  const required: string[] = [...REQUIRED_COMPONENTS, ...(options.hasBody ? ['content-digest'] : [])];
  const missing = required.filter((c) => !components.includes(c));
  if (missing.length > 0) throw bad(`the signature must cover ${missing.map((c) => `"${c}"`).join(', ')}.`);
  if (params.alg !== undefined && params.alg !== 'ed25519') throw bad(`alg "${params.alg}" is not "ed25519".`);
  if (params.tag !== HTTP_SIGNATURE_TAG) throw bad(`tag must be "${HTTP_SIGNATURE_TAG}".`);
  if (!/^[0-9a-f]{64}$/.test(params.keyid))
    throw bad('keyid must be the Ed25519 public key as 64 lowercase hex digits.');
  if (!/^[0-9A-Za-z_-]{16,128}$/.test(params.nonce)) throw bad('nonce must be 16 to 128 characters of [0-9A-Za-z_-].');
  const skewMs = Math.abs(options.nowMs - params.created * 1000);
  if (skewMs > options.windowMs) {
    throw new TributaryError(
      'AUTH_STALE',
      `HTTP signature: created is ${Math.round(skewMs / 1000)} s from the coordinator's clock; at most ${Math.round(options.windowMs / 1000)} s is accepted. Sign again (and check the clock).`,
    );
  }
  if (params.expires !== undefined && params.expires * 1000 < options.nowMs) {
    throw new TributaryError('AUTH_STALE', 'HTTP signature: expired (its `expires` has passed).');
  }
  const base = signatureBase(components, params, request, input.trim().slice(parsed.label.length + 1));
  if (!options.verifier.verifyBytes(params.keyid, Buffer.from(base, 'utf8'), parsed.signature.toString('hex'))) {
    throw new TributaryError(
      'AUTH_BAD_SIGNATURE',
      'HTTP signature: does not verify under keyid (the request was altered, or signed for another URL, method or body).',
    );
  }
  return parsed;
}
