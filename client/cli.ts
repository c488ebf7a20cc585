import { homedir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { loadDatasetFile } from '../shared/data/loadDataset';
import { TributaryError, toTributaryError } from '../shared/errors';
import { InputSpecSchema } from '../shared/schemas/jobSpec';
import { JobIdSchema } from '../shared/schemas/messages';
import { createBuyerClient, getJob, isApiError } from './buyer';
import { claimCommand } from './claimCli';
import { loadOrCreateIdentity, loadOrCreatePayoutKey } from './keyFile';
import { createPayoutBinding } from './payoutBinding';
import { deleteListingCommand, publishListingCommand, searchListingsCommand } from './listingCli';
import { TributaryClient, type RoundTrainedEvent } from './tributaryClient';
import { coordinatorUrlsOf } from './coordinatorUrls';

export const DEFAULT_KEY_FILE = join(homedir(), '.tributary', 'client.key');

/** Fetches the job's input spec (and whether it pays on chain) over REST, retrying while the coordinator is unreachable. */
async function fetchJobSpec(url: string, jobId: string, attempts = 20) {
  const client = createBuyerClient({ url });
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const job = await getJob(client, { jobId });
      return { input: InputSpecSchema.parse(job.spec.input), paid: job.spec.chain != null };
    } catch (err) {
      // Only an unreachable coordinator (status 0) is worth retrying; a coded answer is final.
      if (!isApiError(err) || err.status !== 0) throw err;
      lastError = err;
      await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** i)));
    }
  }
  throw new TributaryError(
    'INTERNAL',
    `Cannot reach the coordinator at ${url}: ${String((lastError as Error)?.message ?? lastError)}.`,
  );
}

/** fetchJobSpec from the first of a cluster's coordinators that answers (any node serves every read). */
async function fetchJobSpecFromAny(urls: string[], jobId: string) {
  for (const [i, url] of urls.entries()) {
    try {
      return await fetchJobSpec(url, jobId, urls.length > 1 ? 3 : 20);
    } catch (err) {
      if (i === urls.length - 1) throw err;
    }
  }
  throw new TributaryError('VALIDATION_FAILED', 'Expected at least one coordinator URL in --coordinator.');
}

/** `tributary client`: trains on a local dataset for one job until the job ends. */
export function clientCommand(): Command {
  return (
    new Command('client')
      .description(
        'Join a training job as a data provider. The dataset never leaves this machine; only model updates are sent.',
      )
      // Checked in the action, not with requiredOption: commander checks an ancestor's mandatory options
      // for its subcommands too, which would make them mandatory for publish-listing and the others.
      .option(
        '--coordinator <urls>',
        'coordinator base URL, e.g. http://127.0.0.1:8080 (required); for a cluster, its nodes comma-separated: the client fails over between them',
      )
      .option('--job <id>', 'job id to join (required)')
      .option('--data <path>', 'dataset file: CSV with a header, or JSON lines (.jsonl/.ndjson) (required)')
      .addOption(
        new Option('--format <format>', 'dataset format (default: from the file extension)').choices(['csv', 'jsonl']),
      )
      .option('--key <path>', 'Ed25519 key file, created on first run', DEFAULT_KEY_FILE)
      .option(
        '--spec-hash <0x...>',
        "the canonical hash of the job spec you agreed to (a paid job's escrow specHash, or as the buyer published it): refuse the job if the coordinator serves another (default: trust the served spec)",
      )
      .option(
        '--allow-plaintext',
        'consent to jobs in mode none, where the coordinator reads each update in the clear (default: refuse them)',
      )
      .addOption(
        new Option('--backend <name>', 'TF.js backend')
          .choices(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'])
          .default('auto'),
      )
      .option('--json', 'print one JSON line per event on stdout')
      // The marketplace: `tributary client publish-listing | search-listings | delete-listing`. Positional
      // options, so a subcommand's own --coordinator/--key/--json are not taken by this command.
      .enablePositionalOptions()
      .addCommand(publishListingCommand(DEFAULT_KEY_FILE))
      .addCommand(searchListingsCommand())
      .addCommand(deleteListingCommand(DEFAULT_KEY_FILE))
      // Paid jobs: `tributary client claim --job ID --coordinator URL --rpc-url URL`.
      .addCommand(claimCommand(DEFAULT_KEY_FILE))
      .action(async (opts, command: Command) => {
        for (const flag of ['coordinator', 'job', 'data'] as const) {
          if (opts[flag] === undefined) command.error(`error: required option '--${flag}' not specified`);
        }
        const jobId = JobIdSchema.parse(opts.job);
        if (opts.specHash !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(opts.specHash)) {
          command.error(
            `error: --spec-hash must be 0x followed by 64 hex digits, got "${String(opts.specHash).slice(0, 80)}"`,
          );
        }
        const print = (event: string, fields: Record<string, unknown>, text: string) =>
          process.stdout.write(opts.json ? `${JSON.stringify({ event, ...fields })}\n` : `${text}\n`);
        const urls = coordinatorUrlsOf(String(opts.coordinator));
        const { input, paid } = await fetchJobSpecFromAny([urls.url, ...(urls.alternativeUrls ?? [])], jobId);
        // Validate the whole dataset against the job's input spec before connecting.
        const dataset = loadDatasetFile(opts.data, input, { format: opts.format });
        const identity = loadOrCreateIdentity(opts.key);
        print(
          'ready',
          { clientId: identity.clientId, examples: dataset.count },
          `client ${identity.clientId.slice(0, 16)}… with ${dataset.count} examples`,
        );
        // Paid jobs: the payout address (same key file) travels bound to the identity. Unpaid jobs never see it.
        const payout = paid ? await createPayoutBinding(identity, loadOrCreatePayoutKey(opts.key)) : undefined;
        const client = new TributaryClient({
          ...urls,
          jobId,
          identity,
          dataset,
          backend: opts.backend,
          payout,
          ...(opts.specHash !== undefined ? { expectedSpecHash: opts.specHash } : {}),
          allowPlaintext: opts.allowPlaintext === true,
        });
        client.on('backend', (name: string) => print('backend', { backend: name }, `TF.js backend: ${name}`));
        client.on('joined', () => print('joined', { jobId }, `joined ${jobId}`));
        client.on('warning', (m: string) => process.stderr.write(`warning: ${m}\n`));
        client.on('roundTrained', (e: RoundTrainedEvent) =>
          print(
            'roundTrained',
            { ...e },
            `round ${e.round}: trained on ${e.numExamples} examples in ${e.trainSeconds.toFixed(1)} s, loss ${e.loss.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(1)} %`,
          ),
        );
        const finished = await client.run();
        print(
          'finished',
          { ...finished },
          `job ${finished.jobId} ${finished.status}${finished.reason ? `: ${finished.reason}` : ''}`,
        );
        process.exit(finished.status === 'completed' ? 0 : 1);
      })
  );
}

if (require.main === module) {
  clientCommand()
    .parseAsync(process.argv)
    .catch((err) => {
      const e = toTributaryError(err);
      process.stderr.write(`error ${e.code}: ${e.message}\n`);
      process.exit(2);
    });
}
