import { Command, Option } from 'commander';
import { toTributaryError } from '../shared/errors';
import { CONFIG_ENV } from './config';
import { startCoordinator } from './server';

/** `tributary coordinator`: runs the coordinator until SIGINT/SIGTERM. */
export function coordinatorCommand(): Command {
  return new Command('coordinator')
    .description('Run the Tributary coordinator (REST under /v1 and socket.io on the same port).')
    .option('--host <host>', 'interface to listen on (default 127.0.0.1)')
    .option('--port <port>', 'TCP port, 0 for any free port (default 8080)')
    .option('--mongodb-uri <uri>', 'MongoDB connection string; omit for the embedded in-memory store')
    .option('--db-name <name>', 'database name inside the MongoDB URI (default tributary)')
    .option(
      '--rpc-url <url>',
      'JSON-RPC URL of the chain holding job escrows (the key comes from TRIBUTARY_COORDINATOR_KEY only)',
    )
    .addOption(
      new Option('--backend <name>', 'TF.js backend for evaluation').choices([
        'auto',
        'tensorflow-gpu',
        'tensorflow',
        'wasm',
        'cpu',
      ]),
    )
    .addOption(
      new Option('--log-level <level>', 'log level (logs go to stderr)').choices(['silent', 'error', 'info', 'debug']),
    )
    .option(
      '--transcript-key <path>',
      "key file of the coordinator's Ed25519 transcript key, created when absent (default: a new key each start)",
    )
    .option('--cluster', 'run as one node of a cluster (job leases in MongoDB; needs --mongodb-uri)')
    .option('--redis-url <url>', "Redis for the cluster's socket.io adapter and replay cache (implies --cluster)")
    .option('--lease-ttl-ms <ms>', 'cluster: how long a job lease lasts without a heartbeat (default 10000)')
    .option('--public-url <url>', 'the URL clients reach this node at (a cluster redirects clients to it)')
    .option('--json', 'print one JSON line {"url","port","store","backend"} on stdout once listening')
    .addHelpText(
      'after',
      `\nEnvironment (flags win): ${Object.keys(CONFIG_ENV).join(', ')}.\n\nExample:\n  tributary coordinator --port 8080 --mongodb-uri mongodb://127.0.0.1:27017`,
    )
    .action(async (opts) => {
      const coordinator = await startCoordinator({
        host: opts.host,
        port: opts.port,
        mongodbUri: opts.mongodbUri,
        dbName: opts.dbName,
        rpcUrl: opts.rpcUrl,
        backend: opts.backend,
        logLevel: opts.logLevel,
        transcriptKeyFile: opts.transcriptKey,
        cluster: opts.cluster,
        redisUrl: opts.redisUrl,
        leaseTtlMs: opts.leaseTtlMs,
        publicUrl: opts.publicUrl,
      });
      const info = {
        url: coordinator.url,
        port: coordinator.port,
        store: coordinator.store.kind,
        backend: coordinator.backend,
      };
      if (opts.json) process.stdout.write(`${JSON.stringify(info)}\n`);
      else
        process.stdout.write(
          `Tributary coordinator on ${info.url} (store: ${info.store}, TF.js backend: ${info.backend})\n`,
        );
      const shutdown = () => {
        coordinator.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });
}

export function reportAndExit(err: unknown): never {
  const e = toTributaryError(err);
  process.stderr.write(`error ${e.code}: ${e.message}\n`);
  if (e.code === 'INTERNAL' && e.cause) process.stderr.write(`${String((e.cause as Error).stack ?? e.cause)}\n`);
  process.exit(2);
}

if (require.main === module) {
  coordinatorCommand().parseAsync(process.argv).catch(reportAndExit);
}
