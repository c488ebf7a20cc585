import { type TensorManifestEntry, totalParameters } from '../../shared/codec/tensors';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { PrivacyNoise, PrivacyPlan } from '../../shared/schemas/privacySpec';
import type {
  CLIENT_MESSAGES,
  ClientBody,
  ClientMessageName,
  ClientResult,
  MessageRoute,
} from '../../shared/schemas/protocol';
import type { Logger } from '../logger';
import type { JobRecord, RoundFailure } from '../store/store';
import type { AggregatedUpdates, ClientEvaluation, UpdatePart } from '../strategy/strategy';
import type { ClientDirectory, ClientLink } from '../transport/clientDirectory';

/** Messages of one route, as the socket edge hands them on after verifying them. */
export type RoutedMessage<R extends MessageRoute> = {
  [N in ClientMessageName]: (typeof CLIENT_MESSAGES)[N]['route'] extends R
    ? { name: N; body: ClientBody<N>; data: Uint8Array | undefined }
    : never;
}[ClientMessageName];

/** A verified message sent during a round (an upload chunk or commit, a SecAgg+ reply). */
export type RoundMessage = RoutedMessage<'round'>;
/** A verified message of a non-provider role (the paillier key holder). */
export type RoleMessage = RoutedMessage<'role'>;

/** What a part of a round's sum stands for: one client's update, or a secure-aggregation cohort's sum. */
export type PartKind = 'client' | 'cohort';

/**
 * A DP round as its mode sees it (jobs with a `privacy` block, shared/aggregation/privateUpdate.ts):
 * every client counts once, updates are clipped to `clippingNorm`, and the mode reports the count of
 * unclipped updates beside the sum (`Revealed.privacy`).
 */
export interface RoundPrivacyContext {
  plan: PrivacyPlan;
  /** C of this round (the task's config.clippingNorm). */
  clippingNorm: number;
}

/** What a DP round's mode reveals beside the sum (the sum is Σ clipped Δ_i, totalWeight the contributor count). */
export interface RevealedPrivacy {
  /** How many contributors' updates were not clipped: exact for central noise, already noised for distributed. */
  unclippedCount: number;
  /** Whether the sum already carries the DP noise (distributed noise, added by the clients). */
  noised: boolean;
}

/** Everything a mode's collection of one round attempt may use. The runner already sent the round task. */
export interface CollectionContext {
  job: JobRecord;
  round: number;
  attempt: number;
  /** The clients selected for this attempt, each sent its round task. */
  selected: readonly string[];
  /** When training must be done and uploads in (ms since the epoch): the task's deadline. */
  deadline: number;
  chunkBytes: number;
  /** Keep the parts of the sum (per client / per cohort) for robust strategies and contribution scoring. */
  keepParts: boolean;
  directory: ClientDirectory;
  logger: Logger;
  now(): number;
  /** Set for jobs with a `privacy` block: the mode sums clipped updates with weight 1 and counts the unclipped ones. */
  privacy?: RoundPrivacyContext;
}

/**
 * Phase 1 of a collection: who contributed (nothing is revealed yet), or why the attempt failed.
 * `blamed`: clients whose contribution the mode refused as sabotage (e.g. a non-unit Paillier
 * ciphertext), already among `failures`; if the attempt fails they sit out the round's retry.
 */
export type Collected =
  | { participants: string[]; failures: RoundFailure[]; evaluations: ClientEvaluation[]; blamed?: string[] }
  | { failed: string; participants: string[]; failures: RoundFailure[]; blamed?: string[] };

/** The SHA-256 (hex) of what one client signed and submitted for the round (see Revealed.submissions). */
export interface SubmissionDigest {
  clientId: string;
  digest: string;
}

/** Phase 2: the revealed sums, in one unit (AggregatedUpdates), and who they cover. */
export interface Revealed {
  sum: AggregatedUpdates;
  participants: string[];
  failures: RoundFailure[];
  /** The parts the sum is made of, when the mode sees them (see PartKind). */
  parts?: UpdatePart[];
  partKind?: PartKind;
  /**
   * Digests of the clients' signed submissions that went into the sum (an upload's committed hash, a
   * masked input's, a ciphertext vector's), for the round's signed transcript; absent when the mode
   * does not report them (the transcript then says null).
   */
  submissions?: SubmissionDigest[];
  /** Set when the collection had a privacy context. */
  privacy?: RevealedPrivacy;
}

/**
 * One round attempt's collection in one mode. The runner calls `collect()`, checks the contributors
 * against the job's quorum, and only then `reveal()`, so a failed attempt reveals no sum.
 */
export interface RoundCollection {
  /** Resolves once every selected client contributed, dropped, or the deadline passed. Never rejects. */
  collect(): Promise<Collected>;
  /** The sums (unmask, decrypt, or the plaintext sums). Rejects with a coded error. */
  reveal(): Promise<Revealed>;
  /** A verified round message from `clientId`; throws a coded error and changes nothing when refused. */
  receive(clientId: string, message: RoundMessage): void;
  /** A selected client left (disconnected): it is a dropout from now on. */
  dropped(clientId: string, reason: string): void;
  /** Stops waiting (coordinator shutdown); pending phases then settle. */
  stop(): void;
}

/** What a role message of a mode can reach: the job, the sender's connection. */
export interface RoleContext {
  job: JobRecord;
  clientId: string;
  round: number;
  link: ClientLink;
}

/**
 * The coordinator half of an aggregation mode. One instance per coordinator (a mode may hold
 * services such as the paillier key-holder registry); the registry builds them.
 */
export interface CoordinatorAggregationMode {
  readonly name: string;
  /** JOB_SPEC_INVALID when the mode cannot carry a model of `parameters` parameters (checked before weights exist). */
  assertModelFits(spec: JobSpec, parameters: number): void;
  /**
   * What this job's rounds are summed from when the coordinator sees several parts (robust rules need
   * them): each client, or each cohort of at least `membersPerPart` clients; undefined for one sum.
   */
  parts(spec: JobSpec): { kind: PartKind; membersPerPart: number } | undefined;
  /**
   * Where DP noise can be added in this mode (jobs with a `privacy` block: `central` by the coordinator,
   * `distributed` by the clients inside the mode's secure sum). Absent: the mode cannot honour a privacy
   * block, and such jobs are refused at creation.
   */
  readonly privacyNoise?: readonly PrivacyNoise[];
  /** Opens one round attempt's collection. */
  openCollection(context: CollectionContext): RoundCollection;
  /** A message of another role than provider (e.g. the key holder); refuses with a coded error otherwise. */
  handleRoleMessage?(context: RoleContext, message: RoleMessage): Promise<ClientResult<RoleMessage['name']>>;
  /** A connection closed (a role holder may have gone). */
  connectionClosed?(link: ClientLink): void;
  /** Coordinator shutdown: fail whatever waits on remote parties. */
  close?(): void;
}

/** What the registry hands a mode factory. */
export interface ModeEnvironment {
  directory: ClientDirectory;
  logger: Logger;
  now(): number;
}

/** The number of values a mode's vector carries for a model: its parameters plus the weight. */
export function vectorLengthOf(manifest: readonly TensorManifestEntry[]): number {
  return totalParameters(manifest) + 1;
}
