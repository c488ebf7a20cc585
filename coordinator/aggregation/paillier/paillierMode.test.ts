import { JobSpecSchema } from '../../../shared/schemas/jobSpec';
import { MAX_DECRYPT_REQUEST_BYTES } from '../../../shared/schemas/messages';
import { codeOf } from '../../../test/support/codeOf';
import { createPaillierMode, paillierUpdateBytes } from './paillierMode';

describe('paillier mode: what a job may send its key holder', () => {
  // Any odd 2048-bit modulus passes the spec; only its size matters here.
  const n = (2n ** 2047n + 1n).toString(16);
  const spec = (maxClients: number) =>
    JobSpecSchema.parse({
      name: 'bound',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [4], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      maxClients,
      secureAggregation: 'paillier',
      paillier: { publicKey: { n }, keyHolder: 'ab'.repeat(32) },
    });

  it('refuses a spec whose maxClients × update bytes exceeds MAX_DECRYPT_REQUEST_BYTES, naming the largest that fits', () => {
    const mode = createPaillierMode();
    const parameters = 1_000_000;
    // 2048-bit key, 16 bits, maxClients up to 128: 88 values per 512-byte ciphertext.
    expect(paillierUpdateBytes(spec(100), parameters)).toBe(Math.ceil((parameters + 1) / 88) * 512);
    expect(codeOf(() => mode.assertModelFits(spec(100), parameters))).toBeUndefined();
    const fits = Math.floor(MAX_DECRYPT_REQUEST_BYTES / paillierUpdateBytes(spec(200), parameters));
    expect(fits).toBeLessThan(200);
    let message = '';
    try {
      mode.assertModelFits(spec(200), parameters);
    } catch (err) {
      message = (err as Error).message;
      expect((err as { code: string }).code).toBe('JOB_SPEC_INVALID');
    }
    expect(message).toContain(`at most ${fits}`);
    expect(codeOf(() => mode.assertModelFits(spec(fits), parameters))).toBeUndefined();
  });
});
