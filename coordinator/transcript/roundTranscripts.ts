import type { Identity } from '../../shared/identity/keyPair';
import type { ScoredRound } from '../contribution/contributionScorer';
import type { RoundSealer, RoundSealInput } from '../ports';
import type { Store, TranscriptRecord } from '../store/store';
import { buildRoundTranscript, buildScoringTranscript } from './roundTranscript';
import { signTranscript } from './transcriptSigning';

/**
 * The coordinator's transcript book: builds each committed round's transcript, signs it with the
 * coordinator's Ed25519 transcript key and stores it before the round record (whose `transcriptHash`
 * the chain worker commits), then signs each round's scoring transcript once contribution scoring
 * has run. Registered at composition (server.ts): the round runner sees only the RoundSealer port and
 * the scorer only its `onScored` hook.
 */
export class RoundTranscripts implements RoundSealer {
  constructor(
    private readonly store: Store,
    private readonly identity: Identity,
  ) {}

  /** The Ed25519 public key (hex) every transcript names and is signed by. */
  get publicKey(): string {
    return this.identity.clientId;
  }

  /** Builds, signs and stores a committed round's transcript; returns its SHA-256 (hex). */
  async sealRound(input: RoundSealInput): Promise<string> {
    const jobId = input.job.id;
    const [rounds, participants, validationSet] = await Promise.all([
      this.store.listRounds(jobId),
      this.store.listParticipants(jobId),
      this.store.loadValidationSet(jobId),
    ]);
    const transcript = buildRoundTranscript(input, {
      coordinatorKey: this.publicKey,
      rounds,
      participants,
      validationSet,
    });
    const signed = signTranscript(this.identity, transcript);
    await this.save(jobId, input.record.round, 'round', signed, input.fence);
    return signed.hash;
  }

  /** Signs and stores a scored round's scoring transcript; returns its hash, or null for a round without a round transcript. */
  async sealScoring(scored: ScoredRound): Promise<string | null> {
    const transcript = buildScoringTranscript(scored, this.publicKey);
    if (!transcript) return null;
    const signed = signTranscript(this.identity, transcript);
    await this.save(scored.job.id, scored.round.round, 'scoring', signed);
    return signed.hash;
  }

  private save(
    jobId: string,
    round: number,
    kind: TranscriptRecord['kind'],
    signed: ReturnType<typeof signTranscript>,
    fence?: number,
  ): Promise<void> {
    return this.store.saveTranscript({
      jobId,
      round,
      kind,
      ...signed,
      ...(fence !== undefined ? { fence } : {}),
      createdAt: new Date(),
    });
  }
}
