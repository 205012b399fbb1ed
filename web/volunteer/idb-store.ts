// The tab's durable state in IndexedDB (idb): model parameters by version hash and data shards (so a
// reload downloads only what is missing), and small records — the error-feedback residual, the task in
// progress, the volunteer id and credit — so closing or reloading the tab loses nothing.
// Transactions are short and never await anything but IndexedDB (idb's rule).
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { BlobKind, VolunteerDb } from '../../shared/volunteer/kv.ts';

const DB_NAME = 'tabtrain-volunteer';
/** Parameter blobs kept besides the newest: enough for stale tasks, bounded for the disk. */
const PARAMS_KEPT = 3;
const PARAMS_ORDER = 'params-order';

interface Schema extends DBSchema {
  /** Bulk bytes: `params:<versionHash>`, `shard:<jobId>:<shard>`, `residual:<slot>:<jobId>`. */
  blobs: { key: string; value: { key: string; bytes: ArrayBuffer; at: number; kind: BlobKind }; indexes: { kind: string } };
  /** Small records: residual:<jobId>, task, volunteer, credit. */
  records: { key: string; value: unknown };
}

export async function openVolunteerDb(name = DB_NAME): Promise<VolunteerDb> {
  const db: IDBPDatabase<Schema> = await openDB<Schema>(name, 1, {
    upgrade(d) {
      const blobs = d.createObjectStore('blobs', { keyPath: 'key' });
      blobs.createIndex('kind', 'kind');
      d.createObjectStore('records');
    },
  });

  // Newest-last list of cached parameter keys in one small record, so eviction never reads the blobs.
  async function evictOldParams(key: string): Promise<void> {
    const order = ((await db.get('records', PARAMS_ORDER)) as string[] | undefined ?? []).filter((k) => k !== key);
    order.push(key);
    const drop = order.splice(0, Math.max(0, order.length - PARAMS_KEPT));
    const tx = db.transaction(['blobs', 'records'], 'readwrite');
    await Promise.all([...drop.map((k) => tx.objectStore('blobs').delete(k)), tx.objectStore('records').put(order, PARAMS_ORDER), tx.done]);
  }

  return {
    async getBlob(key) {
      const row = await db.get('blobs', key);
      return row ? new Uint8Array(row.bytes) : undefined;
    },
    async putBlob(key, bytes, kind) {
      // Copy into an exact-size ArrayBuffer: a view's buffer may be larger than the view.
      const copy = bytes.slice().buffer;
      // Relaxed durability (Chrome's default): a committed write survives a reload or a browser crash;
      // only an OS crash can lose the last one. Strict would fsync several times per task.
      const tx = db.transaction('blobs', 'readwrite', { durability: 'relaxed' });
      await Promise.all([tx.store.put({ key, bytes: copy, at: Date.now(), kind }), tx.done]);
      if (kind === 'params') await evictOldParams(key);
    },
    async getRecord<T>(key: string) {
      return (await db.get('records', key)) as T | undefined;
    },
    async putRecord(key, value) {
      const tx = db.transaction('records', 'readwrite', { durability: 'relaxed' });
      await Promise.all([tx.store.put(value, key), tx.done]);
    },
    async deleteRecord(key) {
      const tx = db.transaction('records', 'readwrite', { durability: 'relaxed' });
      await Promise.all([tx.store.delete(key), tx.done]);
    },
    // records are structured-cloned by IndexedDB already, so a non-extractable CryptoKey fits as is
    async getObject<T>(key: string) {
      return (await db.get('records', key)) as T | undefined;
    },
    async putObject(key, value) {
      const tx = db.transaction('records', 'readwrite', { durability: 'relaxed' });
      await Promise.all([tx.store.put(value, key), tx.done]);
    },
    close: () => db.close(),
  };
}
