import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** One PyTorch epoch as bench/torchTraining.py --serve reports it, plus the OS's view of the child's CPU time. */
export interface TorchEpoch {
  model: string;
  examples: number;
  wallSeconds: number;
  /** time.process_time() in the child: its own CPU time (getrusage of that process), every thread. */
  cpuSeconds: number;
  /** time.thread_time() in the child: the CPU time of the one thread that trained. */
  threadCpuSeconds: number;
  processThreads: number | null;
  /** utime + stime of the child from /proc/PID/stat, read here around the command (clock-tick resolution). */
  osCpuSeconds: number;
}

/** What the server says once it is up. */
export interface TorchReady {
  torch: string;
  threads: number;
  interopThreads: number;
  parameters: Record<string, number>;
}

/** Seconds one epoch command may take before the server is declared hung and stopped. */
const EPOCH_TIMEOUT_MS = 60_000;
const START_TIMEOUT_MS = 120_000;

const CLOCK_TICKS = (() => {
  const run = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = Number(run.stdout?.trim());
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

/** CPU seconds (user + system) the OS has charged to `pid`, or NaN where /proc cannot be read. */
function osCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name start at field 3; utime and stime are fields 14 and 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/**
 * PyTorch as a persistent child process (bench/torchTraining.py --serve, one intra-op and one inter-op
 * thread), so that the bench can alternate its epochs with TF.js epochs in this process under the same
 * load. One command at a time: `epoch()` sends "epoch MODEL COUNT" and resolves with the JSON answer;
 * while the child trains, this process waits idle, and while this process trains, the child waits on
 * its stdin. Each command is bounded by EPOCH_TIMEOUT_MS, after which the child is killed.
 */
export class TorchServer {
  private readonly pending: Array<{ resolve: (line: string) => void; reject: (err: Error) => void }> = [];
  private stderr = '';
  private exited: string | undefined;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly python: string,
  ) {
    createInterface({ input: child.stdout }).on('line', (line) => this.pending.shift()?.resolve(line));
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-2000);
    });
    child.on('exit', (code, signal) => {
      this.exited = `exit ${code ?? signal}`;
      const why = this.stderr.trim().split('\n').pop() || this.exited;
      for (const p of this.pending.splice(0)) p.reject(new Error(`bench/torchTraining.py stopped: ${why}`));
    });
    child.on('error', (err) => {
      this.exited = err.message;
      for (const p of this.pending.splice(0)) p.reject(err);
    });
  }

  /** Starts the server on DATA_FILE (COUNT digits, see torchTraining.py) and waits for its ready line. */
  static async start(
    python: string,
    script: string,
    dataFile: string,
    count: number,
    batchSize: number,
    learningRate: number,
  ): Promise<{ server: TorchServer; ready: TorchReady }> {
    const child = spawn(python, [script, '--serve', dataFile, String(count), String(batchSize), String(learningRate)], {
      env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
      stdio: 'pipe',
    });
    const server = new TorchServer(child, python);
    try {
      const ready = JSON.parse(await server.request(undefined, START_TIMEOUT_MS)) as TorchReady & { ready?: boolean };
      if (!ready.ready) throw new Error(`bench/torchTraining.py answered ${JSON.stringify(ready)} instead of ready`);
      return { server, ready };
    } catch (err) {
      server.close();
      throw err;
    }
  }

  /** One epoch of `model` on the first `count` digits, timed by the child (and its CPU time by the OS, here). */
  async epoch(model: string, count: number): Promise<TorchEpoch> {
    const pid = this.child.pid as number;
    const osBefore = osCpuSeconds(pid);
    const answer = JSON.parse(await this.request(`epoch ${model} ${count}\n`, EPOCH_TIMEOUT_MS)) as
      | (Omit<TorchEpoch, 'osCpuSeconds'> & { error?: undefined })
      | { error: string };
    if (answer.error !== undefined) throw new Error(`bench/torchTraining.py: ${answer.error}`);
    return { ...answer, osCpuSeconds: osCpuSeconds(pid) - osBefore };
  }

  /** Asks the child to stop, and kills it if it is still there a second later. */
  close(): void {
    if (this.exited) return;
    this.child.stdin.end('quit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 1000);
    timer.unref();
    this.child.once('exit', () => clearTimeout(timer));
  }

  private request(line: string | undefined, timeoutMs: number): Promise<string> {
    if (this.exited) return Promise.reject(new Error(`bench/torchTraining.py is not running (${this.exited})`));
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`bench/torchTraining.py did not answer within ${timeoutMs / 1000} s`));
        this.child.kill('SIGKILL');
      }, timeoutMs);
      this.pending.push({
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      if (line !== undefined) this.child.stdin.write(line);
    });
  }
}
