// What the volunteer loop persists, behind an interface the host provides: IndexedDB in the browser
// (over ./kv.ts: ./kv-store.ts), memory in tests and the Node volunteer. Keys are plain strings and
// numbers so any key-value store fits.
import type { Task } from '../protocol/messages.ts';

export interface LoopStore {
  getVolunteerId(server: string): Promise<string | undefined>;
  setVolunteerId(server: string, volunteerId: string): Promise<void>;
  /** Parameters of a version, by the relay's sha-256 version hash. */
  getParams(hash: string): Promise<Float32Array | undefined>;
  putParams(hash: string, params: Float32Array): Promise<void>;
  /** The version of a job whose parameters were fetched last, to rebuild later ones from deltas.
   * Optional: a store without it always downloads whole parameters. */
  getNewest?(jobId: string): Promise<{ version: number; hash: string } | undefined>;
  putNewest?(jobId: string, v: { version: number; hash: string }): Promise<void>;
  getShard(jobId: string, shard: number): Promise<Uint8Array | undefined>;
  putShard(jobId: string, shard: number, bytes: Uint8Array): Promise<void>;
  /** The job's shards kept (sent with task requests: the relay prefers a task on one of them). Optional:
   * a store without it only reports the shards this run has downloaded. An entry whose bytes were lost
   * since costs a download, nothing more. */
  listShards?(jobId: string): Promise<number[]>;
  /** Error-feedback residual of a job: what compression has not sent yet. */
  getResidual(jobId: string): Promise<Float32Array | undefined>;
  putResidual(jobId: string, residual: Float32Array): Promise<void>;
  /** The base version of the task the residual was last saved after (./residual-age.ts). Optional: a
   * store without it keeps every residual unless the relay bounds its age. */
  getResidualBase?(jobId: string): Promise<number | undefined>;
  putResidualBase?(jobId: string, version: number): Promise<void>;
  /** The task being trained, so a reload resumes it while its lease lasts. */
  getTask(): Promise<Task | undefined>;
  putTask(task: Task | undefined): Promise<void>;
  /** The volunteer's signing keypair for a relay (CryptoKeys are structured-clonable into IndexedDB).
   * Optional: a store without it gets a fresh identity per run, registered anew. */
  getKeys?(server: string): Promise<CryptoKeyPair | undefined>;
  putKeys?(server: string, keys: CryptoKeyPair): Promise<void>;
  /** putKeys writes the keys out (a JWK file), so the loop must make them extractable. */
  keysExtractable?: boolean;
}

/** In-memory store; keeps only the newest few parameter versions. */
export function memoryLoopStore(): LoopStore {
  const ids = new Map<string, string>(), params = new Map<string, Float32Array>();
  const shards = new Map<string, Uint8Array>(), residuals = new Map<string, Float32Array>(), residualBases = new Map<string, number>();
  let task: Task | undefined;
  const keys = new Map<string, CryptoKeyPair>();
  const newest = new Map<string, { version: number; hash: string }>();
  return {
    getKeys: async (s) => keys.get(s),
    putKeys: async (s, k) => { keys.set(s, k); },
    getVolunteerId: async (s) => ids.get(s),
    setVolunteerId: async (s, id) => { ids.set(s, id); },
    getParams: async (h) => params.get(h),
    putParams: async (h, p) => {
      params.set(h, p);
      for (const k of params.keys()) if (params.size > 3) params.delete(k);
    },
    getNewest: async (j) => newest.get(j),
    putNewest: async (j, v) => { newest.set(j, v); },
    getShard: async (j, s) => shards.get(`${j}:${s}`),
    putShard: async (j, s, b) => { shards.set(`${j}:${s}`, b); },
    listShards: async (j) => [...shards.keys()].flatMap((k) => (k.startsWith(`${j}:`) ? [Number(k.slice(j.length + 1))] : [])),
    getResidual: async (j) => residuals.get(j),
    putResidual: async (j, r) => { residuals.set(j, r); },
    getResidualBase: async (j) => residualBases.get(j),
    putResidualBase: async (j, v) => { residualBases.set(j, v); },
    getTask: async () => task,
    putTask: async (t) => { task = t; },
  };
}
