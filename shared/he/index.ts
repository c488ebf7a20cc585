/** The `he` aggregation mode's math (packed BFV through Microsoft SEAL); see bfvVector.ts. */
export * from './bfvVector';
export * from './ciphertextBytes';
export * from './keyBytes';
export * from './keys';
export * from './parameters';
export * from './quantize';
export * from './sealContext';
export * from './submission';
