import type { Dataset } from '../shared/data/dataset';
import { partitionDirichlet, partitionIid, partitionShards } from '../shared/data/partition';

/** How an example splits its training data among clients: `iid`, `dirichlet:<alpha>` or `shards:<n per client>`. */
export type Partition = { kind: 'iid' } | { kind: 'dirichlet'; alpha: number } | { kind: 'shards'; perClient: number };

/** Parses the --partition flag; throws a message that says what was expected. */
export function parsePartition(text: string): Partition {
  if (text === 'iid') return { kind: 'iid' };
  const [kind, value] = text.split(':');
  const n = Number(value);
  if (kind === 'dirichlet' && Number.isFinite(n) && n > 0) return { kind: 'dirichlet', alpha: n };
  if (kind === 'shards' && Number.isInteger(n) && n > 0) return { kind: 'shards', perClient: n };
  throw new Error(`--partition must be iid, dirichlet:<alpha > 0> or shards:<integer n > 0>, got "${text}"`);
}

export function formatPartition(p: Partition): string {
  return p.kind === 'iid' ? 'iid' : p.kind === 'dirichlet' ? `dirichlet:${p.alpha}` : `shards:${p.perClient}`;
}

/** Client `index`'s part of `data`: the same for every process given the same seed. */
export function clientPart(data: Dataset, p: Partition, clients: number, index: number, seed: number): Dataset {
  const parts =
    p.kind === 'iid'
      ? partitionIid(data, clients, seed)
      : p.kind === 'dirichlet'
        ? partitionDirichlet(data, clients, p.alpha, seed)
        : partitionShards(data, clients, p.perClient, seed);
  return parts[index];
}
