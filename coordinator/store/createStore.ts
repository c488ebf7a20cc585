import { MemoryStore } from './memoryStore';
import { MongoStore } from './mongoStore';
import type { Store } from './store';

/** Which store to open; the coordinator fills this from its configuration. */
export interface StoreConfig {
  /** A MongoDB URI selects MongoStore; without one the embedded MemoryStore is used. */
  mongodbUri?: string;
  /** Database name for MongoStore. @default the database named in the URI */
  dbName?: string;
}

/** Opens MongoStore when `mongodbUri` is set, else a MemoryStore. */
export async function createStore(config: StoreConfig): Promise<Store> {
  if (config.mongodbUri) return MongoStore.connect(config.mongodbUri, { dbName: config.dbName });
  return new MemoryStore();
}
