import { createHash } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import { generateIdentity } from '../../shared/identity/keyPair';
import { signBytes } from '../../shared/identity/signing';
import { signTranscript, transcriptBytes, transcriptHash, verifyTranscriptSignature } from './transcriptSigning';

const key = generateIdentity();
const transcript = () => ({
  type: 'tributary/round-transcript/v1',
  coordinatorKey: key.clientId,
  round: 3,
  metrics: { validation_loss: 0.125, validation_accuracy: 0.9, durationMs: 1e21 },
  participants: ['b', 'a'],
  note: 'ü "quoted"',
});

describe('transcript signing', () => {
  it('hashes and signs the RFC 8785 bytes: key order and formatting of the JSON received do not matter', () => {
    const signed = signTranscript(key, transcript());
    expect(signed.text).toBe(
      '{"coordinatorKey":"' +
        key.clientId +
        '","metrics":{"durationMs":1e+21,"validation_accuracy":0.9,"validation_loss":0.125},"note":"ü \\"quoted\\"","participants":["b","a"],"round":3,"type":"tributary/round-transcript/v1"}',
    );
    expect(signed.hash).toBe(createHash('sha256').update(signed.text, 'utf8').digest('hex'));
    // The same transcript as another party parses it: other key order, whitespace, another realm.
    const reordered = JSON.parse(JSON.stringify({ ...transcript(), type: transcript().type }, null, 2));
    const foreign = runInNewContext(`(${JSON.stringify(reordered)})`);
    for (const received of [reordered, foreign]) {
      expect(transcriptHash(received)).toBe(signed.hash);
      expect(verifyTranscriptSignature(received, key.clientId, signed.signature)).toBe(true);
    }
  });

  it('refuses an altered value, an added or dropped field, another key, and a signature made over other bytes', () => {
    const signed = signTranscript(key, transcript());
    const altered = { ...transcript(), round: 4 };
    const added = { ...transcript(), extra: null };
    const { note: _note, ...dropped } = transcript();
    for (const t of [altered, added, dropped])
      expect(verifyTranscriptSignature(t, key.clientId, signed.signature)).toBe(false);
    expect(verifyTranscriptSignature(transcript(), generateIdentity().clientId, signed.signature)).toBe(false);
    // The same key over the plain JSON.stringify text (not canonical): not a transcript signature.
    const plain = signBytes(key.secretKey, Buffer.from(JSON.stringify(transcript())));
    expect(verifyTranscriptSignature(transcript(), key.clientId, plain)).toBe(false);
    expect(verifyTranscriptSignature(transcript(), key.clientId, 'zz')).toBe(false);
    expect(verifyTranscriptSignature({ n: Number.NaN }, key.clientId, signed.signature)).toBe(false);
  });

  it('signs only transcripts that name the signing key, and never values JSON cannot hold', () => {
    expect(() => signTranscript(key, { ...transcript(), coordinatorKey: generateIdentity().clientId })).toThrow(
      /names key/,
    );
    const nonFinite = { ...transcript(), metrics: { loss: Number.NaN } };
    expect(() => signTranscript(key, nonFinite)).toThrow(TypeError);
    expect(transcriptBytes({ b: 1, a: [1, 'x'] }).toString()).toBe('{"a":[1,"x"],"b":1}');
  });
});
