/**
 * JSON with binary fields: a replacer/reviver pair that writes every Uint8Array (Buffers included)
 * as `{"$b64": "<base64>"}` and reads such objects back as Uint8Array. Used for the SecAgg+ messages,
 * whose keys, nonces, ciphertexts and shares are bytes. Only the exact one-key shape is revived, and
 * only from canonical base64, so a string can never turn into bytes by accident.
 */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** JSON.stringify replacer: Uint8Array → {"$b64": ...}. Reads the holder, since Buffer.toJSON runs first. */
export function binaryReplacer(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown> | undefined)?.[key];
  if (raw instanceof Uint8Array)
    return { $b64: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
  return value;
}

/** JSON.parse reviver: {"$b64": ...} → Uint8Array; anything else unchanged. */
export function binaryReviver(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const b64 = (value as { $b64?: unknown }).$b64;
    if (keys.length === 1 && keys[0] === '$b64' && typeof b64 === 'string' && BASE64.test(b64)) {
      return new Uint8Array(Buffer.from(b64, 'base64'));
    }
  }
  return value;
}

export function encodeBinaryJson(value: unknown): string {
  return JSON.stringify(value, binaryReplacer);
}

/** Parses JSON with binary fields; throws SyntaxError for invalid JSON. */
export function decodeBinaryJson(text: string): unknown {
  return JSON.parse(text, binaryReviver);
}
