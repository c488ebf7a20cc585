/**
 * The `he` key holder across a cluster (issue 16 leftovers), multi-process and real: three
 * coordinator processes on one FerretDB and one redis-server, three client processes spread over the
 * nodes, and the key holder as its own process (`tributary he-keyholder run`) given every node's URL,
 * starting at a node that does not run the job. The job's owner is SIGKILLed after round 1: another
 * node takes the job over, the key holder's connection fails over and follows JOB_ELSEWHERE to the
 * new owner, registers there again, and the job completes with every round committed once and
 * decrypted by the key holder (its ledger still refuses anything a second time).
 */
import { join } from 'node:path';
import { getJob as getJobAction } from '../client/buyer';
import { generateHeKeyHolderKeys, heKeyHolderSpecFields, writeHeKeyHolderKeyFile } from '../client/heKeyHolder';
import {
  ClusterHarness,
  describeWithCluster,
  committedLines,
  createClusterJob,
  expectEachRoundCommittedOnce,
  exitOf,
  finished,
  ownerOf,
} from './support/clusterNodes';
import { spawnTs, waitFor } from './support/processes';
import { buyerClient } from './support/rest';

jest.setTimeout(600_000);

const describeIfCluster = describeWithCluster('cluster he key-holder test');

const LEASE_TTL_MS = 3_000;
const ROUNDS = 4;

describeIfCluster('the he key holder of a job in a cluster of three coordinators', () => {
  let harness: ClusterHarness;

  beforeAll(async () => {
    harness = await ClusterHarness.start(LEASE_TTL_MS);
  });
  afterAll(async () => {
    await harness?.stop();
  });

  it('follows the job to a new owner after SIGKILL of the old one, and the job completes', async () => {
    const nodes = await harness.startNodes(3);
    const keys = await generateHeKeyHolderKeys();
    const keyFile = join(harness.dir, 'he-keyholder.json');
    writeHeKeyHolderKeyFile(keyFile, keys);
    const jobId = await createClusterJob(nodes[0].url, 'cluster-he', ROUNDS, {
      secureAggregation: 'he',
      // A round the killed owner had decrypted but not committed is run again under a new attempt.
      maxRoundRetries: 2,
      he: { ...heKeyHolderSpecFields(keys), maxExampleWeight: 1000, decryptTimeoutMs: 60_000 },
    });
    const owner = (await waitFor(() => ownerOf(nodes, jobId), 30_000, 'the job to have an owner'))!;

    // The key holder knows every node and starts at one that does not run the job.
    const start = nodes.findIndex((n) => n !== owner);
    const urls = nodes.map((_, k) => nodes[(start + k) % nodes.length].url);
    const holder = harness.track(
      spawnTs('client/heKeyholderCli.ts', [
        'run',
        '--coordinator',
        urls.join(','),
        '--job',
        jobId,
        '--key',
        keyFile,
        '--ledger',
        join(harness.dir, 'he-keyholder.ledger.json'),
        '--json',
      ]),
    );
    const events = () =>
      holder.lines.flatMap((l) => {
        try {
          return [JSON.parse(l) as { event: string; round?: number; attempt?: number }];
        } catch {
          return [];
        }
      });
    await holder.waitForLine((l) => l.includes('"joined"'), 120_000);
    const clients = harness.startClients(nodes, jobId, 3, 'he');

    const getJob = () => getJobAction(buyerClient(nodes.find((n) => n !== owner)!.url), { jobId });
    await waitFor(async () => (await getJob()).currentRound >= 1, 300_000, 'round 1 to commit', 100).catch((e) => {
      for (const p of [...nodes.map((n) => n.process), ...clients, holder]) {
        console.log(`---- ${p.pid}\n${p.stderr.slice(-15).join('\n')}\n${p.lines.slice(-10).join('\n')}`);
      }
      throw e;
    });
    expect(committedLines(owner)).toBeGreaterThanOrEqual(1);
    const joinsBefore = events().filter((e) => e.event === 'joined').length;
    const before = (await getJob()).currentRound;

    owner.process.kill('SIGKILL');
    expect(await owner.process.exit).toBe('SIGKILL');
    const survivors = nodes.filter((n) => n !== owner);
    const newOwner = (await waitFor(() => ownerOf(survivors, jobId), 60_000, 'another node to take the job'))!;

    const final = await finished(newOwner.url, jobId, 'the he job to finish');
    expect(final.status).toBe('completed');
    expect(final.currentRound).toBe(ROUNDS);
    await expectEachRoundCommittedOnce(newOwner.url, jobId, ROUNDS);
    // The rounds after the kill were committed by the new owner, which needed the key holder for each.
    expect(committedLines(newOwner)).toBeGreaterThanOrEqual(ROUNDS - before);
    // The key holder registered again (at the new owner) and decrypted every round.
    expect(events().filter((e) => e.event === 'joined').length).toBeGreaterThan(joinsBefore);
    const decrypted = events().filter((e) => e.event === 'decrypted');
    expect([...new Set(decrypted.map((e) => e.round))].sort()).toEqual(Array.from({ length: ROUNDS }, (_, i) => i + 1));
    expect(await exitOf(holder)).toBe(0);
    for (const c of clients) expect(await exitOf(c)).toBe(0);
  });
});
