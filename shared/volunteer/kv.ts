// The key-value storage a volunteer keeps its state in: IndexedDB in a tab (web/volunteer/idb-store.ts),
// files in the Node volunteer (server/volunteer/file-store.ts). The loop's store (./kv-store.ts) sits on it.

/** params and shards are caches (old params are evicted); state blobs (residuals) are never evicted. */
export type BlobKind = 'params' | 'shard' | 'state';

/** Key-value storage a volunteer needs (the same shape over IndexedDB and over files). */
export type VolunteerDb = {
  getBlob(key: string): Promise<Uint8Array | undefined>;
  putBlob(key: string, bytes: Uint8Array, kind: BlobKind): Promise<void>;
  getRecord<T>(key: string): Promise<T | undefined>;
  /** Awaited by the loop: a reload resumes from these records. */
  putRecord(key: string, value: unknown): Promise<void>;
  deleteRecord(key: string): Promise<void>;
  /** Values that only structured clone can store (CryptoKeys); absent where records are JSON (files). */
  getObject?<T>(key: string): Promise<T | undefined>;
  putObject?(key: string, value: unknown): Promise<void>;
  close(): void;
};

/** Order-sensitive checksum of a float array (FNV-1a over its bytes): shows a residual survived intact. */
export function checksum(v: Float32Array | undefined): number {
  if (!v) return 0;
  const b = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}
