// Serves uploaded datasets to the relay's scheduler and shard route (server/data/datasets.ts resolver).
// The resolver is synchronous (every task and evaluation asks it), so uploaded datasets are read from the
// store ahead of need: all of them when the plugin starts, a new one when its job is created. They stay
// in this process's memory, as before.
import type { FastifyInstance } from 'fastify';
import { addDatasetResolver, type ServedDataset } from '../data/datasets.ts';
import { decodeShard, type Shard } from '../../shared/data/shard.ts';
import { isTokenShard } from '../../shared/data/token-shard.ts';
import { UPLOAD_PREFIX } from './submit.ts';

/** Text jobs have no labelled held-out shard; the relay's MLP evaluation never reads this one. */
const noLabelled: Shard = { n: 0, inputs: 1, classes: 2, x: new Float32Array(0), y: new Int32Array(0) };

export async function installDatasetResolver(app: FastifyInstance): Promise<void> {
  const cache = new Map<string, ServedDataset>();
  for (const job of await app.stores.relay.listJobs()) await loadFrom(app.stores, job.dataset.name);
  // a submission commits its shards with its job: loaded before anyone can lease a task of it
  const off = app.stores.onCommitting('job-created', (e, tx) => loadFrom(tx, e.job.dataset.name));
  async function loadFrom(tx: typeof app.stores, name: string): Promise<void> {
    if (!name.startsWith(UPLOAD_PREFIX) || cache.has(name)) return;
    const stored = await tx.ops.loadShards(name.slice(UPLOAD_PREFIX.length));
    if (stored) cache.set(name, { shardBytes: stored.shards, heldOut: isTokenShard(stored.heldOut) ? noLabelled : decodeShard(stored.heldOut) });
  }
  const remove = addDatasetResolver((name) => (name.startsWith(UPLOAD_PREFIX) ? cache.get(name) : undefined));
  app.addHook('onClose', async () => { remove(); off(); });
}
