import { TributaryError } from '../../shared/errors';
import type { ClientAggregationMode } from './clientAggregationMode';
import { heClientMode } from './he';
import { noneClientMode } from './none';
import { paillierClientMode } from './paillier';
import { secaggClientMode } from './secagg';

/**
 * The client halves of the aggregation modes, by the name a job spec gives in `secureAggregation`.
 * With the coordinator's registry (coordinator/aggregation/registry.ts) the only places that list modes.
 */
const modes = new Map<string, ClientAggregationMode>(
  [noneClientMode, secaggClientMode, paillierClientMode, heClientMode].map((m) => [m.name, m]),
);

/** Adds a mode's client half at run time (research, tests); returns a function that removes it. */
export function registerClientMode(mode: ClientAggregationMode): () => void {
  if (modes.has(mode.name)) throw new Error(`aggregation mode "${mode.name}" is already registered`);
  modes.set(mode.name, mode);
  return () => void modes.delete(mode.name);
}

/** The client half of the mode a job uses (the one lookup). */
export function clientModeFor(name: string): ClientAggregationMode {
  const mode = modes.get(name);
  if (!mode) throw new TributaryError('JOB_SPEC_INVALID', `This client does not support aggregation mode "${name}".`);
  return mode;
}
