import { MemoryStore } from './memoryStore';
import { runStoreContract } from './store.contract';

runStoreContract('MemoryStore', async () => new MemoryStore());

describe('MemoryStore', () => {
  it('reports kind "memory"', () => {
    expect(new MemoryStore().kind).toBe('memory');
  });
});
