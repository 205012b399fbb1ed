// Serves uploaded datasets to the relay's scheduler and shard route (server/data/datasets.ts resolver).
import type { FastifyInstance } from 'fastify';
import { addDatasetResolver, type ServedDataset } from '../data/datasets.ts';
import { decodeShard, type Shard } from '../../shared/data/shard.ts';
import { isTokenShard } from '../../shared/data/token-shard.ts';
import { loadShards } from './store.ts';
import { UPLOAD_PREFIX } from './submit.ts';

/** Text jobs have no labelled held-out shard; the relay's MLP evaluation never reads this one. */
const noLabelled: Shard = { n: 0, inputs: 1, classes: 2, x: new Float32Array(0), y: new Int32Array(0) };

export function installDatasetResolver(app: FastifyInstance): void {
  const cache = new Map<string, ServedDataset>();
  const remove = addDatasetResolver((name) => {
    if (!name.startsWith(UPLOAD_PREFIX)) return undefined;
    const hit = cache.get(name);
    if (hit) return hit;
    const stored = loadShards(app.db, name.slice(UPLOAD_PREFIX.length));
    if (!stored) return undefined;
    const served = { shardBytes: stored.shards, heldOut: isTokenShard(stored.heldOut) ? noLabelled : decodeShard(stored.heldOut) };
    cache.set(name, served);
    return served;
  });
  app.addHook('onClose', async () => { remove(); });
}
