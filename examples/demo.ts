import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { SOLO_ATTACKS, type SoloAttack } from '../client/plantedBehaviour';
import { startDemoChain, type DemoChain, type DemoChainResult } from './chainDemo';
import type { ExampleTask } from './exampleTask';
import { type FederationPrivacy, runFederation, type RoundSummary } from './federation';
import { mnistTask } from './mnist/task';
import { formatPartition, parsePartition } from './partitionOption';
import { writeRunReport } from './runReport';
import { tabularTask } from './tabular/task';

const EXAMPLES: Record<string, ExampleTask> = { mnist: mnistTask, tabular: tabularTask };

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(2)} %` : 'n/a');
const num = (x: number, d = 4) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

/**
 * `npm start`: a complete local federation on the embedded defaults (in-memory store, loopback),
 * with live progress, a summary table, and results written to --out.
 */
const program = new Command('tributary-demo')
  .description('Run a complete local federation: a coordinator and N client processes on 127.0.0.1.')
  .addOption(new Option('--example <name>', 'which example').choices(Object.keys(EXAMPLES)).default('mnist'))
  .option('--clients <n>', "number of client processes (default: the example's, 5 for mnist)")
  .option('--rounds <n>', "training rounds (default: the example's, 10 for mnist)")
  .option('--partition <p>', 'how data is split: iid | dirichlet:<alpha> | shards:<n per client>', 'iid')
  .option('--seed <n>', 'seed for the partition, model initialisation and sampling', '0')
  .addOption(
    new Option('--backend <name>', 'TF.js backend for every process')
      .choices(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'])
      .default('auto'),
  )
  .addOption(
    new Option(
      '--secure-aggregation <mode>',
      'none: the coordinator sees each update; secagg: only their sum (SecAgg+); paillier: encrypted updates, an in-process key holder decrypts only their sum; he: the same with lattice HE (BGV, SEAL)',
    )
      .choices(['none', 'secagg', 'paillier', 'he'])
      .default('secagg'),
  )
  .option('--out <dir>', 'where results go (default runs/<timestamp>)')
  .option('--json', 'print one JSON object with the results as the last line of stdout')
  .option(
    '--free-rider <n>',
    'plant N free-riders (the last N clients send the global model back unchanged) to watch them earn nothing',
    '0',
  )
  .option(
    '--attackers <n>',
    'research: plant N attackers (the clients before any free-riders) playing --attack, to watch what each mode bounds and scoring pay them nothing',
    '0',
  )
  .addOption(
    new Option('--attack <name>', 'what the planted attackers do (see docs/robustness.md)')
      .choices([...SOLO_ATTACKS])
      .default('sign-flip'),
  )
  .option('--no-chain', 'skip the escrow: no anvil, no payouts')
  .option(
    '--rpc-url <url>',
    'use this chain instead of a local anvil (keys from TRIBUTARY_BUYER_KEY and TRIBUTARY_COORDINATOR_KEY, the arbiter address from TRIBUTARY_ARBITER; TRIBUTARY_ESCROW reuses an escrow)',
  )
  .option('--budget-wei <n>', "the job's budget in wei", '1000000000000000000')
  .option(
    '--dp-epsilon <e>',
    'train with client-level differential privacy at this total epsilon (clipping, noise, an accountant that stops the job before it would spend more); see docs/privacy.md',
  )
  .option('--dp-delta <d>', 'delta of the --dp-epsilon guarantee (below 1 / clients)', '1e-5')
  .addOption(
    new Option(
      '--dp-noise <where>',
      'who adds the noise: central (the coordinator, after summing; every mode) or distributed (each client, inside SecAgg+: the coordinator never sees an un-noised sum; secagg only). Default: distributed with secagg, else central',
    ).choices(['central', 'distributed']),
  )
  .addHelpText(
    'after',
    '\nExamples:\n  npm start\n  npm start -- --example tabular --partition dirichlet:0.5\n  npm start -- --clients 3 --rounds 5 --json\n  npm start -- --example tabular --dp-epsilon 8\n  npm start -- --clients 6 --attackers 1 --attack negative-weight',
  )
  .action(async (opts) => {
    const task = EXAMPLES[opts.example];
    const clients = Number(opts.clients ?? task.defaults.clients);
    const rounds = Number(opts.rounds ?? task.defaults.rounds);
    const seed = Number(opts.seed);
    if (!Number.isInteger(clients) || clients < 1 || clients > 200)
      throw new Error(`--clients must be an integer in [1, 200], got ${opts.clients}`);
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 1000)
      throw new Error(`--rounds must be an integer in [1, 1000], got ${opts.rounds}`);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got ${opts.seed}`);
    const partition = parsePartition(opts.partition);
    const freeRiders = Number(opts.freeRider);
    if (!Number.isInteger(freeRiders) || freeRiders < 0 || freeRiders >= clients)
      throw new Error(
        `--free-rider must be an integer in [0, ${clients - 1}] (at least one honest client), got ${opts.freeRider}`,
      );
    const attackers = Number(opts.attackers);
    if (!Number.isInteger(attackers) || attackers < 0 || attackers + freeRiders >= clients)
      throw new Error(
        `--attackers must be an integer in [0, ${clients - 1 - freeRiders}] (at least one honest client besides ${freeRiders} free-rider(s)), got ${opts.attackers}`,
      );
    const attack = opts.attack as SoloAttack;
    if (attackers > 0 && attack === 'negative-weight' && opts.secureAggregation === 'none')
      throw new Error(
        '--attack negative-weight hides a negative weight inside a masked vector or ciphertext: use --secure-aggregation secagg or paillier (in none the example count is validated)',
      );
    if (!/^[1-9][0-9]{0,77}$/.test(String(opts.budgetWei)))
      throw new Error(`--budget-wei must be a positive integer, got ${opts.budgetWei}`);
    const privacy = privacyOption(opts, clients);
    const outDir = resolve(opts.out ?? join('runs', new Date().toISOString().replace(/[:.]/g, '-')));
    // Progress goes to stderr with --json so stdout stays machine-readable.
    const say = (line: string) => (opts.json ? process.stderr : process.stdout).write(`${line}\n`);

    say(
      `Tributary demo: ${task.title}; ${clients} clients, ${rounds} rounds, partition ${formatPartition(partition)}, seed ${seed}, secure aggregation ${opts.secureAggregation}${attackers > 0 ? `, ${attackers} planted ${attack} attacker(s)` : ''}`,
    );
    if (privacy) {
      say(
        `differential privacy: epsilon ${privacy.epsilon} at delta ${privacy.delta}, ${privacy.noise} noise, adaptive clipping from C = ${task.privacyClippingNorm}` +
          (clients < 100
            ? `; note: with ${clients} clients the noise needed for this budget drowns most of the signal (docs/privacy.md, "Small federations")`
            : ''),
      );
    }
    // The escrow (default on): the buyer funds the job on chain before the coordinator recruits for it.
    let chain: DemoChain | null = null;
    let paid: DemoChainResult | null = null;
    let chainOption: Parameters<typeof runFederation>[1]['chain'];
    if (opts.chain) {
      const demoChain = await startDemoChain(opts.rpcUrl);
      chain = demoChain;
      chainOption = {
        // The buyer funds the escrow job for the exact spec the demo posts, and signs the binding.
        bind: async (unbound) => {
          const spec = await demoChain.bindJob(unbound, BigInt(opts.budgetWei));
          say(
            `chain ${demoChain.chainId} at ${demoChain.rpcUrl}: escrow ${spec.escrow}, job ${spec.jobId} funded with ${spec.budgetWei} wei, binding signed by the buyer`,
          );
          return spec;
        },
        coordinator: {
          rpcUrl: chain.rpcUrl,
          coordinatorPrivateKey: chain.coordinatorKey,
          chainPollMs: opts.rpcUrl ? 2000 : 100,
          chainRetryBaseMs: opts.rpcUrl ? 1000 : 100,
        },
      };
    }
    if (opts.secureAggregation !== 'none' && clients < 6) {
      say(
        `note: with fewer than 6 clients the coordinator sees only each round's total (no SecAgg+ cohorts of 3), so contribution scores split by participation${freeRiders > 0 ? ' and free-riders are paid like everyone else' : ''}; use --clients 6 or more, or --secure-aggregation none`,
      );
    }
    say(`round  participants  val accuracy  val loss  train loss  seconds${privacy ? '  epsilon' : ''}`);
    const result = await runFederation(task, {
      clients,
      rounds,
      partition,
      seed,
      backend: opts.backend,
      outDir,
      secureAggregation: opts.secureAggregation,
      freeRiders,
      ...(privacy ? { privacy } : {}),
      ...(attackers > 0 ? { attackers, attack } : {}),
      chain: chainOption,
      afterJob: chain
        ? async (coordinator, jobId, dataDir) => {
            paid = await chain!.settleAndClaim(coordinator, jobId, dataDir, clients);
          }
        : undefined,
      onLog: (l) => say(l),
      onRound: (r: RoundSummary) =>
        say(
          `${String(r.round).padStart(5)}  ${`${r.participants}/${r.selected}`.padStart(12)}  ${pct(r.validationAccuracy).padStart(12)}  ${num(r.validationLoss).padStart(8)}  ${num(r.trainLoss).padStart(10)}  ${r.seconds.toFixed(1).padStart(7)}${r.epsilon !== undefined ? r.epsilon.toFixed(3).padStart(9) : ''}${r.failedAttempts ? `  (${r.failedAttempts} failed attempt(s) first)` : ''}`,
        ),
    });
    const files = writeRunReport(outDir, result);
    say('');
    say(
      `Summary (${result.status}): ${result.example}, backend ${result.backend}, secure aggregation ${result.secureAggregation}`,
    );
    say(
      `  final test accuracy  ${pct(result.finalAccuracy)} on ${result.testExamples} held-out examples (loss ${num(result.finalTestLoss)})`,
    );
    say(`  best validation      ${pct(Math.max(...result.accuracyByRound))}`);
    say(
      `  mean round time      ${(result.roundSeconds.reduce((a, b) => a + b, 0) / Math.max(1, result.roundSeconds.length)).toFixed(1)} s; ${result.wallSeconds.toFixed(1)} s in all`,
    );
    if (result.reason) say(`  ended because        ${result.reason}`);
    if (result.privacy) {
      const p = result.privacy;
      say(
        `  privacy              epsilon ${p.epsilon.toFixed(3)} of ${p.epsilonBudget} spent (delta ${p.delta}) over ${p.rounds} round(s); ${p.noise} noise, multiplier ${p.noiseMultiplier.toFixed(3)}, sampling rate ${p.samplingRate}; last C ${p.clippingNorm.toFixed(3)}, ${(100 * p.clippedFraction).toFixed(0)} % clipped (noised)`,
      );
    }
    say(`  results              ${files.join(', ')}`);
    say(`  contributions        ${result.contributionMethod}`);
    for (const c of result.contributors) {
      say(
        `    client ${String(c.index).padStart(2)} ${c.id.slice(0, 16)}…  score ${c.score.toFixed(4).padStart(8)}  share ${(100 * c.share).toFixed(1).padStart(5)} %${c.freeRider ? '  (planted free-rider)' : ''}${c.attacker ? `  (planted attacker: ${c.attacker})` : ''}`,
      );
    }
    await chain?.stop();
    const payouts = paid as DemoChainResult | null;
    if (payouts) {
      say(
        `  escrow               ${payouts.chain.escrow}: budget ${payouts.chain.budgetWei} wei, paid ${payouts.chain.paidWei}, refunded ${payouts.chain.refundedWei}`,
      );
      say(`  payouts (score: ${payouts.scoreLabel})`);
      for (const c of payouts.contributors)
        say(`    ${c.id.slice(0, 16)}…  ${c.address}  score ${c.score}  ${c.payoutWei} wei`);
      say('  transactions');
      for (const t of payouts.transactions) say(`    ${t.hash}  ${t.what}`);
    }
    if (opts.json) {
      const { roundDetails: _details, ...stable } = result;
      // One entry per client: contribution score and share, plus the chain's address and payout when paid.
      const paidById = new Map((payouts?.contributors ?? []).map((c) => [c.id, c]));
      const contributors = result.contributors.map((c) => ({ ...paidById.get(c.id), ...c }));
      const chainFields = payouts ? { chain: payouts.chain } : {};
      process.stdout.write(`${JSON.stringify({ ...stable, ...chainFields, contributors })}\n`);
    }
    process.exit(result.status === 'completed' ? 0 : 1);
  });

/** --dp-epsilon / --dp-delta / --dp-noise as the federation's privacy option; throws with what was expected. */
function privacyOption(
  opts: { dpEpsilon?: string; dpDelta: string; dpNoise?: string; secureAggregation: string },
  clients: number,
): FederationPrivacy | undefined {
  if (opts.dpEpsilon === undefined) {
    if (opts.dpNoise !== undefined) throw new Error('--dp-noise needs --dp-epsilon');
    return undefined;
  }
  const epsilon = Number(opts.dpEpsilon);
  if (!(epsilon > 0 && epsilon <= 100))
    throw new Error(`--dp-epsilon must be a number in (0, 100], got ${opts.dpEpsilon}`);
  const delta = Number(opts.dpDelta);
  if (!(delta > 0 && delta < 1 / clients)) {
    throw new Error(`--dp-delta must be a number in (0, 1 / clients) = (0, ${1 / clients}), got ${opts.dpDelta}`);
  }
  const noise = (opts.dpNoise ?? (opts.secureAggregation === 'secagg' ? 'distributed' : 'central')) as
    | 'central'
    | 'distributed';
  if (noise === 'distributed' && opts.secureAggregation !== 'secagg') {
    throw new Error(
      `--dp-noise distributed adds the noise inside SecAgg+ sums and needs --secure-aggregation secagg, got ${opts.secureAggregation}; use --dp-noise central`,
    );
  }
  return { epsilon, delta, noise };
}

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exit(2);
});
