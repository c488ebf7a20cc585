import { ClientDirectory, type ClientLink, type DirectoryEvent } from './clientDirectory';

const link = (clientId: string): ClientLink => ({ clientId, send: () => undefined });

describe('ClientDirectory', () => {
  it('tracks members per job, sorted, and announces joins and leaves', () => {
    const d = new ClientDirectory();
    const events: DirectoryEvent[] = [];
    d.onChange((e) => events.push(e));
    const b = link('b');
    const a = link('a');
    d.connect(b);
    d.connect(a);
    d.join('b', 'j1');
    d.join('a', 'j1');
    d.join('a', 'j2');
    expect(d.members('j1')).toEqual(['a', 'b']);
    expect(d.hasJoined('a', 'j2')).toBe(true);
    d.disconnect('a', a, 'transport close');
    expect(d.members('j1')).toEqual(['b']);
    expect(d.members('j2')).toEqual([]);
    expect(d.connectedCount).toBe(1);
    expect(events.filter((e) => e.type === 'left')).toEqual([
      { type: 'left', jobId: 'j1', clientId: 'a', reason: 'transport close' },
      { type: 'left', jobId: 'j2', clientId: 'a', reason: 'transport close' },
    ]);
  });

  it("lets a reconnect replace the old connection; the old connection's late disconnect changes nothing", () => {
    const d = new ClientDirectory();
    const first = link('a');
    d.connect(first);
    d.join('a', 'j1');
    const second = link('a');
    d.connect(second);
    expect(d.link('a')).toBe(second);
    expect(d.members('j1')).toEqual([]);
    d.join('a', 'j1');
    d.disconnect('a', first, 'ping timeout');
    expect(d.members('j1')).toEqual(['a']);
    expect(d.link('a')).toBe(second);
  });
});
