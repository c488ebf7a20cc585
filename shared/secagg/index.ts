/** SecAgg+ (Bonawitz et al. 2017; Bell et al. 2020): pure, transport-free protocol core. See serverProtocol.ts. */
export * from './quantize';
export * from './masks';
export * from './keys';
export * from './shamir';
export * from './neighbours';
export * from './stages';
export * from './messages';
export * from './roundId';
export * from './signatures';
export * from './policy';
export * from './unmaskedRounds';
export {
  SecAggPlusClient,
  type SecAggClientSession,
  type SecAggClientOptions,
  type MaskPath,
  type RevealedShare,
} from './clientProtocol';
export {
  SecAggWorkerPool,
  type MaskSumSource,
  type SignatureBatchVerifier,
  type SignatureCheck,
  type UpdateQuantizer,
  quantizeClippedWeightedWith,
  defaultSecAggWorkerThreads,
  setSecAggWorkerThreads,
  sharedSecAggWorkers,
} from './secaggWorkers';
export {
  SecAggPlusServer,
  type SecAggPlusServerOptions,
  type SecAggDropout,
  type SecAggResult,
  type SecAggStep,
} from './serverProtocol';
