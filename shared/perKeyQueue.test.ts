import { PerKeyQueue } from './perKeyQueue';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('PerKeyQueue', () => {
  it('runs one operation at a time per key, in order, other keys alongside, and forgets idle keys', async () => {
    const queue = new PerKeyQueue();
    const log: string[] = [];
    let running = 0;
    let most = 0;
    const op =
      (name: string, fail = false) =>
      async () => {
        running++;
        most = Math.max(most, running);
        log.push(`start ${name}`);
        await tick();
        log.push(`end ${name}`);
        running--;
        if (fail) throw new Error(name);
        return name;
      };
    const a = [queue.run('a', op('a1')), queue.run('a', op('a2', true)), queue.run('a', op('a3'))];
    const b = queue.run('b', op('b1'));
    expect(await a[0]).toBe('a1');
    await expect(a[1]).rejects.toThrow('a2');
    expect(await a[2]).toBe('a3');
    expect(await b).toBe('b1');
    const aOnly = log.filter((l) => l.endsWith('a1') || l.endsWith('a2') || l.endsWith('a3'));
    expect(aOnly).toEqual(['start a1', 'end a1', 'start a2', 'end a2', 'start a3', 'end a3']);
    // b ran while a1 did: two at once across keys, never two of one key.
    expect(log.indexOf('start b1')).toBeLessThan(log.indexOf('end a1'));
    expect(most).toBe(2);
    await tick();
    expect(queue.size).toBe(0);
  });
});
