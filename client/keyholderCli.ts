import { Command } from 'commander';
import { toTributaryError } from '../shared/errors';
import { JobIdSchema } from '../shared/schemas/messages';
import { coordinatorUrlsOf } from './coordinatorUrls';
import {
  KeyHolder,
  generateKeyHolderKeys,
  keyHolderSpecFields,
  loadKeyHolderKeyFile,
  writeKeyHolderKeyFile,
  type DecryptedEvent,
  type RefusedEvent,
} from './keyHolder';

/**
 * `tributary keyholder`: the key holder of `paillier` jobs (the buyer). `keygen` creates the key file
 * and prints the spec fields; `run` joins a job and decrypts its aggregates (and nothing else).
 */
export function keyholderCommand(): Command {
  const command = new Command('keyholder').description(
    'Hold the Paillier private key of "paillier" jobs: decrypts only the aggregate of each round.',
  );
  command
    .command('keygen')
    .description('Create a key-holder key file (Ed25519 identity + Paillier key pair) and print the job-spec fields.')
    .requiredOption('--out <path>', 'key file to create (refuses to overwrite; mode 0600)')
    .option('--bits <n>', 'Paillier modulus size in bits (1024 for tests only)', '2048')
    .action(async (opts) => {
      const keys = await generateKeyHolderKeys(Number(opts.bits));
      writeKeyHolderKeyFile(opts.out, keys);
      process.stdout.write(`${JSON.stringify({ paillier: keyHolderSpecFields(keys) }, null, 2)}\n`);
    });
  command
    .command('run')
    .description("Join a paillier job as its key holder and decrypt each round's aggregate until the job ends.")
    .requiredOption(
      '--coordinator <urls>',
      'coordinator base URL, e.g. http://127.0.0.1:8080; for a cluster, its nodes comma-separated (fails over between them)',
    )
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--key <path>', 'key file from `tributary keyholder keygen`')
    .option(
      '--state <path>',
      'ledger of the round attempts already decrypted, kept across restarts (default: <key>.<job>.ledger.json)',
    )
    .option('--threads <n>', 'decryption worker threads', '1')
    .option('--json', 'print one JSON line per event on stdout')
    .action(async (opts) => {
      const jobId = JobIdSchema.parse(opts.job);
      const keys = loadKeyHolderKeyFile(opts.key);
      const print = (event: string, fields: Record<string, unknown>, text: string) =>
        process.stdout.write(opts.json ? `${JSON.stringify({ event, ...fields })}\n` : `${text}\n`);
      const stateFile: string = opts.state ?? `${opts.key}.${jobId}.ledger.json`;
      const holder = new KeyHolder({
        ...coordinatorUrlsOf(String(opts.coordinator)),
        jobId,
        keys,
        stateFile,
        threads: Number(opts.threads),
      });
      holder.on('joined', () =>
        print('joined', { jobId, clientId: keys.identity.clientId }, `key holder joined ${jobId}`),
      );
      holder.on('decrypted', (e: DecryptedEvent) =>
        print(
          'decrypted',
          { ...e },
          `round ${e.round} attempt ${e.attempt}: decrypted the aggregate of ${e.clientCount} clients in ${e.ms} ms`,
        ),
      );
      holder.on('refused', (e: RefusedEvent) =>
        opts.json
          ? print('refused', { ...e }, '')
          : process.stderr.write(`refused round ${e.round} attempt ${e.attempt} (${e.reason}): ${e.message}\n`),
      );
      holder.on('warning', (m: string) => process.stderr.write(`warning: ${m}\n`));
      const finished = await holder.run();
      print(
        'finished',
        { ...finished },
        `job ${finished.jobId} ${finished.status}${finished.reason ? `: ${finished.reason}` : ''}`,
      );
      process.exit(finished.status === 'completed' ? 0 : 1);
    });
  return command;
}

if (require.main === module) {
  keyholderCommand()
    .parseAsync(process.argv)
    .catch((err) => {
      const e = toTributaryError(err);
      process.stderr.write(`error ${e.code}: ${e.message}\n`);
      process.exit(2);
    });
}
