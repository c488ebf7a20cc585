import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Dataset } from '../../shared/data/dataset';
import { selectExamples } from '../../shared/data/dataset';
import { parseCsv } from '../../shared/data/csvParser';
import { createRng, permutation } from '../../shared/data/random';
import type { ExampleOptions, ExampleTask } from '../exampleTask';
import { clientPart } from '../partitionOption';
import { TABULAR_INPUT, WEATHER_CLASSES, tabularJobSpec } from './coordinator';

/**
 * The tabular task: Seattle's daily weather 2012-2015 (1,461 real days, `seattle-weather.csv` shipped
 * in the npm package `vega-datasets`). Predict the day's weather (drizzle, rain, sun, snow, fog) from
 * precipitation, max and min temperature, wind and the time of year.
 *
 * Features, computed the same way by every provider: the four measurements standardised with fixed
 * constants (rounded means and deviations of the whole file, treated as public knowledge) and the
 * month as sin/cos. Days in one fixed seeded order: 200 for the buyer's validation set, 261 held out
 * for the test set, 1,000 split among the clients.
 */
const SCALE = {
  precipitation: { mean: 3.0, std: 6.7 },
  temp_max: { mean: 16.4, std: 7.3 },
  temp_min: { mean: 8.2, std: 5.0 },
  wind: { mean: 3.2, std: 1.4 },
} as const;

let cached: Dataset | undefined;

/** All 1,461 days as a Dataset, in a fixed seeded order. */
export function loadSeattleWeather(): Dataset {
  if (cached) return cached;
  // The package's `exports` hides data/; resolve it from the entry point.
  const file = join(dirname(require.resolve('vega-datasets')), '..', 'data', 'seattle-weather.csv');
  const records = parseCsv(readFileSync(file, 'utf8'));
  const header = records[0].fields;
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`seattle-weather.csv has no column "${name}"`);
    return i;
  };
  const [date, precipitation, tempMax, tempMin, wind, weather] = [
    'date',
    'precipitation',
    'temp_max',
    'temp_min',
    'wind',
    'weather',
  ].map(col);
  const rows = records.slice(1).filter((r) => r.fields.length === header.length);
  const features = TABULAR_INPUT.featureColumns!.length;
  const x = new Float32Array(rows.length * features);
  const y = new Int32Array(rows.length);
  rows.forEach(({ fields }, i) => {
    const month = Number(fields[date].slice(5, 7));
    const values = [
      (Number(fields[precipitation]) - SCALE.precipitation.mean) / SCALE.precipitation.std,
      (Number(fields[tempMax]) - SCALE.temp_max.mean) / SCALE.temp_max.std,
      (Number(fields[tempMin]) - SCALE.temp_min.mean) / SCALE.temp_min.std,
      (Number(fields[wind]) - SCALE.wind.mean) / SCALE.wind.std,
      Math.sin((2 * Math.PI * month) / 12),
      Math.cos((2 * Math.PI * month) / 12),
    ];
    x.set(values, i * features);
    const label = WEATHER_CLASSES.indexOf(fields[weather] as (typeof WEATHER_CLASSES)[number]);
    if (label < 0) throw new Error(`unknown weather "${fields[weather]}" on ${fields[date]}`);
    y[i] = label;
  });
  const all: Dataset = { x, y, count: rows.length, exampleShape: [features] };
  cached = selectExamples(all, permutation(rows.length, createRng(0)));
  return cached;
}

const range = (start: number, end: number) => Int32Array.from({ length: end - start }, (_, i) => start + i);

export const tabularTask: ExampleTask = {
  name: 'tabular',
  title: 'Seattle weather (CSV), MLP, FedProx',
  defaults: { clients: 4, rounds: 15 },
  // Round-1 update norm of one of 3 clients (5 local epochs): 1.7.
  privacyClippingNorm: 1.5,
  input: TABULAR_INPUT,
  jobSpec: tabularJobSpec,
  validationSet: () => selectExamples(loadSeattleWeather(), range(0, 200)),
  testSet: () => selectExamples(loadSeattleWeather(), range(200, 461)),
  clientData(options: ExampleOptions, index: number): Dataset {
    const all = loadSeattleWeather();
    return clientPart(
      selectExamples(all, range(461, all.count)),
      options.partition,
      options.clients,
      index,
      options.seed,
    );
  },
  clientEntry: 'examples/tabular/client.ts',
};
