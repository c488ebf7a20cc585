import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { auditJob } from '../client/audit/auditJob';
import { formatAuditReport } from '../client/audit/auditReport';
import { formatFromPath } from '../shared/data/loadDataset';
import { TributaryError, toTributaryError } from '../shared/errors';
import { type BackendPreference, selectBackend } from '../shared/ml/backend';
import { JobIdSchema } from '../shared/schemas/messages';

/** Exit codes of `tributary audit`. */
export const AUDIT_EXIT = { clean: 0, diverged: 1, error: 2 } as const;

/**
 * `tributary audit`: the buyer's check of a job's signed transcripts, models, scores and payout root
 * against the chain and its own validation set (client/audit/auditJob.ts). Exit 0 clean, 1 diverged, 2 error.
 */
export function auditCommand(): Command {
  return new Command('audit')
    .description(
      "Audit a job as its buyer: verify the coordinator's signed round transcripts against the chain, the models it serves and your own validation set, recompute every round's scores and the payout root, and report the first divergence. Exit code 0 clean, 1 diverged, 2 error.",
    )
    .requiredOption('--job <id>', "the coordinator's job id")
    .requiredOption('--coordinator <url>', 'coordinator base URL, e.g. http://127.0.0.1:8080')
    .requiredOption('--validation-set <path>', 'your validation set: the file you uploaded (CSV or JSON lines)')
    .option('--rpc-url <url>', "JSON-RPC URL of the escrow's chain (required for a paid job)")
    .addOption(
      new Option('--format <format>', 'validation set format (default: from the extension)').choices(['csv', 'jsonl']),
    )
    .option(
      '--coordinator-key <hex>',
      "pin the coordinator's Ed25519 transcript key: every transcript must be signed by it",
    )
    .option(
      '--tolerance <x>',
      'largest accepted difference of a reported metric from your evaluation (absolute, plus as much relative)',
      '1e-4',
    )
    .addOption(
      new Option('--backend <name>', 'TF.js backend for evaluating the models')
        .choices(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'])
        .default('auto'),
    )
    .option('--json', 'print the report as one JSON object on stdout')
    .addHelpText(
      'after',
      '\nExample:\n  tributary audit --job job_abc --coordinator http://127.0.0.1:8080 --rpc-url http://127.0.0.1:8545 --validation-set validation.csv',
    )
    .action(async (opts) => {
      try {
        const jobId = JobIdSchema.parse(opts.job);
        const tolerance = Number(opts.tolerance);
        if (!(tolerance >= 0) || !Number.isFinite(tolerance))
          throw new TributaryError('CONFIG_INVALID', `--tolerance must be a number >= 0, got "${opts.tolerance}".`);
        let text: string;
        try {
          text = readFileSync(opts.validationSet, 'utf8');
        } catch (err) {
          throw new TributaryError(
            'CONFIG_INVALID',
            `Cannot read --validation-set ${opts.validationSet}: ${(err as Error).message}`,
          );
        }
        await selectBackend(opts.backend as BackendPreference);
        const report = await auditJob({
          coordinator: opts.coordinator,
          jobId,
          rpcUrl: opts.rpcUrl,
          validationSet: { text, format: opts.format ?? formatFromPath(opts.validationSet) },
          coordinatorKey: opts.coordinatorKey,
          tolerance,
        });
        process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : `${formatAuditReport(report)}\n`);
        process.exitCode = report.clean ? AUDIT_EXIT.clean : AUDIT_EXIT.diverged;
      } catch (err) {
        const e = toTributaryError(err);
        if (opts.json) process.stdout.write(`${JSON.stringify({ error: e.toWire() })}\n`);
        process.stderr.write(`error ${e.code}: ${e.message}\n`);
        process.exitCode = AUDIT_EXIT.error;
      }
    });
}
