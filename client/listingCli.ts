import { existsSync, readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { TributaryError } from '../shared/errors';
import { ListingIdSchema } from '../shared/schemas/jobAccess';
import { InputSpecSchema } from '../shared/schemas/jobSpec';
import type { ListingQuery, PublishedListing } from '../shared/schemas/listing';
import { parseInput } from '../shared/schemas/parseInput';
import { loadOrCreateIdentity } from './keyFile';
import { deleteListing, describeDatasetFile, publishListing, searchListings } from './listings';

/*
 * `tributary client publish-listing | search-listings | delete-listing`: the marketplace from the
 * command line. Each prints a line of text per listing, or JSON with --json.
 */

const commaList = (value: string) =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
const intList = (value: string) =>
  commaList(value).map((v) => {
    if (!/^[1-9][0-9]*$/.test(v))
      throw new TributaryError('CONFIG_INVALID', `Expected positive integers separated by commas, got "${value}".`);
    return Number(v);
  });
const integer = (value: string) => {
  if (!/^[0-9]+$/.test(value))
    throw new TributaryError('CONFIG_INVALID', `Expected a non-negative integer, got "${value}".`);
  return Number(value);
};

/** The description file of publish-listing: any listing field but those the signer adds. */
const ListingFileSchema = z
  .object({
    name: z.string().optional(),
    description: z.string().optional(),
    schema: z.unknown().optional(),
    rows: z.number().optional(),
    tags: z.array(z.string()).optional(),
    pricePerRoundWei: z.string().optional(),
  })
  .strict();

function readListingFile(path: string): z.infer<typeof ListingFileSchema> {
  try {
    return ListingFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `${path} is not a listing description (JSON with name, description, schema, rows, tags, pricePerRoundWei): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** One line of text per listing. */
function summary(l: PublishedListing): string {
  const s = l.listing.schema;
  return `${l.id}  ${l.listing.name}  rows=${l.listing.rows}  shape=[${s.shape}] classes=${s.numClasses}  tags=${l.listing.tags.join(',') || '-'}  price/round=${l.listing.pricePerRoundWei} wei  provider=${l.listing.provider.slice(0, 16)}…`;
}

/** `tributary client publish-listing`. */
export function publishListingCommand(defaultKeyFile: string): Command {
  return new Command('publish-listing')
    .description(
      'Publish a signed listing of your dataset (its schema, size, tags and price; never the data) so buyers can find and invite it.',
    )
    .requiredOption('--coordinator <url>', 'coordinator base URL, e.g. http://127.0.0.1:8080')
    .option(
      '--file <path>',
      'JSON listing description: {name, description, schema, rows, tags, pricePerRoundWei}; flags override its fields',
    )
    .option('--name <text>', 'listing name')
    .option('--description <text>', 'free-text description')
    .option('--tags <list>', 'domain tags, comma-separated (lowercase letters, digits, dashes)', commaList)
    .option('--price-wei <amount>', 'price per training round in wei (decimal)')
    .option('--data <path>', "derive schema and rows from this dataset file (validated with the client's loaders)")
    .addOption(
      new Option('--format <format>', 'dataset format (default: from the file extension)').choices(['csv', 'jsonl']),
    )
    .option('--label-column <name>', 'label column (default "label")')
    .option('--num-classes <n>', 'number of classes (default: largest label + 1)', integer)
    .option('--shape <dims>', 'example shape, comma-separated (default: [number of feature columns])', intList)
    .option(
      '--feature-columns <list>',
      'feature columns, comma-separated (default: every CSV column but the label)',
      commaList,
    )
    .option('--key <path>', 'Ed25519 key file (the identity that will join jobs), created on first run', defaultKeyFile)
    .option('--json', 'print the published listing as JSON')
    .action(async (opts) => {
      const file = opts.file ? readListingFile(opts.file) : {};
      let schema = file.schema === undefined ? undefined : parseInput(InputSpecSchema, file.schema);
      let rows = file.rows;
      if (opts.data) {
        if (schema && !opts.shape && !opts.featureColumns && !opts.labelColumn && opts.numClasses === undefined) {
          // The file names the schema: check the data against it and count the rows.
          rows = describeDatasetFile(opts.data, { format: opts.format, ...schema }).rows;
        } else {
          ({ schema, rows } = describeDatasetFile(opts.data, {
            format: opts.format,
            labelColumn: opts.labelColumn,
            numClasses: opts.numClasses,
            shape: opts.shape,
            featureColumns: opts.featureColumns,
          }));
        }
      }
      if (!schema || rows === undefined) {
        throw new TributaryError(
          'CONFIG_INVALID',
          'A listing needs a schema and a row count: pass --data (derived from the dataset) or --file with "schema" and "rows".',
        );
      }
      const name = opts.name ?? file.name;
      const price = opts.priceWei ?? file.pricePerRoundWei;
      if (!name || price === undefined)
        throw new TributaryError(
          'CONFIG_INVALID',
          'A listing needs a name (--name) and a price per round (--price-wei, in wei).',
        );
      const identity = loadOrCreateIdentity(opts.key);
      const published = await publishListing({
        url: opts.coordinator,
        identity,
        listing: {
          name,
          description: opts.description ?? file.description,
          schema,
          rows,
          tags: opts.tags ?? file.tags,
          pricePerRoundWei: price,
        },
      });
      process.stdout.write(opts.json ? `${JSON.stringify(published)}\n` : `published ${summary(published)}\n`);
    });
}

/** `tributary client search-listings`. */
export function searchListingsCommand(): Command {
  return new Command('search-listings')
    .description(
      "Search published dataset listings; every criterion given must hold. Each result's provider signature is verified.",
    )
    .requiredOption('--coordinator <url>', 'coordinator base URL, e.g. http://127.0.0.1:8080')
    .option('--tags <list>', 'listings carrying all of these tags, comma-separated', commaList)
    .option('--shape <dims>', 'example shape, comma-separated, e.g. 28,28,1', intList)
    .option('--num-classes <n>', 'number of classes', integer)
    .option('--feature-columns <list>', 'exactly these feature columns (any order), comma-separated', commaList)
    .option('--label-column <name>', 'label column')
    .option('--min-rows <n>', 'at least this many rows', integer)
    .option('--provider <clientId>', 'listings of this provider')
    .option('--limit <n>', 'at most this many results (default 100)', integer)
    .option('--json', 'print {"listings":[...]} as JSON')
    .action(async (opts) => {
      const query: ListingQuery = {
        tags: opts.tags,
        shape: opts.shape,
        numClasses: opts.numClasses,
        featureColumns: opts.featureColumns,
        labelColumn: opts.labelColumn,
        minRows: opts.minRows,
        provider: opts.provider,
        limit: opts.limit,
      };
      const listings = await searchListings(opts.coordinator, query);
      if (opts.json) process.stdout.write(`${JSON.stringify({ listings })}\n`);
      else
        process.stdout.write(
          listings.length === 0 ? 'no matching listings\n' : `${listings.map(summary).join('\n')}\n`,
        );
    });
}

/** `tributary client delete-listing`. */
export function deleteListingCommand(defaultKeyFile: string): Command {
  return new Command('delete-listing')
    .description('Delete one of your listings (signed with your key); jobs that invited it stop admitting you.')
    .requiredOption('--coordinator <url>', 'coordinator base URL, e.g. http://127.0.0.1:8080')
    .requiredOption('--id <listingId>', 'the listing id (lst_...)')
    .option('--key <path>', "Ed25519 key file of the listing's provider", defaultKeyFile)
    .action(async (opts) => {
      const id = parseInput(ListingIdSchema, opts.id);
      // Only an existing key can have published the listing: never create one here.
      if (!existsSync(opts.key))
        throw new TributaryError(
          'CONFIG_INVALID',
          `No key file at ${opts.key}: pass the --key the listing was published with.`,
        );
      await deleteListing(opts.coordinator, loadOrCreateIdentity(opts.key), id);
      process.stdout.write(`deleted ${id}\n`);
    });
}
