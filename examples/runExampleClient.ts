import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { loadOrCreateIdentity, loadOrCreatePayoutKey } from '../client/keyFile';
import { createPayoutBinding } from '../client/payoutBinding';
import { AttackerClient, createResearchClient } from '../client/plantedClient';
import type { RoundTrainedEvent } from '../client/tributaryClient';
import { PLANTED_BEHAVIOURS, type PlantedBehaviour, SOLO_ATTACKS, type SoloAttack } from '../client/plantedBehaviour';
import { datasetToCsv } from '../shared/data/csvWriter';
import { loadDatasetFile } from '../shared/data/loadDataset';
import { toTributaryError } from '../shared/errors';
import type { BackendPreference } from '../shared/ml/backend';
import type { ExampleTask } from './exampleTask';
import { parsePartition } from './partitionOption';

/**
 * A simulated data provider for an example: it materialises its own share of the example's data
 * as a CSV file (as a real provider would have), loads it back through the CSV loader validated
 * against the job's input spec, and trains with the library client. Prints one JSON line per event.
 */
export function runExampleClient(task: ExampleTask): void {
  const program = new Command(`${task.name}-client`)
    .requiredOption('--coordinator <url>')
    .requiredOption('--job <id>')
    .requiredOption('--index <i>', "this client's index", Number)
    .requiredOption('--clients <n>', 'number of clients', Number)
    .requiredOption('--partition <p>')
    .requiredOption('--seed <n>', 'partition seed', Number)
    .requiredOption('--data-dir <dir>')
    .option('--backend <name>', 'TF.js backend', 'auto')
    .option(
      '--planted <behaviour>',
      `research only: misbehave instead of training honestly (${PLANTED_BEHAVIOURS.join(' | ')})`,
    )
    .option('--attack <name>', `research only: play this robustness attack (${SOLO_ATTACKS.join(' | ')})`)
    .option('--allow-plaintext', 'consent to a job in mode none (the coordinator reads each update)')
    .action(async (opts) => {
      const print = (event: string, fields: object) =>
        process.stdout.write(`${JSON.stringify({ event, index: opts.index, ...fields })}\n`);
      const options = { clients: opts.clients, rounds: 0, partition: parsePartition(opts.partition), seed: opts.seed };
      const file = join(opts.dataDir, `client-${opts.index}.csv`);
      writeFileSync(file, datasetToCsv(task.clientData(options, opts.index), task.input));
      const dataset = loadDatasetFile(file, task.input);
      const keyFile = join(opts.dataDir, `client-${opts.index}.key`);
      const identity = loadOrCreateIdentity(keyFile);
      // The payout address travels bound to the identity; paid (chain) jobs require it.
      const payout = await createPayoutBinding(identity, loadOrCreatePayoutKey(keyFile));
      if (opts.planted !== undefined && !(PLANTED_BEHAVIOURS as readonly string[]).includes(opts.planted))
        throw new Error(`--planted must be one of ${PLANTED_BEHAVIOURS.join(', ')}`);
      const plantedBehaviour = opts.planted as PlantedBehaviour | undefined;
      if (opts.attack !== undefined && !(SOLO_ATTACKS as readonly string[]).includes(opts.attack))
        throw new Error(`--attack must be one of ${SOLO_ATTACKS.join(', ')}`);
      const clientOptions = {
        url: opts.coordinator,
        jobId: opts.job,
        identity,
        dataset,
        backend: opts.backend as BackendPreference,
        payout,
        allowPlaintext: opts.allowPlaintext === true,
      };
      const client =
        opts.attack !== undefined
          ? new AttackerClient(clientOptions, opts.attack as SoloAttack, {
              numClasses: task.input.numClasses,
              seed: opts.seed * 1000 + opts.index,
            })
          : createResearchClient(clientOptions, plantedBehaviour);
      client.on('backend', (backend: string) => print('backend', { backend, examples: dataset.count }));
      client.on('roundTrained', (e: RoundTrainedEvent) => print('roundTrained', e));
      client.on('warning', (message: string) => process.stderr.write(`client ${opts.index}: ${message}\n`));
      const finished = await client.run();
      print('finished', finished);
      process.exit(finished.status === 'completed' ? 0 : 1);
    });
  program.parseAsync(process.argv).catch((err) => {
    const e = toTributaryError(err);
    process.stderr.write(`client error ${e.code}: ${e.message}\n`);
    process.exit(2);
  });
}
