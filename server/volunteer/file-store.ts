// The Node volunteer's durable state as files (the same shape as the page's IndexedDB store), so the
// residual and the task in progress survive a restart. Writes go to a temporary file, then rename.
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobKind, VolunteerDb } from '../../shared/volunteer/kv.ts';

const PARAMS_KEPT = 3;
const safe = (key: string) => key.replace(/[^A-Za-z0-9_.-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

async function atomicWrite(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

async function readOrUndefined(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export async function openFileStore(dir: string): Promise<VolunteerDb> {
  const blobs = join(dir, 'blobs'), records = join(dir, 'records');
  await mkdir(blobs, { recursive: true });
  await mkdir(records, { recursive: true });

  async function evictOldParams(): Promise<void> {
    const names = (await readdir(blobs)).filter((n) => n.startsWith('params') && n.endsWith('.bin'));
    const aged = await Promise.all(names.map(async (n) => ({ n, at: (await stat(join(blobs, n))).mtimeMs })));
    aged.sort((a, b) => b.at - a.at);
    await Promise.all(aged.slice(PARAMS_KEPT).map((a) => rm(join(blobs, a.n), { force: true })));
  }

  return {
    async getBlob(key) {
      const b = await readOrUndefined(join(blobs, `${safe(key)}.bin`));
      return b ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : undefined;
    },
    async putBlob(key, bytes, kind: BlobKind) {
      await atomicWrite(join(blobs, `${safe(key)}.bin`), bytes);
      if (kind === 'params') await evictOldParams();
    },
    async getRecord<T>(key: string) {
      const b = await readOrUndefined(join(records, `${safe(key)}.json`));
      return b ? (JSON.parse(b.toString('utf8')) as T) : undefined;
    },
    async putRecord(key, value) {
      await atomicWrite(join(records, `${safe(key)}.json`), JSON.stringify(value));
    },
    async deleteRecord(key) {
      await rm(join(records, `${safe(key)}.json`), { force: true });
    },
    close() {},
  };
}
