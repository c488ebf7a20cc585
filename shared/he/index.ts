/** The `he` aggregation mode's math (packed BGV or BFV through Microsoft SEAL); see heVector.ts. */
export * from './heVector';
export * from './ciphertextBytes';
export * from './keyBytes';
export * from './keys';
export * from './parameters';
export * from './quantize';
export * from './sealContext';
export * from './submission';
export * from './encryptionWorkers';
