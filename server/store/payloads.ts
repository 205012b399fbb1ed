// Large update payloads as files beside the database (payloads/<taskId>.bin), not as SQLite blobs: a
// 1 MB blob costs SQLite 250 overflow pages written twice (WAL, then checkpoint), 6–15 ms per upload,
// where one file write is a quarter of a millisecond (small payloads stay in their row: ./sqlite.ts). The file is written before its row commits, so a row
// always has its file; a crash in between leaves an orphan, removed on the next open (as is the file
// of a payload that retention dropped, when a crash came before its file went).
import { closeSync, copyFileSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Task ids are the relay's own (`t-<uuid>`); anything else never names a file. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

export type PayloadDir = {
  /** Writes the payload of a task's update; `sync` also flushes it to disk (the store's 'full' durability). */
  put(taskId: string, bytes: Uint8Array): void;
  /** Takes over a payload already in a file (an upload spooled as it arrived): renamed into place, not
   * copied (copied only across file systems), flushed first under 'full' durability. */
  adopt(taskId: string, file: string, byteLength: number): void;
  /** A small payload file read whole (a spooled one that goes into its row). */
  read(file: string, byteLength: number): Uint8Array;
  /** The payload, or undefined when its file is gone or not the size its row recorded. */
  get(taskId: string, byteLength: number): Uint8Array | undefined;
  /** Removes a payload's file (retention: its update was applied long ago); absent files are fine. */
  remove(taskId: string): void;
  /** Removes files whose task has no stored update (what a crash between write and commit leaves). */
  removeOrphans(stored: (taskId: string) => boolean): number;
};

export function openPayloadDir(dir: string, sync: boolean): PayloadDir {
  mkdirSync(dir, { recursive: true });
  const path = (taskId: string): string => {
    if (!SAFE_ID.test(taskId)) throw new Error(`task id ${JSON.stringify(taskId.slice(0, 40))} cannot name a payload file`);
    return join(dir, `${taskId}.bin`);
  };
  return {
    put(taskId, bytes) {
      const fd = openSync(path(taskId), 'w');
      try {
        for (let at = 0; at < bytes.byteLength;) at += writeSync(fd, bytes, at);
        if (sync) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    },
    adopt(taskId, file, byteLength) {
      const size = statSync(file).size;
      if (size !== byteLength) throw new Error(`payload file ${file} is ${size} bytes, not the ${byteLength} received`);
      if (sync) { const fd = openSync(file, 'r+'); try { fsyncSync(fd); } finally { closeSync(fd); } }
      try {
        renameSync(file, path(taskId));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
        copyFileSync(file, path(taskId));
        rmSync(file, { force: true });
      }
      // the new name is durable only once its directory is
      if (sync) { const fd = openSync(dir, 'r'); try { fsyncSync(fd); } finally { closeSync(fd); } }
    },
    read(file, byteLength) {
      const b = readFileSync(file);
      if (b.byteLength !== byteLength) throw new Error(`payload file ${file} is ${b.byteLength} bytes, not the ${byteLength} received`);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
    get(taskId, byteLength) {
      let b: Buffer;
      try {
        b = readFileSync(path(taskId));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      return b.byteLength === byteLength ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : undefined;
    },
    remove(taskId) {
      rmSync(path(taskId), { force: true });
    },
    removeOrphans(stored) {
      let removed = 0;
      for (const f of readdirSync(dir)) {
        const taskId = f.endsWith('.bin') ? f.slice(0, -4) : undefined;
        if (taskId !== undefined && !stored(taskId)) { rmSync(join(dir, f), { force: true }); removed++; }
      }
      return removed;
    },
  };
}
