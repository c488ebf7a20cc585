import { type Dataset, selectExamples } from './dataset';
import { createRng, dirichletSample, permutation, shuffleInPlace } from './random';

/**
 * Splitting one dataset among simulated clients, for experiments and demos. Every partitioner is
 * deterministic for a given seed, and its parts are disjoint and together cover every example.
 * The `*Indices` variants return example indices; the others return the client datasets.
 */

function checkClients(count: number, nClients: number): void {
  if (!Number.isInteger(nClients) || nClients < 1)
    throw new RangeError(`nClients must be a positive integer, got ${nClients}`);
  if (nClients > count) throw new RangeError(`cannot give ${nClients} clients at least one of ${count} examples each`);
}

function maxLabel(labels: Int32Array): number {
  let max = -1;
  for (let i = 0; i < labels.length; i++) if (labels[i] > max) max = labels[i];
  return max;
}

/** IID split: a seeded shuffle cut into `nClients` parts whose sizes differ by at most one. */
export function partitionIndicesIid(count: number, nClients: number, seed: number): Int32Array[] {
  checkClients(count, nClients);
  const order = permutation(count, createRng(seed));
  const parts: Int32Array[] = [];
  for (let c = 0; c < nClients; c++) {
    parts.push(order.slice(Math.floor((c * count) / nClients), Math.floor(((c + 1) * count) / nClients)));
  }
  return parts;
}

/**
 * Label-skewed split (Hsu et al., 2019): for each class, client shares are drawn from
 * Dirichlet(alpha); small alpha gives each client few classes, large alpha approaches IID.
 * Draws are repeated (deterministically) until every client has at least `minPerClient` examples.
 */
export function partitionIndicesDirichlet(
  labels: Int32Array,
  nClients: number,
  alpha: number,
  seed: number,
  minPerClient = 1,
): Int32Array[] {
  checkClients(labels.length, nClients);
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new RangeError(`alpha must be a positive number, got ${alpha}`);
  if (minPerClient * nClients > labels.length) {
    throw new RangeError(`cannot give ${nClients} clients ${minPerClient} of ${labels.length} examples each`);
  }
  const rng = createRng(seed);
  const numClasses = maxLabel(labels) + 1;
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]].push(i);
  const maxAttempts = 1000;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const parts: number[][] = Array.from({ length: nClients }, () => []);
    for (const members of byClass) {
      if (members.length === 0) continue;
      shuffleInPlace(members, rng);
      const shares = dirichletSample(nClients, alpha, rng);
      let cumulative = 0;
      let from = 0;
      for (let c = 0; c < nClients; c++) {
        cumulative += shares[c];
        const to =
          c === nClients - 1 ? members.length : Math.min(members.length, Math.round(cumulative * members.length));
        for (let k = from; k < to; k++) parts[c].push(members[k]);
        from = Math.max(from, to);
      }
    }
    if (parts.every((p) => p.length >= minPerClient)) {
      return parts.map((p) => shuffleInPlace(Int32Array.from(p), rng));
    }
  }
  throw new RangeError(
    `no Dirichlet(${alpha}) split in ${maxAttempts} draws gave each of ${nClients} clients ${minPerClient} examples; raise alpha or use fewer clients`,
  );
}

/**
 * Pathological non-IID split (McMahan et al., 2017): examples sorted by label are cut into
 * `nClients × shardsPerClient` contiguous shards, and each client gets `shardsPerClient` random
 * shards, so it sees only a few classes.
 */
export function partitionIndicesShards(
  labels: Int32Array,
  nClients: number,
  shardsPerClient: number,
  seed: number,
): Int32Array[] {
  if (!Number.isInteger(shardsPerClient) || shardsPerClient < 1) {
    throw new RangeError(`shardsPerClient must be a positive integer, got ${shardsPerClient}`);
  }
  checkClients(labels.length, nClients);
  const numShards = nClients * shardsPerClient;
  if (numShards > labels.length) throw new RangeError(`cannot cut ${labels.length} examples into ${numShards} shards`);
  const rng = createRng(seed);
  // A seeded shuffle before the stable sort puts examples of one label in random order.
  const order = Array.from(permutation(labels.length, rng)).sort((a, b) => labels[a] - labels[b]);
  const shardOrder = permutation(numShards, rng);
  const parts: Int32Array[] = [];
  for (let c = 0; c < nClients; c++) {
    const members: number[] = [];
    for (let s = 0; s < shardsPerClient; s++) {
      const shard = shardOrder[c * shardsPerClient + s];
      const from = Math.floor((shard * labels.length) / numShards);
      const to = Math.floor(((shard + 1) * labels.length) / numShards);
      for (let k = from; k < to; k++) members.push(order[k]);
    }
    parts.push(shuffleInPlace(Int32Array.from(members), rng));
  }
  return parts;
}

/** IID split of a dataset among `nClients` clients. */
export function partitionIid(dataset: Dataset, nClients: number, seed: number): Dataset[] {
  return partitionIndicesIid(dataset.count, nClients, seed).map((idx) => selectExamples(dataset, idx));
}

/** Dirichlet(alpha) label-skewed split of a dataset among `nClients` clients. */
export function partitionDirichlet(dataset: Dataset, nClients: number, alpha: number, seed: number): Dataset[] {
  return partitionIndicesDirichlet(dataset.y.subarray(0, dataset.count), nClients, alpha, seed).map((idx) =>
    selectExamples(dataset, idx),
  );
}

/** Shard split of a dataset: each of `nClients` clients gets `shardsPerClient` label-sorted shards. */
export function partitionShards(dataset: Dataset, nClients: number, shardsPerClient: number, seed: number): Dataset[] {
  return partitionIndicesShards(dataset.y.subarray(0, dataset.count), nClients, shardsPerClient, seed).map((idx) =>
    selectExamples(dataset, idx),
  );
}
