/**
 * A load-generator process for the cluster bench's idle step (bench/cluster.bench.ts): opens `count`
 * authenticated idle clients to one coordinator URL (bench/scale.bench.ts connectAll), reports once
 * on IPC, answers {type: 'count'} with how many are still connected, and exits when its parent says
 * {type: 'stop'} or goes away. One process per node, so that each holds its own clients' descriptors
 * (a process's open-file limit, not the nodes', would otherwise bound the total).
 */
import { connectAll } from './scale.bench';

async function main(): Promise<void> {
  const [url, countText, deadlineText] = process.argv.slice(2);
  const count = Number(countText);
  const deadline = Number(deadlineText);
  const result = await connectAll(url, count, 32, deadline);
  const stop = () => {
    for (const s of result.sockets) s.disconnect();
    process.exit(0);
  };
  process.on('disconnect', stop);
  process.on('message', (msg: { type?: string }) => {
    if (msg?.type === 'count')
      process.send?.({ type: 'count', connected: result.sockets.filter((s) => s.connected).length });
    if (msg?.type === 'stop') stop();
  });
  process.send?.({
    type: 'connected',
    connected: result.connected,
    failed: result.failed,
    errors: result.errors,
    connectSeconds: result.connectSeconds,
  });
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`idle load generator failed: ${String((err as Error)?.stack ?? err)}\n`);
    process.exit(2);
  });
}
