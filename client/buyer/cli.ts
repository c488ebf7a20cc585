import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { extname, join } from 'node:path';
import { Command, Option } from 'commander';
import { TributaryError } from '../../shared/errors';
import { API_KEY_SCOPES, type ApiKeyScope } from '../../shared/schemas/restApi';
import { loadOrCreateIdentity } from '../keyFile';
import { createApiKey, listApiKeys, revokeApiKey } from './apiKeys';
import { cancelJob } from './cancelJob';
import { type BuyerClient, createBuyerClient } from './client';
import { createJob } from './createJob';
import { downloadModel } from './downloadModel';
import { getJob } from './getJob';
import { getRounds } from './jobSettings';
import { uploadValidationSet } from './uploadValidationSet';

/*
 * `tributary buyer ...`: the buyer's side from the command line, through the buyer SDK. Every request
 * is signed with the buyer's Ed25519 key (a key file created on first run), so the jobs it creates are
 * its own. Text output, or one JSON object with --json.
 */

export const DEFAULT_BUYER_KEY_FILE = join(homedir(), '.tributary', 'buyer.key');

interface Common {
  coordinator?: string;
  key: string;
  json?: boolean;
}

function clientOf(opts: Common): BuyerClient {
  if (!opts.coordinator) throw new TributaryError('CONFIG_INVALID', '--coordinator <url> is required.');
  return createBuyerClient({ url: opts.coordinator, identity: loadOrCreateIdentity(opts.key) });
}

function print(opts: Common, value: unknown, text: string): void {
  process.stdout.write(`${opts.json ? JSON.stringify(value) : text}\n`);
}

/** A subcommand with the options every buyer command takes. */
function command(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .option('--coordinator <url>', 'coordinator base URL, e.g. http://127.0.0.1:8080 (required)')
    .option('--key <path>', 'the buyer Ed25519 key file, created on first run', DEFAULT_BUYER_KEY_FILE)
    .option('--json', 'print one JSON object');
}

const required = (value: string | undefined, flag: string): string => {
  if (!value) throw new TributaryError('CONFIG_INVALID', `${flag} is required.`);
  return value;
};

/** `tributary buyer`: create and manage jobs as their owner. */
export function buyerCommand(): Command {
  const buyer = new Command('buyer').description(
    'Create and manage training jobs as their owner: every request is signed with your key (created on first run).',
  );
  buyer.addCommand(
    command('create-job', 'Create a job from a JSON job spec; you own it.')
      .option('--spec <path>', 'the job spec (JSON file) (required)')
      .action(async (opts: Common & { spec?: string }) => {
        const spec = JSON.parse(readFileSync(required(opts.spec, '--spec'), 'utf8'));
        const job = await createJob(clientOf(opts), { spec });
        print(
          opts,
          job,
          `${job.id} ${job.status} (${job.visibility}, ${job.parameters} parameters, owner ${job.owner})`,
        );
      }),
  );
  buyer.addCommand(
    command('upload-validation-set', "Upload or replace a job's validation set (CSV or JSON lines).")
      .option('--job <id>', 'job id (required)')
      .option('--data <path>', 'the validation set (required)')
      .action(async (opts: Common & { job?: string; data?: string }) => {
        const path = required(opts.data, '--data');
        const format = ['.jsonl', '.ndjson'].includes(extname(path)) ? 'jsonl' : 'csv';
        const uploaded = await uploadValidationSet(clientOf(opts), {
          jobId: required(opts.job, '--job'),
          data: readFileSync(path),
          format,
        });
        print(opts, uploaded, `${uploaded.examples} examples (sha256 ${uploaded.sha256})`);
      }),
  );
  buyer.addCommand(
    command('status', "A job's status and its last rounds.")
      .option('--job <id>', 'job id (required)')
      .action(async (opts: Common & { job?: string }) => {
        const client = clientOf(opts);
        const jobId = required(opts.job, '--job');
        const job = await getJob(client, { jobId });
        const { rounds } = await getRounds(client, { jobId, view: 'summary', limit: 100 }).catch(() => ({
          rounds: [],
        }));
        const lines = [
          `${job.id} ${job.status}: round ${job.currentRound}/${job.rounds}${job.failureReason ? ` (${job.failureReason})` : ''}`,
        ];
        for (const r of rounds as Array<{
          round: number;
          attempt: number;
          status: string;
          metrics: Record<string, number>;
        }>) {
          const accuracy = r.metrics.validation_accuracy;
          lines.push(
            `  round ${r.round}.${r.attempt} ${r.status}${accuracy !== undefined ? ` accuracy ${(100 * accuracy).toFixed(2)} %` : ''}`,
          );
        }
        print(opts, { job, rounds }, lines.join('\n'));
      }),
  );
  buyer.addCommand(
    command('cancel', 'Cancel a pending or running job.')
      .option('--job <id>', 'job id (required)')
      .option('--reason <text>', 'why (kept in the job and its audit trail)')
      .action(async (opts: Common & { job?: string; reason?: string }) => {
        const job = await cancelJob(clientOf(opts), {
          jobId: required(opts.job, '--job'),
          ...(opts.reason ? { reason: opts.reason } : {}),
        });
        print(opts, job, `${job.id} ${job.status}: ${job.failureReason}`);
      }),
  );
  buyer.addCommand(
    command('download-model', "Download a job's global model (Tributary's codec, hash-checked).")
      .option('--job <id>', 'job id (required)')
      .option('--round <n>', 'round (default: the current one)')
      .option('--out <path>', 'where to write it (required)')
      .action(async (opts: Common & { job?: string; round?: string; out?: string }) => {
        const model = await downloadModel(clientOf(opts), {
          jobId: required(opts.job, '--job'),
          ...(opts.round !== undefined ? { round: Number(opts.round) } : {}),
        });
        writeFileSync(required(opts.out, '--out'), model.bytes);
        print(
          opts,
          { round: model.round, modelHash: model.modelHash, bytes: model.bytes.length },
          `round ${model.round}: ${model.bytes.length} bytes, sha256 ${model.modelHash}`,
        );
      }),
  );
  const apiKey = new Command('api-key').description('Create, list and revoke API keys for machines.');
  apiKey.addCommand(
    command('create', 'Create an API key (its token is printed once).')
      .option('--name <name>', 'a label (required)')
      .addOption(new Option('--scopes <list>', `comma-separated: ${API_KEY_SCOPES.join(', ')}`).default('jobs:read'))
      .option('--expires-in-days <n>', 'lifetime in days (default 30, at most 365)', '30')
      .action(async (opts: Common & { name?: string; scopes: string; expiresInDays: string }) => {
        const created = await createApiKey(clientOf(opts), {
          name: required(opts.name, '--name'),
          scopes: opts.scopes.split(',').map((s) => s.trim()) as ApiKeyScope[],
          expiresInSeconds: Math.round(Number(opts.expiresInDays) * 86_400),
        });
        print(
          opts,
          created,
          `${created.id} ${created.scopes.join(',')} until ${created.expiresAt}\n${created.key}\n(the key is shown once)`,
        );
      }),
  );
  apiKey.addCommand(
    command('list', 'Your API keys (never their tokens).').action(async (opts: Common) => {
      const keys = await listApiKeys(clientOf(opts));
      print(
        opts,
        keys,
        keys
          .map((k) => `${k.id} ${k.name} ${k.scopes.join(',')} until ${k.expiresAt}${k.revokedAt ? ' (revoked)' : ''}`)
          .join('\n') || '(none)',
      );
    }),
  );
  apiKey.addCommand(
    command('revoke', 'Revoke one of your API keys.')
      .option('--id <id>', 'key id (required)')
      .action(async (opts: Common & { id?: string }) => {
        const revoked = await revokeApiKey(clientOf(opts), { id: required(opts.id, '--id') });
        print(opts, revoked, `${revoked.id} revoked`);
      }),
  );
  buyer.addCommand(apiKey);
  return buyer;
}
