import { Command } from 'commander';
import { JobIdSchema } from '../shared/schemas/messages';
import { claimPayout } from './claimPayout';
import { loadOrCreatePayoutKey } from './keyFile';

/** `tributary client claim`: claims this key file's payout of a settled paid job. */
export function claimCommand(defaultKeyFile: string): Command {
  return new Command('claim')
    .description(
      'Claim your payout from a settled paid job: fetches the Merkle proof from the coordinator and sends the claim (your payout key pays the gas).',
    )
    .requiredOption('--job <id>', "the coordinator's job id")
    .requiredOption('--coordinator <url>', 'coordinator base URL, e.g. http://127.0.0.1:8080')
    .requiredOption('--rpc-url <url>', "JSON-RPC URL of the escrow's chain")
    .option('--key <path>', 'key file holding the payout key (the one used to train)', defaultKeyFile)
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      '\nExample:\n  tributary client claim --job job_abc --coordinator http://127.0.0.1:8080 --rpc-url http://127.0.0.1:8545',
    )
    .action(async (opts) => {
      const jobId = JobIdSchema.parse(opts.job);
      const wallet = loadOrCreatePayoutKey(opts.key);
      const result = await claimPayout({ coordinator: opts.coordinator, jobId, rpcUrl: opts.rpcUrl, wallet });
      const { proof, ...summary } = result;
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({
            ...summary,
            escrow: proof.escrow,
            onChainJobId: proof.onChainJobId,
            score: proof.score,
            scoreLabel: proof.scoreLabel,
          })}\n`,
        );
      } else if (result.alreadyClaimed) {
        process.stdout.write(`${result.account} already claimed ${result.amountWei} wei from job ${jobId}\n`);
      } else {
        process.stdout.write(
          `claimed ${result.amountWei} wei for ${result.account} (${proof.scoreLabel} score ${proof.score}); transaction ${result.txHash}\n`,
        );
      }
    });
}
