// The relay's disk use, for /metrics and the dashboard: its data directory walked (the SQLite file and its
// WAL, update payload files, checkpoint files, the ONNX export cache), and on a shared Postgres the
// database's own size as well. Walked asynchronously and at most once per `everyMs`: a directory of many
// payload files is not walked again for each scrape.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export type DiskUse = {
  /** the SQLite file with its WAL and shared-memory files (0 on Postgres) */
  database: number;
  /** update payload files (./payloads.ts) */
  payloads: number;
  /** checkpoint files (./checkpoint-files.ts) */
  checkpoints: number;
  /** everything else in the data directory (lease secret, export cache) */
  other: number;
  /** all of the data directory */
  dataDir: number;
  /** a shared Postgres database's size (pg_database_size), when the relay runs on one */
  sharedDatabase?: number;
};

/** Bytes of the files under `dir` (0 when it does not exist); files that go while it is walked are skipped. */
export async function dirBytes(dir: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  let total = 0;
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirBytes(p);
    else if (e.isFile()) total += await stat(p).then((s) => s.size, () => 0);
  }
  return total;
}

export function diskUseReader(dataDir: string, sharedDatabase?: () => Promise<number>, everyMs = 5000): () => Promise<DiskUse> {
  let last: { at: number; use: Promise<DiskUse> } | undefined;
  const measure = async (): Promise<DiskUse> => {
    const all = await dirBytes(dataDir);
    const payloads = await dirBytes(join(dataDir, 'payloads'));
    const checkpoints = await dirBytes(join(dataDir, 'checkpoints'));
    let database = 0;
    for (const f of ['tabtrain.sqlite', 'tabtrain.sqlite-wal', 'tabtrain.sqlite-shm']) database += await stat(join(dataDir, f)).then((s) => s.size, () => 0);
    return { database, payloads, checkpoints, other: Math.max(0, all - database - payloads - checkpoints), dataDir: all, ...(sharedDatabase ? { sharedDatabase: await sharedDatabase() } : {}) };
  };
  return () => {
    const now = Date.now();
    if (!last || now - last.at >= everyMs) {
      last = { at: now, use: measure() };
      last.use.catch(() => { last = undefined; }); // a failed walk is tried again next time
    }
    return last.use;
  };
}
