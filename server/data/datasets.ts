// The datasets a job can name, by `dataset.name`. Each gives encoded training shards (served to
// volunteers as-is) and a held-out split for the relay's evaluation of every version.
import { encodeShard, type Shard } from '../../shared/data/shard.ts';
import { loadMnist } from './mnist.ts';

/** shardBytes: what volunteers download; heldOut: labelled evaluation split (absent for text jobs). */
export type ServedDataset = { shardBytes: Uint8Array[]; heldOut?: Shard };

const loaded = new Map<string, ServedDataset>();

// Datasets uploaded with jobs (server/ops) are found through resolvers that plugin registers.
type DatasetResolver = (name: string) => ServedDataset | undefined;
const resolvers = new Set<DatasetResolver>();
/** Adds a resolver tried for names the relay does not know itself; returns its removal. */
export function addDatasetResolver(r: DatasetResolver): () => void {
  resolvers.add(r);
  return () => resolvers.delete(r);
}

export function dataset(name: string): ServedDataset {
  let d = loaded.get(name);
  if (d) return d;
  for (const r of resolvers) {
    const found = r(name);
    if (found) return found;
  }
  if (name !== 'mnist') throw new Error(`unknown dataset "${name}"; the relay knows: mnist`);
  const m = loadMnist();
  d = { shardBytes: m.shards.map(encodeShard), heldOut: m.heldOut };
  loaded.set(name, d);
  return d;
}
