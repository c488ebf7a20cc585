import { WakeableWait } from './wakeableWait';

describe('WakeableWait', () => {
  it('resolves true at once when the condition already holds', async () => {
    await expect(new WakeableWait().until(() => true, 10_000)).resolves.toBe(true);
  });

  it('resolves true on the wake that makes the condition hold, not before', async () => {
    const wait = new WakeableWait();
    let ready = false;
    let settled = false;
    const p = wait
      .until(() => ready, 10_000)
      .then((v) => {
        settled = true;
        return v;
      });
    wait.wake();
    await Promise.resolve();
    expect(settled).toBe(false);
    ready = true;
    wait.wake();
    await expect(p).resolves.toBe(true);
  });

  it('resolves false at the timeout when the condition never holds', async () => {
    await expect(new WakeableWait().until(() => false, 20)).resolves.toBe(false);
  });

  it('wakes every pending wait', async () => {
    const wait = new WakeableWait();
    let n = 0;
    const a = wait.until(() => n >= 1, 10_000);
    const b = wait.until(() => n >= 2, 10_000);
    n = 2;
    wait.wake();
    await expect(Promise.all([a, b])).resolves.toEqual([true, true]);
  });
});
