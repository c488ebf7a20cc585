import type { TranscriptRecord } from '../store/store';
import type { SignedTranscriptView } from './transcriptSchema';

/** A stored transcript as served: the signed text parsed back into the object it canonicalises. */
export function transcriptView(record: TranscriptRecord): SignedTranscriptView {
  return {
    kind: record.kind,
    round: record.round,
    hash: record.hash,
    signature: record.signature,
    transcript: JSON.parse(record.text) as Record<string, unknown>,
  };
}
