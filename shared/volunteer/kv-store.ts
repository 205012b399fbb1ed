// The loop's LoopStore (./store.ts) over a volunteer's key-value storage (./kv.ts): parameters and
// shards are shared by all tabs (caches, by version hash and shard), while the residual and the task in
// progress belong to this tab's slot. The Node volunteer uses it over files, with slot 0.
import type { Task } from '../protocol/messages.ts';
import { checksum, type VolunteerDb } from './kv.ts';
import type { LoopStore } from './store.ts';

const f32 = (b: Uint8Array): Float32Array =>
  b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4) : new Float32Array(b.slice().buffer);
const bytesOf = (v: Float32Array): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

export type SlotLoopStore = LoopStore & {
  /** Checksum of the residual this slot has stored (0 when none): tests compare it across a reload. */
  residualChecksum(jobId: string): Promise<number>;
};

/** Parameter versions also kept in memory: consecutive tasks mostly share a base version. */
const PARAMS_IN_MEMORY = 2;

export function kvLoopStore(db: VolunteerDb, slot: number): SlotLoopStore {
  const taskKey = `task:${slot}`;
  const recent = new Map<string, Float32Array>();
  const residuals = new Map<string, Float32Array>();
  const remember = (hash: string, p: Float32Array) => {
    recent.delete(hash);
    recent.set(hash, p);
    for (const k of recent.keys()) if (recent.size > PARAMS_IN_MEMORY) recent.delete(k);
  };
  const residualKey = (jobId: string) => `residual:${slot}:${jobId}`;
  // The signing keypair (non-extractable CryptoKeys) where the storage can hold it; the Node volunteer
  // adds its own key file (server/volunteer/key-file.ts) over this store.
  const { getObject, putObject } = db;
  const keyStore: Pick<LoopStore, 'getKeys' | 'putKeys'> = getObject && putObject
    ? {
        getKeys: (server) => getObject<CryptoKeyPair>(`keys:${slot}:${server}`),
        putKeys: (server, keys) => putObject(`keys:${slot}:${server}`, keys),
      }
    : {};
  return {
    ...keyStore,
    getVolunteerId: (server) => db.getRecord<string>(`volunteer:${slot}:${server}`),
    setVolunteerId: (server, id) => db.putRecord(`volunteer:${slot}:${server}`, id),
    async getParams(hash) {
      const hot = recent.get(hash);
      if (hot) return hot;
      const b = await db.getBlob(`params:${hash}`);
      const p = b && f32(b);
      if (p) remember(hash, p);
      return p;
    },
    // Caches are written in the background: the task can start training meanwhile, and a failed write
    // only costs a download later. The residual and the task are awaited: a reload resumes from them.
    putParams: async (hash, params) => {
      remember(hash, params);
      void db.putBlob(`params:${hash}`, bytesOf(params).slice(), 'params').catch(() => undefined);
    },
    // shared by the tabs like the parameter cache it points into; the last download wins (after a
    // rollback that is an older version, which later deltas build on)
    getNewest: (jobId) => db.getRecord<{ version: number; hash: string }>(`newest:${jobId}`),
    putNewest: (jobId, v) => db.putRecord(`newest:${jobId}`, v),
    getShard: (jobId, shard) => db.getBlob(`shard:${jobId}:${shard}`),
    // the list of kept shards is written after the bytes, so it never names a shard that was not stored
    // (tabs writing it at once may lose an entry: that shard is only not preferred for a while)
    putShard: async (jobId, shard, bytes) => {
      void db.putBlob(`shard:${jobId}:${shard}`, bytes.slice(), 'shard').then(async () => {
        const kept = (await db.getRecord<number[]>(`shards:${jobId}`)) ?? [];
        if (!kept.includes(shard)) await db.putRecord(`shards:${jobId}`, [...kept, shard]);
      }).catch(() => undefined);
    },
    listShards: async (jobId) => (await db.getRecord<number[]>(`shards:${jobId}`)) ?? [],
    async getResidual(jobId) {
      // this slot's lock makes this tab the residual's only writer, so memory may serve it after the first read
      let r = residuals.get(jobId);
      if (!r) {
        const b = await db.getBlob(residualKey(jobId));
        if (!b) return undefined;
        r = new Float32Array(f32(b));
        residuals.set(jobId, r);
      }
      // a copy the loop may change in place
      return new Float32Array(r);
    },
    async putResidual(jobId, r) {
      await db.putBlob(residualKey(jobId), bytesOf(r), 'state');
      residuals.set(jobId, new Float32Array(r));
    },
    getResidualBase: (jobId) => db.getRecord<number>(`${residualKey(jobId)}:base`),
    putResidualBase: (jobId, v) => db.putRecord(`${residualKey(jobId)}:base`, v),
    getTask: () => db.getRecord<Task>(taskKey),
    putTask: (task) => (task ? db.putRecord(taskKey, task) : db.deleteRecord(taskKey)),
    async residualChecksum(jobId) {
      const b = await db.getBlob(residualKey(jobId));
      return b ? checksum(f32(b)) : 0;
    },
  };
}
