// A task's data shard, by the cheapest way there: the volunteer's store; else a piece (./pieces.ts),
// from peers when one holds it and the relay's shard list gives its SHA-256, from the relay otherwise.
import type { ShardList } from '../protocol/p2p.ts';
import type { RelayClient } from './client.ts';
import type { PieceFetcher } from './pieces.ts';
import type { LoopStore } from './store.ts';

export type ShardSource = (jobId: string, shard: number) => Promise<Uint8Array>;

/** `withPeers` false: the relay only, and no shard list asked for (the Node volunteer, sharing off). */
export function shardSource(client: RelayClient, store: LoopStore, pieces: PieceFetcher, withPeers: boolean): ShardSource {
  const lists = new Map<string, Promise<ShardList['shards'] | undefined>>();
  // a relay without the list (older) or a failed ask: shards come from the relay, unchecked as before
  const infoOf = async (jobId: string, shard: number) => {
    let l = lists.get(jobId);
    if (!l) lists.set(jobId, (l = client.shardList(jobId).then((r) => r.shards, () => { lists.delete(jobId); return undefined; })));
    return (await l)?.[shard];
  };
  return async (jobId, shard) => {
    const info = withPeers ? await infoOf(jobId, shard) : undefined;
    let bytes = await store.getShard(jobId, shard);
    if (bytes) {
      if (info) pieces.offer(info.sha256, bytes);
      return bytes;
    }
    const fromRelay = () => client.shard(jobId, shard);
    bytes = info ? await pieces.fetch(info.sha256, info.bytes, fromRelay) : await fromRelay();
    await store.putShard(jobId, shard, bytes);
    return bytes;
  };
}
