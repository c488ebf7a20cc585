/**
 * The data marketplace end to end over real sockets on 127.0.0.1: providers derive listings from
 * their CSV files and publish them signed; a buyer searches, creates an invite-only job; an
 * uninvited provider and a stranger are refused at job:join with JOB_ACCESS_DENIED and change
 * nothing; the invited providers train; the buyer downloads the model (model.json + weights.bin).
 * An open job admits exactly the providers with a matching listing; an invite-only paillier job's
 * key holder joins without a listing. Then the CLI: publish-listing, search-listings, delete-listing.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields } from '../client/keyHolder';
import { loadOrCreateIdentity } from '../client/keyFile';
import { describeDatasetFile, deleteListing, getListing, publishListing, searchListings } from '../client/listings';
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { decodeTensors } from '../shared/codec/modelCodec';
import { loadDatasetFile } from '../shared/data/loadDataset';
import { generateIdentity, type Identity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import type { PublishedListing } from '../shared/schemas/listing';
import { codeOfAsync } from './support/codeOf';
import { spawnTs } from './support/processes';
import { createJob } from './support/rest';
import { writeSeparableCsv } from './support/syntheticCsv';

jest.setTimeout(300_000);

const FEATURES = 8;

interface Provider {
  name: string;
  identity: Identity;
  csv: string;
  listing?: PublishedListing;
}

describe('data marketplace end to end', () => {
  let coordinator: Coordinator;
  const dir = mkdtempSync(join(tmpdir(), 'trib-market-'));
  const clients: TributaryClient[] = [];
  const providers: Provider[] = ['alice', 'bob', 'carol', 'dave'].map((name, i) => {
    const csv = join(dir, `${name}.csv`);
    writeSeparableCsv(csv, 100 + 20 * i, FEATURES, 31 + i);
    return { name, identity: generateIdentity(), csv };
  });
  const [alice, bob, carol, dave] = providers;

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'error', backend: 'cpu' });
    // Providers describe their data with the client's loaders and publish signed listings.
    for (const p of providers) {
      const { schema, rows } = describeDatasetFile(p.csv);
      p.listing = await publishListing({
        url: coordinator.url,
        identity: p.identity,
        listing: {
          name: `${p.name}'s sensor readings`,
          schema,
          rows,
          tags: p === dave ? ['synthetic', 'other'] : ['synthetic', 'sensors'],
          pricePerRoundWei: '1000',
        },
      });
    }
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  const client = (p: Provider, jobId: string) => {
    const c = new TributaryClient({
      url: coordinator.url,
      jobId,
      identity: p.identity,
      backend: 'cpu',
      allowPlaintext: true, // these jobs run in mode none
      dataset: loadDatasetFile(p.csv, describeDatasetFile(p.csv).schema),
    });
    clients.push(c);
    return c;
  };

  it('providers publish, a buyer searches and runs an invite-only job that refuses everyone else', async () => {
    // 1. The providers' listings (published in beforeAll) describe their CSV files as the loaders read them.
    for (const [i, p] of providers.entries()) {
      expect(p.listing!.listing.schema).toEqual({
        shape: [FEATURES],
        numClasses: 2,
        labelColumn: 'label',
        featureColumns: Array.from({ length: FEATURES }, (_, k) => `f${k}`),
      });
      expect(p.listing!.listing.rows).toBe(100 + 20 * i);
      expect(p.listing!.listing.provider).toBe(p.identity.clientId);
    }

    // 2. The buyer searches by tags, schema and size (the client re-verifies every signature).
    const found = await searchListings(coordinator.url, {
      tags: ['sensors'],
      shape: [FEATURES],
      numClasses: 2,
      minRows: 100,
    });
    expect(found.map((l) => l.id).sort()).toEqual([alice, bob, carol].map((p) => p.listing!.id).sort());
    expect(await searchListings(coordinator.url, { tags: ['sensors'], minRows: 130 })).toHaveLength(1); // carol: 140 rows
    expect(await searchListings(coordinator.url, { shape: [28, 28, 1] })).toEqual([]);
    expect((await getListing(coordinator.url, dave.listing!.id)).listing.tags).toEqual(['synthetic', 'other']);
    // What a listing reveals: the signed description and nothing else.
    const raw = (await (await fetch(`${coordinator.url}/v1/listings/${alice.listing!.id}`)).json()) as Record<
      string,
      unknown
    >;
    expect(Object.keys(raw).sort()).toEqual(['id', 'listing', 'publishedAt', 'signature']);
    expect(Object.keys(raw.listing as object).sort()).toEqual([
      'createdAt',
      'description',
      'name',
      'nonce',
      'pricePerRoundWei',
      'provider',
      'rows',
      'schema',
      'tags',
    ]);
    const badQuery = await fetch(`${coordinator.url}/v1/listings?shape=eight`);
    expect(badQuery.status).toBe(400);
    expect(((await badQuery.json()) as { error: { code: string } }).error.code).toBe('VALIDATION_FAILED');

    // 3. An invite naming a listing that does not exist is refused and creates nothing.
    const base: JobSpecInput = {
      name: 'marketplace buyer job',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
      input: { shape: [FEATURES], numClasses: 2 },
      rounds: 2,
      minClients: 3,
      localEpochs: 1,
      batchSize: 16,
      learningRate: 0.1,
      roundDeadlineMs: 120_000,
      quorumTimeoutMs: 120_000,
      secureAggregation: 'none',
      seed: 3,
    };
    const jobsBefore = (await coordinator.store.listJobs()).length;
    const refusal = await createJob(coordinator.url, {
      ...base,
      access: { mode: 'invite', listings: [alice.listing!.id, 'lst_000000000000000000000000'] },
    }).catch((e: unknown) => e);
    expect(refusal).toMatchObject({ code: 'JOB_SPEC_INVALID', status: 400 });
    expect((refusal as Error).message).toContain('lst_000000000000000000000000');
    expect(await coordinator.store.listJobs()).toHaveLength(jobsBefore);

    const jobId = await createJob(coordinator.url, {
      ...base,
      access: { mode: 'invite', listings: found.map((l) => l.id) },
    });

    // 4. Dave (a listed provider, not invited) and a stranger are refused at job:join; nothing changes.
    const stranger: Provider = { name: 'stranger', identity: generateIdentity(), csv: alice.csv };
    for (const outsider of [dave, stranger]) {
      expect(await codeOfAsync(() => client(outsider, jobId).run())).toBe('JOB_ACCESS_DENIED');
      expect(coordinator.directory.hasJoined(outsider.identity.clientId, jobId)).toBe(false);
    }
    expect(await coordinator.store.listParticipants(jobId)).toEqual([]);
    expect((await coordinator.store.getJob(jobId))!.currentRound).toBe(0);

    // 5. The invited providers train.
    const runs = [alice, bob, carol].map((p) => client(p, jobId).run());
    const finished = await Promise.all(runs);
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed', 'completed']);
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('completed');
    expect(job.currentRound).toBe(2);
    const participants = (await coordinator.store.listParticipants(jobId)).map((p) => p.clientId).sort();
    expect(participants).toEqual([alice, bob, carol].map((p) => p.identity.clientId).sort());
    for (const round of (await coordinator.store.listRounds(jobId)).filter((r) => r.status === 'completed')) {
      expect(round.participants).not.toContain(dave.identity.clientId);
    }

    // 6. The buyer downloads the trained model in TF.js format: exactly the final checkpoint's weights.
    const modelJson = (await (await fetch(`${coordinator.url}/v1/jobs/${jobId}/model/model.json`)).json()) as {
      weightsManifest: Array<{ weights: Array<{ shape: number[] }> }>;
      tributary: { round: number; modelHash: string };
    };
    expect(modelJson.tributary).toEqual({ jobId, round: 2, modelHash: job.modelHash });
    const weightsBin = Buffer.from(
      await (await fetch(`${coordinator.url}/v1/jobs/${jobId}/model/weights.bin`)).arrayBuffer(),
    );
    const parameters = modelJson.weightsManifest[0].weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
    expect(weightsBin.byteLength).toBe(4 * parameters);
    const checkpoint = decodeTensors(Buffer.from((await coordinator.store.loadCheckpoint(jobId, 2))!.weights));
    const expected = Buffer.concat(
      checkpoint.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
    );
    expect(weightsBin.equals(expected)).toBe(true);
    const initial = decodeTensors(Buffer.from((await coordinator.store.loadCheckpoint(jobId, 0))!.weights));
    expect(checkpoint.some((t, i) => t.data.some((v, j) => v !== initial[i].data[j]))).toBe(true);
  });

  it('an open job admits any provider whose listing matches its input spec, and no one else', async () => {
    const jobId = await createJob(coordinator.url, {
      name: 'open job',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
      input: { shape: [FEATURES], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      batchSize: 32,
      roundDeadlineMs: 120_000,
      quorumTimeoutMs: 120_000,
      secureAggregation: 'none',
      access: { mode: 'open' },
    });
    // A provider whose only listing has another schema, and a client with no listing at all.
    const mismatched = generateIdentity();
    await publishListing({
      url: coordinator.url,
      identity: mismatched,
      listing: { name: 'images', schema: { shape: [28, 28, 1], numClasses: 10 }, rows: 500, pricePerRoundWei: '1' },
    });
    for (const identity of [mismatched, generateIdentity()]) {
      expect(await codeOfAsync(() => client({ name: 'outsider', identity, csv: alice.csv }, jobId).run())).toBe(
        'JOB_ACCESS_DENIED',
      );
    }
    // Dave was not invited to the first job, but his listing matches this one.
    const finished = await Promise.all([dave, alice].map((p) => client(p, jobId).run()));
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed']);
    expect((await coordinator.store.listParticipants(jobId)).map((p) => p.clientId).sort()).toEqual(
      [dave, alice].map((p) => p.identity.clientId).sort(),
    );
  });

  it('an invite-only paillier job: its key holder needs no listing; providers are still checked', async () => {
    const keys = await generateKeyHolderKeys(1024);
    const jobId = await createJob(coordinator.url, {
      name: 'paillier invite',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [FEATURES], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      batchSize: 32,
      roundDeadlineMs: 120_000,
      quorumTimeoutMs: 120_000,
      secureAggregation: 'paillier',
      paillier: keyHolderSpecFields(keys),
      access: { mode: 'invite', listings: [alice.listing!.id, bob.listing!.id] },
    });
    const holder = new KeyHolder({ url: coordinator.url, jobId, keys });
    const decrypted: unknown[] = [];
    holder.on('decrypted', (e) => decrypted.push(e));
    const holderRun = holder.run();
    expect(await codeOfAsync(() => client(carol, jobId).run())).toBe('JOB_ACCESS_DENIED');
    const finished = await Promise.all([alice, bob].map((p) => client(p, jobId).run()));
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed']);
    expect((await holderRun).status).toBe('completed');
    expect(decrypted).toHaveLength(1);
    expect((await coordinator.store.listParticipants(jobId)).map((p) => p.clientId).sort()).toEqual(
      [alice, bob].map((p) => p.identity.clientId).sort(),
    );
  });

  it("refuses a tampered listing and a delete by someone else over REST, and deletes at the provider's request", async () => {
    const provider = generateIdentity();
    const published = await publishListing({
      url: coordinator.url,
      identity: provider,
      listing: { name: 'to delete', schema: { shape: [2], numClasses: 2 }, rows: 10, pricePerRoundWei: '0' },
    });
    expect(await codeOfAsync(() => deleteListing(coordinator.url, generateIdentity(), published.id))).toBe(
      'LISTING_NOT_PROVIDER',
    );
    const tampered = { listing: { ...published.listing, rows: 10_000 }, signature: published.signature };
    const res = await fetch(`${coordinator.url}/v1/listings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(tampered),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('LISTING_SIGNATURE_INVALID');
    const replay = await fetch(`${coordinator.url}/v1/listings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ listing: published.listing, signature: published.signature }),
    });
    expect(replay.status).toBe(409);
    // A listing body past the listing routes' 1 MiB limit is refused with that limit in the message.
    const huge = await fetch(`${coordinator.url}/v1/listings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        listing: { ...published.listing, description: 'x'.repeat(1024 * 1024) },
        signature: published.signature,
      }),
    });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      message: 'The body exceeds 1048576 bytes.',
    });
    await deleteListing(coordinator.url, provider, published.id);
    expect(await codeOfAsync(() => getListing(coordinator.url, published.id))).toBe('LISTING_NOT_FOUND');
  });

  it('the CLI publishes a listing derived from a dataset, finds it, and deletes it', async () => {
    const key = join(dir, 'cli.key');
    const cli = async (args: string[]) => {
      const p = spawnTs('cli/tributary.ts', ['client', ...args, '--coordinator', coordinator.url]);
      const code = await p.exit;
      return { code, stdout: p.lines.join('\n'), stderr: p.stderr.join('\n') };
    };
    const published = await cli([
      'publish-listing',
      '--data',
      carol.csv,
      '--name',
      'cli listing',
      '--tags',
      'cli-test,sensors',
      '--price-wei',
      '42',
      '--key',
      key,
      '--json',
    ]);
    expect(published.stderr).toBe('');
    expect(published.code).toBe(0);
    const listing = JSON.parse(published.stdout) as PublishedListing;
    expect(listing.listing).toMatchObject({
      name: 'cli listing',
      rows: 140,
      tags: ['cli-test', 'sensors'],
      pricePerRoundWei: '42',
    });
    expect(listing.listing.schema.shape).toEqual([FEATURES]);

    const search = await cli(['search-listings', '--tags', 'cli-test', '--shape', String(FEATURES), '--json']);
    expect(search.code).toBe(0);
    expect((JSON.parse(search.stdout) as { listings: PublishedListing[] }).listings.map((l) => l.id)).toEqual([
      listing.id,
    ]);

    const bad = await cli(['publish-listing', '--data', carol.csv, '--name', 'x', '--price-wei', '-5', '--key', key]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error VALIDATION_FAILED: .*pricePerRoundWei/);

    // A description file instead of flags; --data then only checks the file's schema and counts the rows.
    const file = join(dir, 'listing.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'from file',
        schema: { shape: [FEATURES], numClasses: 2 },
        rows: 1,
        tags: ['cli-test'],
        pricePerRoundWei: '7',
      }),
    );
    const fromFile = await cli(['publish-listing', '--file', file, '--data', alice.csv, '--key', key]);
    expect(fromFile.code).toBe(0);
    expect(fromFile.stdout).toMatch(/^published lst_[0-9a-f]{24} {2}from file {2}rows=100 /);
    const both = await searchListings(coordinator.url, { tags: ['cli-test'] });
    expect(both.map((l) => l.listing.name).sort()).toEqual(['cli listing', 'from file']);
    await deleteListing(
      coordinator.url,
      loadOrCreateIdentity(key),
      both.find((l) => l.listing.name === 'from file')!.id,
    );

    const deleted = await cli(['delete-listing', '--id', listing.id, '--key', key]);
    expect(deleted.code).toBe(0);
    expect(await searchListings(coordinator.url, { tags: ['cli-test'] })).toEqual([]);
  });
});
