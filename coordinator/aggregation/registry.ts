import { TributaryError } from '../../shared/errors';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { CoordinatorAggregationMode, ModeEnvironment } from './aggregationMode';
import { createHeMode } from './he/heMode';
import { createNoneMode } from './none/noneMode';
import { createPaillierMode } from './paillier/paillierMode';
import { createSecAggMode } from './secagg/secaggMode';

/** Builds one mode's coordinator half for one coordinator. */
export type CoordinatorModeFactory = (environment: ModeEnvironment) => CoordinatorAggregationMode;

/**
 * The coordinator's aggregation modes, by the name a job spec gives in `secureAggregation`. This and
 * the client's registry (client/updates/registry.ts) are the only places that list modes; adding one
 * means a folder per half and a line here (or `registerCoordinatorMode` for research and tests).
 */
const factories = new Map<string, CoordinatorModeFactory>([
  ['none', createNoneMode],
  ['secagg', createSecAggMode],
  ['paillier', createPaillierMode],
  ['he', createHeMode],
]);

/** Adds a mode at run time (its spec part: registerAggregationSpec). Throws for a name already taken. */
export function registerCoordinatorMode(name: string, factory: CoordinatorModeFactory): () => void {
  if (factories.has(name)) throw new Error(`aggregation mode "${name}" is already registered`);
  factories.set(name, factory);
  return () => void factories.delete(name);
}

/** Factories that replace registered ones, by mode name, for one coordinator only (StartOptions.modes). */
export type CoordinatorModeOverrides = Readonly<Record<string, CoordinatorModeFactory>>;

/** One coordinator's instances of every registered mode. */
export class CoordinatorModes {
  private readonly modes = new Map<string, CoordinatorAggregationMode>();

  /** `overrides` take precedence over the registered factories of the same name (tests; production passes none). */
  constructor(
    private readonly environment: ModeEnvironment,
    private readonly overrides: CoordinatorModeOverrides = {},
  ) {}

  /** The mode a job spec names (the one lookup; JOB_SPEC_INVALID when no mode has that name). */
  of(spec: Pick<JobSpec, 'secureAggregation'>): CoordinatorAggregationMode {
    const name = spec.secureAggregation;
    let mode = this.modes.get(name);
    if (!mode) {
      const factory = Object.hasOwn(this.overrides, name) ? this.overrides[name] : factories.get(name);
      if (!factory) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `No aggregation mode "${name}" is registered on this coordinator.`,
        );
      }
      mode = factory(this.environment);
      this.modes.set(name, mode);
    }
    return mode;
  }

  /** Every mode instantiated so far (connection closes and shutdown reach each). */
  all(): CoordinatorAggregationMode[] {
    return [...this.modes.values()];
  }
}
