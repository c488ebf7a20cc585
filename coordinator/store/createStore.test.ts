import { createStore } from './createStore';
import { MemoryStore } from './memoryStore';

describe('createStore', () => {
  it('opens a MemoryStore when no MongoDB URI is configured', async () => {
    const store = await createStore({});
    expect(store).toBeInstanceOf(MemoryStore);
    expect(store.kind).toBe('memory');
    await store.close();
  });

  it('treats an empty MongoDB URI as "not configured"', async () => {
    const store = await createStore({ mongodbUri: '' });
    expect(store.kind).toBe('memory');
    await store.close();
  });

  it('selects MongoStore for a URI, and fails with STORE_UNAVAILABLE when nothing answers there', async () => {
    // Port 1 on loopback: nothing listens, so the connection is refused at once.
    const attempt = createStore({ mongodbUri: 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500' });
    await expect(attempt).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});
