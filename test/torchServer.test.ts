import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TorchServer } from '../bench/torchServer';

/**
 * The bench's PyTorch client against a stand-in server that speaks bench/torchTraining.py's --serve
 * protocol (a Node script, so no torch is needed): it burns a known amount of CPU per epoch and
 * reports it, so the OS count read from /proc by the client can be checked against it.
 */
const FAKE_SERVER = `
const [, , flag, file, count, batch, lr] = process.argv;
if (flag !== '--serve') process.exit(2);
console.log(JSON.stringify({ ready: true, torch: 'fake', threads: 1, interopThreads: 1, parameters: { m: 3 }, args: [file, count, batch, lr] }));
let buffered = '';
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\\n')) >= 0) {
    const words = buffered.slice(0, nl).split(' ');
    buffered = buffered.slice(nl + 1);
    if (words[0] === 'quit') process.exit(0);
    if (words[1] === 'die') process.exit(3);
    if (words[1] !== 'm') { console.log(JSON.stringify({ error: 'unknown model ' + words[1] })); continue; }
    const started = process.cpuUsage();
    const wallStarted = performance.now();
    // Busy for ~300 ms of CPU.
    let x = 0;
    while ((process.cpuUsage(started).user + process.cpuUsage(started).system) < 300000) x += Math.sqrt(x + 1);
    const used = process.cpuUsage(started);
    const cpu = (used.user + used.system) / 1e6;
    console.log(JSON.stringify({ model: 'm', examples: Number(words[2]), wallSeconds: (performance.now() - wallStarted) / 1000,
      cpuSeconds: cpu, threadCpuSeconds: cpu, processThreads: 1, loss: 0, accuracy: 0 }));
  }
});
`;

describe('TorchServer (the bench talking to a persistent PyTorch process)', () => {
  let dir: string;
  let script: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'trib-torchserver-'));
    script = join(dir, 'fake.js');
    writeFileSync(script, FAKE_SERVER);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('starts, runs epochs one at a time and counts the child CPU time the OS charged to it', async () => {
    const { server, ready } = await TorchServer.start(process.execPath, script, '/data.bin', 500, 32, 0.05);
    try {
      expect(ready).toMatchObject({ torch: 'fake', threads: 1, interopThreads: 1, parameters: { m: 3 } });
      expect((ready as unknown as { args: string[] }).args).toEqual(['/data.bin', '500', '32', '0.05']);
      for (const examples of [100, 250]) {
        const epoch = await server.epoch('m', examples);
        expect(epoch.model).toBe('m');
        expect(epoch.examples).toBe(examples);
        expect(epoch.cpuSeconds).toBeGreaterThanOrEqual(0.3);
        // /proc counts in clock ticks (10 ms); the child's own figure must be its own CPU time, not ours.
        expect(Math.abs(epoch.osCpuSeconds - epoch.cpuSeconds)).toBeLessThan(0.1);
      }
    } finally {
      server.close();
    }
  }, 60_000);

  it('rejects an epoch the server answers with an error, and keeps serving', async () => {
    const { server } = await TorchServer.start(process.execPath, script, '/data.bin', 500, 32, 0.05);
    try {
      await expect(server.epoch('nope', 10)).rejects.toThrow('unknown model nope');
      await expect(server.epoch('m', 10)).resolves.toMatchObject({ model: 'm', examples: 10 });
    } finally {
      server.close();
    }
  }, 60_000);

  it('rejects pending and later epochs once the child has exited, and start fails for a child that never gets ready', async () => {
    const { server } = await TorchServer.start(process.execPath, script, '/data.bin', 500, 32, 0.05);
    await expect(server.epoch('die', 10)).rejects.toThrow('stopped');
    await expect(server.epoch('m', 10)).rejects.toThrow('not running');
    await expect(TorchServer.start(process.execPath, join(dir, 'missing.js'), '/d', 1, 1, 1)).rejects.toThrow(
      /stopped|Cannot find module/,
    );
  }, 60_000);
});
