/**
 * Every Tributary benchmark in one run (so ratios between figures are meaningful), a table on stdout,
 * and bench/results.json. Run: npm run bench   (progress goes to stderr). See bench/README.md.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { aggregationBench } from './aggregation.bench';
import { codecBench } from './codec.bench';
import { heBench, heBenchRows } from './he.bench';
import { paillierBench } from './paillier.bench';
import { secaggBench } from './secagg.bench';
import { secureModesBench } from './secureModes.bench';
import { contractGasBench } from '../contracts/gas.bench';
import { checkFastSigner } from './fastIdentity';
import { round } from './harness';
import { orchestrationBench } from './orchestration.bench';
import { scaleBench } from './scale.bench';
import { trainingBench } from './training.bench';
import { contributionBench } from './contribution.bench';
import { robustnessBench } from './robustness.bench';
import { clusterBench } from './cluster.bench';

type Row = [figure: string, value: string, note?: string];

const fmt = (x: number | null | undefined, unit = '') =>
  x === null || x === undefined || !Number.isFinite(x)
    ? 'n/a'
    : `${x.toLocaleString('en-US', { maximumFractionDigits: 3 })}${unit}`;

async function section<T>(name: string, fn: () => T | Promise<T>): Promise<T | { error: string }> {
  process.stderr.write(`bench: ${name}...`);
  const t0 = performance.now();
  try {
    const result = await fn();
    process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    return result;
  } catch (err) {
    process.stderr.write(` failed: ${String((err as Error)?.stack ?? err)}\n`);
    return { error: String((err as Error)?.message ?? err) };
  }
}

function isError(x: unknown): x is { error: string } {
  return typeof x === 'object' && x !== null && 'error' in x;
}

function printTable(title: string, rows: Row[]): void {
  const w0 = Math.max(...rows.map((r) => r[0].length), 6);
  const w1 = Math.max(...rows.map((r) => r[1].length), 5);
  process.stdout.write(`\n${title}\n${'-'.repeat(title.length)}\n`);
  for (const [a, b, c] of rows) process.stdout.write(`  ${a.padEnd(w0)}  ${b.padStart(w1)}${c ? `  ${c}` : ''}\n`);
}

/** Sections that `--only <name,...>` can re-run alone; their figures replace those in the existing results.json. */
const SINGLE_SECTIONS: Record<string, { title: string; run: () => Promise<unknown> }> = {
  contribution: { title: 'contribution scoring (planted federation, 6 clients)', run: () => contributionBench() },
  // Not in the full run (about 7 minutes of one core here): `--only robustness`, or bench/robustness.bench.ts for any grid.
  robustness: { title: 'robustness (MNIST, 20 clients, reduced grid)', run: () => robustnessBench() },
  training: { title: 'training (MNIST, every backend, PyTorch)', run: () => trainingBench(2000, 32) },
  he: {
    title: 'lattice HE (BGV/BFV) vs Paillier, and rounds per mode (10 clients, 100k parameters)',
    run: () => heBench(),
  },
  secureModes: {
    title:
      'aggregation modes end to end (10 clients, 100k parameters, none/secagg/paillier; none/secagg at 100 clients)',
    run: () => secureModesBench(),
  },
  // Not in the full run (about 4 minutes; needs redis-server and FerretDB): `--only cluster`.
  cluster: {
    title: 'cluster (1 vs 3 nodes: idle clients, one round with 1,000 light clients, failover)',
    run: () => clusterBench(),
  },
};

function printHe(he: Awaited<ReturnType<typeof heBench>> | { error: string } | undefined): void {
  if (!he) return;
  if (isError(he)) printTable('Lattice HE', [['error', he.error]]);
  else
    printTable(
      `Lattice HE (he.bench.ts): ${he.primitives.parameters} values, ${he.rounds.clients} clients, ${he.rounds.model}`,
      heBenchRows(he),
    );
}

type SecureModesResult = Awaited<ReturnType<typeof secureModesBench>>;

function printSecureModes(secureModes: SecureModesResult | { error: string } | undefined): void {
  if (!secureModes) return;
  if (isError(secureModes)) printTable('Aggregation modes end to end', [['error', secureModes.error]]);
  else {
    const rows: Row[] = [];
    for (const m of [...secureModes.modes, ...(secureModes.atScale?.modes ?? [])]) {
      const at = secureModes.atScale?.modes.includes(m) ? ` (${secureModes.atScale.clients} clients)` : '';
      const incomplete = m.stoppedEarly ? ` (INCOMPLETE: ${m.stoppedEarly})` : '';
      const spread = m.ratioSpread
        ? `; per repeat ${fmt(m.ratioSpread.wallMin)}-${fmt(m.ratioSpread.wallMax)} x wall, ${fmt(m.ratioSpread.cpuMin)}-${fmt(m.ratioSpread.cpuMax)} x cpu`
        : '';
      rows.push(
        [
          `${m.mode}${at}: round time, rounds 2+`,
          fmt(m.steadyRoundMsMedian, ' ms'),
          `${fmt(m.steadyRoundTimeVsPlaintext)} x plaintext (all rounds ${fmt(m.roundTimeVsPlaintext)} x)${spread}${incomplete}`,
        ],
        [
          `${m.mode}${at}: cpu per round, rounds 2+`,
          fmt(m.steadyCpuMsMedian, ' ms'),
          `${fmt(m.steadyCpuVsPlaintext)} x plaintext (all threads of the process)`,
        ],
        [
          `${m.mode}${at}: received per client per round`,
          fmt(m.bytesPerClientPerRound),
          `bytes (${fmt(m.bytesVsPlaintext)} x plaintext)`,
        ],
      );
      if (m.keyHolderBytesPerRound !== undefined)
        rows.push([`${m.mode}${at}: received from the key holder`, fmt(m.keyHolderBytesPerRound), 'bytes per round']);
      if (m.errors.length > 0) rows.push([`${m.mode}${at}: client errors`, String(m.errors.length), m.errors[0]]);
    }
    const mi = secureModes.maskedInput;
    rows.push([
      'secagg: one client masks its input',
      fmt(mi.precomputedMs, ' ms'),
      `precomputed in the pool (in the event loop: ${fmt(mi.inThreadMs)} ms); unmask ${fmt(mi.unmaskMs)} ms`,
    ]);
    printTable(
      `Aggregation modes end to end: ${secureModes.clients} in-process clients, ${secureModes.model} (${fmt(secureModes.parameters)} parameters), ` +
        `${secureModes.keyBits}-bit Paillier key, clients share one event loop`,
      rows,
    );
  }
}

function onlySections(): string[] | null {
  const i = process.argv.indexOf('--only');
  if (i < 0) return null;
  const names = (process.argv[i + 1] ?? '').split(',').filter(Boolean);
  const unknown = names.filter((n) => !(n in SINGLE_SECTIONS));
  if (names.length === 0 || unknown.length > 0)
    throw new Error(`--only takes a comma-separated list of: ${Object.keys(SINGLE_SECTIONS).join(', ')}`);
  return names;
}

async function main(): Promise<void> {
  const only = onlySections();
  if (only) {
    const file = join(__dirname, 'results.json');
    const results = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
    for (const name of only) results[name] = await section(SINGLE_SECTIONS[name].title, SINGLE_SECTIONS[name].run);
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    if (only.includes('contribution')) printContribution(results.contribution as ContributionResult | undefined);
    if (only.includes('robustness')) printRobustness(results.robustness as RobustnessResult | undefined);
    if (only.includes('training')) printTraining(results.training as TrainingResult | { error: string });
    if (only.includes('secureModes')) printSecureModes(results.secureModes as SecureModesResult | { error: string });
    if (only.includes('he')) printHe(results.he as Awaited<ReturnType<typeof heBench>> | { error: string });
    if (only.includes('cluster')) process.stdout.write(`\n${JSON.stringify(results.cluster, null, 2)}\n`);
    process.stdout.write(`\nwrote ${only.join(', ')} into ${file}\n`);
    return;
  }
  const startedAt = new Date();
  const t0 = performance.now();
  const cpuList = cpus();
  const machine = {
    cpus: cpuList.length,
    cpuModel: cpuList[0]?.model ?? 'unknown',
    totalMemGiB: round(totalmem() / 2 ** 30),
    node: process.version,
    loadAverage1mAtStart: round(loadavg()[0]),
  };

  const aggregation = await section('aggregation (FedAvg, 10 x 1M parameters)', () => aggregationBench());
  const codec = await section('codec (10M parameters)', () => codecBench());
  const training = await section('training (MNIST, every backend)', () => trainingBench(2000, 32));
  const signer = checkFastSigner();
  const orchestration = await section('orchestration (10 and 100 light clients)', async () => ({
    signer: {
      fastSignerMatchesTweetnacl: signer.identical,
      tweetnaclSignMs: round(signer.tweetnaclSignMs),
      nodeCryptoSignMs: round(signer.nodeCryptoSignMs),
    },
    ...(await orchestrationBench([10, 100], 50, 120_000)),
  }));
  const scale = await section('scale (idle authenticated clients)', () =>
    scaleBench([1_000, 5_000, 10_000], 90_000, 12),
  );

  const paillier = await section('packed Paillier (2048-bit, 100k parameters)', () => paillierBench());
  const secagg = await section('SecAgg+ in process (100 clients, 100k parameters)', () => secaggBench());
  const secureModes = await section(SINGLE_SECTIONS.secureModes.title, SINGLE_SECTIONS.secureModes.run);
  const he = await section(SINGLE_SECTIONS.he.title, () => heBench());
  const contracts = await section('escrow gas on anvil', () => contractGasBench());
  const contribution = await section(SINGLE_SECTIONS.contribution.title, SINGLE_SECTIONS.contribution.run);

  const results = {
    machine,
    startedAt: startedAt.toISOString(),
    durationSeconds: round((performance.now() - t0) / 1000),
    aggregation,
    codec,
    training,
    orchestration,
    scale,
    paillier,
    secagg,
    secureModes,
    he,
    contracts,
    contribution,
  };
  const file = join(__dirname, 'results.json');
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);

  process.stdout.write(
    `Tributary benchmarks: ${machine.cpus} x ${machine.cpuModel}, ${machine.totalMemGiB} GiB, Node ${machine.node}, ` +
      `load ${machine.loadAverage1mAtStart} at start, ${results.durationSeconds} s in all\n`,
  );

  if (isError(aggregation)) printTable('Aggregation', [['error', aggregation.error]]);
  else
    printTable(`Aggregation: FedAvg over ${aggregation.clients} updates of ${fmt(aggregation.params)} parameters`, [
      [
        'FedAvg',
        fmt(aggregation.fedAvgParamsPerSecond),
        'params/s (decode + finite check + weighted sum + server step)',
      ],
      ['plain Float32 sum loop', fmt(aggregation.plainFloat32SumParamsPerSecond), 'params/s'],
      ['FedAvg time / plain sum time', fmt(aggregation.slowdownVsPlainSum), 'x (1 = as fast as the bare loop)'],
    ]);

  if (isError(codec)) printTable('Codec', [['error', codec.error]]);
  else
    printTable(`Codec: ${fmt(codec.megabytes)} MB model`, [
      ['encode', fmt(codec.encodeMBps), 'MB/s'],
      ['decode (copy)', fmt(codec.decodeMBps), 'MB/s'],
      ['decode (zero copy + finite check)', fmt(codec.decodeZeroCopyWithFiniteCheckMBps), 'MB/s'],
      ['SHA-256 content hash', fmt(codec.sha256MBps), 'MB/s'],
    ]);

  printTraining(training);

  if (isError(orchestration)) printTable('Orchestration', [['error', orchestration.error]]);
  else {
    const rows: Row[] = [];
    for (const s of orchestration.scenarios) {
      const tag = `${s.clients} clients`;
      rows.push(
        [
          `${tag}: overhead per round, median`,
          fmt(s.overheadMsMedian, ' ms'),
          `p95 ${fmt(s.overheadMsP95, ' ms')}, max ${fmt(s.overheadMsMax, ' ms')} over ${s.roundsMeasured} rounds${s.completed ? '' : ` (INCOMPLETE: ${s.stoppedEarly ?? ''})`}`,
        ],
        [`${tag}: per client`, fmt(s.overheadMsPerClientMedian, ' ms')],
        [`${tag}: round start to next start`, fmt(s.cycleMsMedian, ' ms'), 'median'],
        [
          `${tag}: load generator's share`,
          fmt(s.loadGeneratorBusyMsMedian, ' ms'),
          'median per round, sync client work on the same event loop',
        ],
        [`${tag}: process CPU per round`, fmt(s.processCpuMsPerRound, ' ms'), 'coordinator + clients, user+sys'],
      );
      if (s.clientErrors.length > 0)
        rows.push([`${tag}: client errors`, String(s.clientErrors.length), s.clientErrors[0]]);
    }
    rows.push([
      'stock client signature (tweetnacl)',
      fmt(orchestration.signer.tweetnaclSignMs, ' ms'),
      `vs ${fmt(orchestration.signer.nodeCryptoSignMs, ' ms')} node:crypto (identical bytes: ${orchestration.signer.fastSignerMatchesTweetnacl})`,
    ]);
    printTable(
      `Orchestration: ${orchestration.model}, zero-training clients, ${orchestration.warmupRounds} warm-up round`,
      rows,
    );
  }

  if (isError(paillier)) printTable('Packed Paillier', [['error', paillier.error]]);
  else
    printTable(
      `Packed Paillier: ${paillier.keyBits}-bit key, ${fmt(paillier.parameters)} parameters, ${paillier.slotsPerCiphertext} values per ciphertext`,
      [
        [
          'encrypt one update, 1 thread',
          fmt(paillier.encryptSeconds, ' s'),
          `${fmt(paillier.encryptValuesPerSecond)} values/s`,
        ],
        [
          `encrypt one update, ${paillier.threads} threads`,
          fmt(paillier.parallelEncryptSeconds, ' s'),
          `${fmt(paillier.parallelEncryptValuesPerSecond)} values/s`,
        ],
        ['ciphertext additions', fmt(paillier.ciphertextAdditionsPerSecond), 'per second'],
        [
          `decrypt the aggregate of ${paillier.clients}`,
          fmt(paillier.decryptAggregateSeconds, ' s'),
          `${fmt(paillier.parallelDecryptAggregateSeconds, ' s')} in worker threads`,
        ],
        [
          'packed / per-value encryption, 1 thread',
          fmt(paillier.speedupVsPlain, ' x'),
          `values/s vs paillier-bigint one value per ciphertext (${fmt(paillier.plainEncryptValuesPerSecond)} values/s, sample of 16)`,
        ],
      ],
    );

  if (isError(secagg)) printTable('SecAgg+', [['error', secagg.error]]);
  else
    printTable(
      `SecAgg+ protocol in process (no sockets): ${secagg.clients} clients, ${fmt(secagg.parameters)} parameters`,
      secagg.runs.flatMap(
        (r) =>
          [
            [`k = ${r.neighbours}: client work`, fmt(r.clientMsPerClient, ' ms'), 'per client per round'],
            [`k = ${r.neighbours}: coordinator work`, fmt(r.serverMs, ' ms'), 'per round'],
            [
              `k = ${r.neighbours}: upload per client`,
              fmt(r.uploadBytesPerClient),
              `bytes (${fmt(r.uploadExpansionVsPlaintext)} x a plaintext float32 update)`,
            ],
          ] as Row[],
      ),
    );

  printSecureModes(secureModes as SecureModesResult | { error: string });

  printHe(he);

  if (isError(contracts)) printTable('Escrow gas', [['error', contracts.error]]);
  else
    printTable(`Escrow gas on anvil (${contracts.contributors} contributors in the payout tree)`, [
      [
        'commitRound (new round)',
        fmt(contracts.commitRoundNext),
        `gas (first round ${fmt(contracts.commitRoundFirst)})`,
      ],
      ['commitRound (identical retry, no-op)', fmt(contracts.commitRoundRetry), 'gas'],
      [
        'createJob (ERC-20, approval not counted)',
        fmt(contracts.createJobErc20),
        `gas (ETH ${fmt(contracts.createJobEth)})`,
      ],
      ['settle', fmt(contracts.settle), 'gas'],
      ['claim (ERC-20)', fmt(contracts.claimErc20), 'gas'],
      ['claim (native ETH)', fmt(contracts.claimEth), 'gas'],
      ['dispute', fmt(contracts.dispute), 'gas'],
      ['resolveDispute (arbiter)', fmt(contracts.resolveDispute), 'gas'],
      ['expireDispute', fmt(contracts.expireDispute), `gas (claim after it ${fmt(contracts.claimAfterHaircut)})`],
      ['sweep', fmt(contracts.sweep), 'gas'],
    ]);

  printContribution(contribution as ContributionResult);

  if (isError(scale)) printTable('Scale', [['error', scale.error]]);
  else {
    const rows: Row[] = [
      [
        'open files (ulimit -n soft/hard)',
        `${fmt(scale.openFilesSoftLimit)}/${fmt(scale.openFilesHardLimit)}`,
        `ephemeral ports ${scale.ephemeralPorts ?? 'n/a'}`,
      ],
    ];
    for (const s of scale.steps) {
      const tag = `${fmt(s.target)} clients`;
      rows.push(
        [
          `${tag}: connected`,
          `${fmt(s.connected)}/${fmt(s.target)}`,
          `${fmt(s.failed)} failed; health ${fmt(s.healthConnectedClients)}; ${fmt(s.stillConnectedAfterHold)} still up after ${s.holdSeconds} s idle${s.stoppedEarly ? ` (${s.stoppedEarly})` : ''}`,
        ],
        [`${tag}: time to connect all`, fmt(s.connectSeconds, ' s'), `${fmt(s.connectsPerSecond)} handshakes/s`],
      );
      if (s.coordinator) {
        rows.push(
          [
            `${tag}: coordinator RSS`,
            `${fmt(s.coordinator.rssBeforeMiB)} -> ${fmt(s.coordinator.rssAfterMiB)} MiB`,
            `${fmt(s.coordinator.rssKiBPerClient)} KiB per client`,
          ],
          [
            `${tag}: coordinator V8 heap`,
            `${fmt(s.coordinator.heapUsedBeforeMiB)} -> ${fmt(s.coordinator.heapUsedAfterMiB)} MiB`,
            `${fmt(s.coordinator.heapKiBPerClient)} KiB per client`,
          ],
        );
      }
      if (s.errors.length > 0) rows.push([`${tag}: errors`, String(s.failed), s.errors.join('; ')]);
    }
    for (const skipped of scale.skipped) rows.push(['skipped', skipped]);
    printTable('Scale: idle authenticated socket.io clients, coordinator in a child process', rows);
  }
  process.stdout.write(`\nwrote ${file}\n`);
}

type RobustnessResult = Awaited<ReturnType<typeof robustnessBench>> | { error: string };

function printRobustness(robustness: RobustnessResult | undefined): void {
  if (!robustness) return;
  if (isError(robustness)) {
    printTable('Robustness', [['error', robustness.error]]);
    return;
  }
  const rows: Row[] = robustness.targets.map((t) => [
    `${t.partition}, ${t.attackers} x ${t.attack}`,
    `${fmt(100 * t.cleanFedAvg)} % clean`,
    `FedAvg ${fmt(100 * (t.fedAvgUnderAttack ?? Number.NaN))} %; within 2 (plaintext): ${t.plaintextWithin2.join(', ') || 'none'}; within 5 (cohorts): ${t.cohortsWithin5.join(', ') || 'none'}`,
  ]);
  printTable(`Robustness: ${robustness.runs.length} runs, final MNIST accuracy (${robustness.seconds} s)`, rows);
}

type ContributionResult = Awaited<ReturnType<typeof contributionBench>> | { error: string };

type TrainingResult = Awaited<ReturnType<typeof trainingBench>>;

function printTraining(training: TrainingResult | { error: string }): void {
  if (isError(training)) {
    printTable('Training', [['error', training.error]]);
    return;
  }
  const rows: Row[] = [];
  for (const b of training.backends) {
    if (!b.available) rows.push([b.backend, 'unavailable', b.reason]);
    else
      for (const f of b.figures)
        rows.push([
          `${b.backend} ${f.model}`,
          fmt(f.samplesPerSecond),
          `samples/s (${b.examples} digits, ${f.gradients}; was ${fmt(f.referenceSamplesPerSecond)}; ${
            f.ratioToPyTorch === null || !f.pairs.wallRatio || !f.pairs.cpuRatio
              ? 'no PyTorch figure'
              : `x PyTorch best/best: wall ${fmt(f.ratioToPyTorch)}, CPU ${fmt(f.cpuRatioToPyTorch)}; median of ${f.pairs.count} pairs: wall ${fmt(f.pairs.wallRatio.median)}, CPU ${fmt(f.pairs.cpuRatio.median)} (CPU ${fmt(f.pairs.cpuRatio.min)}-${fmt(f.pairs.cpuRatio.max)})`
          })`,
        ]);
  }
  const torch = training.pytorch;
  if (!torch.available) rows.push(['PyTorch', 'unavailable', torch.reason]);
  else
    for (const f of torch.figures)
      rows.push([
        `PyTorch ${torch.torch} ${f.model}`,
        fmt(f.samplesPerSecond),
        `samples/s (${torch.threads} thread; ${fmt(f.cpuSamplesPerSecond)} per CPU second)`,
      ]);
  if (torch.available)
    rows.push([
      'PyTorch CPU check',
      `${torch.cpuCheck.epochs} epochs`,
      `training thread ${fmt(torch.cpuCheck.threadShare)} of process CPU; OS count / reported ${fmt(torch.cpuCheck.osOverReported)}; threads ${torch.cpuCheck.maxProcessThreads}`,
    ]);
  printTable(`Training: ${training.examples} MNIST digits, batch ${training.batchSize}, ${training.timedEpochs}`, rows);
}

function printContribution(contribution: ContributionResult | undefined): void {
  if (!contribution) return;
  if (isError(contribution)) {
    printTable('Contribution scoring', [['error', contribution.error]]);
    return;
  }
  const c = contribution.cost;
  const rows: Row[] = [
    [
      'scoring time per round',
      fmt(c.scoringMsPerRoundMedian, ' ms'),
      `median; ${fmt(c.evaluationsPerRound)} model evaluations per round (exact Shapley)`,
    ],
    [
      'plain round time',
      fmt(c.plainRoundMsMedian, ' ms'),
      'median, same job without a validation set (nothing scored)',
    ],
    ['scoring / plain round', fmt(c.scoringTimeVsPlainRound, ' x'), 'goal <= 1.5 x'],
    [
      'round time while scoring',
      fmt(c.scoredRoundMsMedian, ' ms'),
      'median; in-process clients share the event loop with the scorer',
    ],
  ];
  for (const s of contribution.planted.summary) {
    rows.push([
      `after ${s.rounds} rounds: private vs exact Spearman`,
      fmt(s.spearmanMedian),
      `estimates, median over seeds (min ${fmt(s.spearmanMin)}); paid scores ${fmt(s.spearmanPaidMedian)}`,
    ]);
    rows.push([
      `after ${s.rounds} rounds: ranking + bad share <= 2 %`,
      `${s.privatePassRate} private`,
      `${s.plaintextPassRate} plaintext; worst bad share (private) ${fmt(100 * s.worstBadSharePrivate, ' %')}`,
    ]);
  }
  printTable(
    `Contribution scoring: planted federation of ${contribution.clients} clients, ${contribution.model}, ${contribution.validationExamples} validation examples`,
    rows,
  );
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${String((err as Error)?.stack ?? err)}\n`);
  process.exitCode = 1;
});
