/**
 * `tributary/coordinator`: run a coordinator in process and plug in its parts: the store (MemoryStore,
 * MongoStore or your own Store), strategies, a shared rate-limit store, the metrics registry.
 *
 * @example
 * import { startCoordinator } from 'tributary/coordinator';
 * const coordinator = await startCoordinator({ port: 8080, mongodbUri: process.env.MONGODB_URI });
 * // ... coordinator.metrics, coordinator.audit, coordinator.rest.document
 * await coordinator.close();
 */
export { startCoordinator, type Coordinator, type StartOptions } from './server';
export { parseCoordinatorConfig, CONFIG_ENV, type CoordinatorConfig, type CoordinatorConfigInput } from './config';
export { createStore, type StoreConfig } from './store/createStore';
export { MemoryStore } from './store/memoryStore';
export { MongoStore, type MongoStoreOptions } from './store/mongoStore';
export type * from './store/store';
export { createStrategy } from './strategy/createStrategy';
export type { Strategy } from './strategy/strategy';
export { Metrics, type RoundPhase } from './observability/metrics';
export { AuditLog, canonicalJson, sha256Hex, type AuditAction } from './observability/auditLog';
export type { RateLimitStore } from './http/rateLimits';
export { createLogger, type Logger } from './logger';
