import { Command } from 'commander';
import { toTributaryError } from '../shared/errors';
import { DEFAULT_HE_PARAMETER_SET, HE_PARAMETER_SET_NAMES, type HeParameterSetName } from '../shared/he/parameters';
import { JobIdSchema } from '../shared/schemas/messages';
import { coordinatorUrlsOf } from './coordinatorUrls';
import {
  generateHeKeyHolderKeys,
  HeKeyHolder,
  type HeDecryptedEvent,
  heKeyHolderSpecFields,
  loadHeKeyHolderKeyFile,
  writeHeKeyHolderKeyFile,
} from './heKeyHolder';

/**
 * `tributary he-keyholder`: the key holder of `he` jobs (the buyer). `keygen` creates the key file and
 * prints the spec fields; `run` joins a job and decrypts its aggregates (and nothing else), keeping
 * its decrypt ledger in a file so that a restart does not let a round attempt be decrypted twice.
 */
export function heKeyholderCommand(): Command {
  const command = new Command('he-keyholder').description(
    'Hold the lattice-HE secret key of "he" jobs: decrypts only the aggregate of each round.',
  );
  command
    .command('keygen')
    .description('Create a key file (Ed25519 identity + BGV/BFV key pair) and print the job-spec fields.')
    .requiredOption('--out <path>', 'key file to create (refuses to overwrite; mode 0600)')
    .option('--parameter-set <name>', `one of ${HE_PARAMETER_SET_NAMES.join(', ')}`, DEFAULT_HE_PARAMETER_SET)
    .action(async (opts) => {
      if (!(HE_PARAMETER_SET_NAMES as readonly string[]).includes(opts.parameterSet)) {
        throw new Error(`--parameter-set must be one of ${HE_PARAMETER_SET_NAMES.join(', ')}`);
      }
      const keys = await generateHeKeyHolderKeys(opts.parameterSet as HeParameterSetName);
      writeHeKeyHolderKeyFile(opts.out, keys);
      process.stdout.write(`${JSON.stringify({ he: heKeyHolderSpecFields(keys) })}\n`);
    });
  command
    .command('run')
    .description("Join an he job as its key holder and decrypt each round's aggregate until the job ends.")
    .requiredOption(
      '--coordinator <urls>',
      'coordinator base URL, e.g. http://127.0.0.1:8080; for a cluster, its nodes comma-separated (fails over between them and follows the job to its owner) or one load-balancer URL',
    )
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--key <path>', 'key file from `tributary he-keyholder keygen`')
    .requiredOption('--ledger <path>', 'decrypt ledger file (created if absent; keep it for the job)')
    .option('--json', 'print one JSON line per event on stdout')
    .action(async (opts) => {
      const jobId = JobIdSchema.parse(opts.job);
      const keys = loadHeKeyHolderKeyFile(opts.key);
      const print = (event: string, fields: Record<string, unknown>, text: string) =>
        process.stdout.write(opts.json ? `${JSON.stringify({ event, ...fields })}\n` : `${text}\n`);
      const holder = new HeKeyHolder({
        ...coordinatorUrlsOf(String(opts.coordinator)),
        jobId,
        keys,
        ledgerPath: opts.ledger,
      });
      holder.on('joined', () =>
        print('joined', { jobId, clientId: keys.identity.clientId }, `he key holder joined ${jobId}`),
      );
      holder.on('decrypted', (e: HeDecryptedEvent) =>
        print(
          'decrypted',
          { ...e },
          `round ${e.round} attempt ${e.attempt}: decrypted the aggregate of ${e.clientCount} clients in ${e.ms} ms (${e.noiseBudgetBits} bits of noise budget left)`,
        ),
      );
      holder.on('refused', (m: string) => process.stderr.write(`refused: ${m}\n`));
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
  heKeyholderCommand()
    .parseAsync(process.argv)
    .catch((err) => {
      const e = toTributaryError(err);
      process.stderr.write(`error ${e.code}: ${e.message}\n`);
      process.exit(2);
    });
}
