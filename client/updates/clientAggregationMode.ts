import type { NamedTensor } from '../../shared/codec/tensors';
import type { ErrorCode } from '../../shared/errors';
import type { Identity } from '../../shared/identity/keyPair';
import type { JoinResult, RoundTask } from '../../shared/schemas/messages';
import type { CoordinatorConnection } from '../coordinatorConnection';

/** A trained local update, as each mode's client half receives it. */
export interface TrainedUpdate {
  task: RoundTask;
  /** The delta (local minus global weights) per tensor. */
  tensors: NamedTensor[];
  /** The same delta flattened in the job's weight-manifest order. */
  delta: Float32Array;
  numExamples: number;
  metrics: { loss: number; accuracy: number };
}

/** A mode-specific protocol step the client is about to answer (e.g. a SecAgg+ stage). */
export interface ModeStep {
  round: number;
  attempt: number;
  stage: string;
}

/** A mode step this client refused or could not answer (e.g. a SecAgg+ stage it aborted at), with the error's code. */
export interface ModeStepFailure extends ModeStep {
  code: ErrorCode;
  message: string;
}

/** What a client half may use for one joined job. */
export interface ClientModeContext {
  joined: JoinResult;
  connection: CoordinatorConnection;
  identity: Identity;
  /** Worker threads for encryption (paillier). */
  threads: number;
  warn(message: string): void;
  /** Called before the half answers a mode step (observability, tests). */
  step(step: ModeStep): void;
  /** Called when the half refuses or fails a mode step: the coded error it stopped with. */
  stepFailed(failure: ModeStepFailure): void;
}

/** The client half of a mode for one joined job (rebuilt after a rejoin). */
export interface ClientModeSession {
  /**
   * A round task arrived; `training` resolves with the trained update, or null when this client did
   * not train (deadline passed). Uploads modes send it; protocol modes keep it for their stages.
   */
  onTask(task: RoundTask, training: Promise<TrainedUpdate | null>): Promise<void>;
  /** The job was left (reconnect, shutdown): stop listening. */
  close(): void;
}

/**
 * The client half of an aggregation mode: how a trained delta leaves the client (an upload, masked
 * vector stages, ciphertexts). The registry (client/updates/registry.ts) maps mode names to these.
 */
export interface ClientAggregationMode {
  readonly name: string;
  /**
   * True when the coordinator reads each client's update in the clear (`none`): the client joins such
   * a job only when its provider allowed plaintext (TributaryClientOptions.allowPlaintext), so a
   * coordinator cannot downgrade a provider to plaintext by serving another spec at join.
   */
  readonly revealsUpdates?: boolean;
  open(context: ClientModeContext): ClientModeSession;
}
