import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateIdentity } from '../shared/identity/keyPair';
import { signListing } from '../shared/identity/listingSignature';
import { listingIdOf } from '../shared/schemas/listing';
import { codeOf, codeOfAsync } from '../test/support/codeOf';
import { describeDatasetFile, getListing, searchListings } from './listings';

const dir = mkdtempSync(join(tmpdir(), 'trib-listings-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('describeDatasetFile', () => {
  it("derives a CSV dataset's schema and row count with the client's loaders", () => {
    const csv = file('a.csv', 'temp,wind,id,label\n1,2,3,0\n4,5,6,3\n7,8,9,1\n');
    expect(describeDatasetFile(csv)).toEqual({
      schema: { shape: [3], featureColumns: ['temp', 'wind', 'id'], labelColumn: 'label', numClasses: 4 },
      rows: 3,
    });
    expect(describeDatasetFile(csv, { featureColumns: ['wind', 'temp'], numClasses: 10 }).schema).toEqual({
      shape: [2],
      featureColumns: ['wind', 'temp'],
      labelColumn: 'label',
      numClasses: 10,
    });
    const weather = file('w.csv', 'temp,weather\n1,0\n2,0\n');
    expect(describeDatasetFile(weather, { labelColumn: 'weather' })).toEqual({
      schema: { shape: [1], featureColumns: ['temp'], labelColumn: 'weather', numClasses: 2 },
      rows: 2,
    });
  });

  it('names what is missing or wrong', () => {
    expect(codeOf(() => describeDatasetFile(file('b.csv', 'x,y\n1,0\n')))).toBe('DATA_COLUMNS_MISMATCH');
    expect(codeOf(() => describeDatasetFile(file('c.csv', 'x,label\n1,abc\n')))).toBe('DATA_LABEL_OUT_OF_RANGE');
    expect(codeOf(() => describeDatasetFile(file('d.csv', 'x,label\n1,0\n'), { numClasses: 1 }))).toBe(
      'VALIDATION_FAILED',
    );
    expect(codeOf(() => describeDatasetFile(join(dir, 'missing.csv')))).toBe('CONFIG_INVALID');
    const jsonl = file('e.jsonl', '{"features":[1,2,3,4],"label":1}\n{"features":[5,6,7,8],"label":0}\n');
    expect(codeOf(() => describeDatasetFile(jsonl))).toBe('CONFIG_INVALID');
    expect(describeDatasetFile(jsonl, { shape: [2, 2] })).toEqual({
      schema: { shape: [2, 2], labelColumn: 'label', numClasses: 2 },
      rows: 2,
    });
  });
});

describe('listing answers are re-verified', () => {
  let server: Server;
  let url: string;
  let answer: unknown;

  beforeAll(async () => {
    // A coordinator that answers whatever the test sets: the client must not trust it.
    server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  it('accepts a genuine listing and refuses an altered one, a forged one and a mislabelled id', async () => {
    const signed = signListing(generateIdentity(), {
      name: 'n',
      schema: { shape: [2], numClasses: 2 },
      rows: 5,
      pricePerRoundWei: '9',
    });
    const id = listingIdOf(signed.listing);
    const genuine = { id, ...signed, publishedAt: new Date().toISOString() };
    answer = { listings: [genuine] };
    expect((await searchListings(url, {})).map((l) => l.id)).toEqual([id]);

    answer = { listings: [{ ...genuine, listing: { ...genuine.listing, rows: 5_000 } }] };
    expect(await codeOfAsync(() => searchListings(url, {}))).toBe('LISTING_SIGNATURE_INVALID');
    const other = signListing(generateIdentity(), {
      name: 'n',
      schema: { shape: [2], numClasses: 2 },
      rows: 5,
      pricePerRoundWei: '9',
    });
    answer = { ...genuine, signature: other.signature };
    expect(await codeOfAsync(() => getListing(url, id))).toBe('LISTING_SIGNATURE_INVALID');
    answer = { ...genuine, id: listingIdOf(other.listing) };
    expect(await codeOfAsync(() => getListing(url, id))).toBe('LISTING_SIGNATURE_INVALID');
    answer = { listings: [{ id }] };
    expect(await codeOfAsync(() => searchListings(url, {}))).toBe('VALIDATION_FAILED');
  });
});
