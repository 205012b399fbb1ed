// A large version's checkpoint as files beside the database (checkpoints/<job>/v<version>.<part>), not as
// SQLite blobs: better-sqlite3 binds at most about 512 MiB per value and SQLite stores at most 1e9 bytes,
// so a 124M-parameter GPT's params, momentum and residual would not fit a row at all; below that, a big
// blob is written twice (WAL, then checkpoint) and read whole for any column of its row. As files, a
// download streams the params file and never touches momentum (./sqlite.ts keeps small parts in the row).
// A part's file is written (and fsynced, at full durability) before the row that names it commits; a crash
// in between leaves an orphan, removed on the next open, as ./payloads.ts does for update payloads.
// A round's new version is written by the round's pool worker (server/pool/round.ts), not the event loop:
// under names of its own attempt (`v<version>.<part>.<attempt>.staged`), renamed to the version's names
// only by the commit that wins the round (RelayStore.commitRound, after its conditional check), so a
// losing or crashed attempt never overwrites a winner's files; its staged files are removed by the closer
// (RelayStore.discardStaged), or on the next open.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, writeSync, type ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

export type CheckpointPart = 'params' | 'momentum' | 'residual' | 'delta';
export const CHECKPOINT_PARTS: readonly CheckpointPart[] = ['params', 'momentum', 'residual', 'delta'];
/** Which parts of a version are files, with their sizes (the `files` column, JSON). */
export type FileParts = Partial<Record<CheckpointPart, number>>;

/** Job ids are free text up to 128 characters: a safe one names its directory, any other its hash. */
const SAFE = /^[A-Za-z0-9_-]{1,100}$/;
export const jobDirName = (jobId: string): string => (SAFE.test(jobId) ? jobId : `h-${createHash('sha256').update(jobId).digest('hex').slice(0, 40)}`);
const fileName = (version: number, part: CheckpointPart): string => `v${version}.${part}`;

/** Where a part lives, given the checkpoint directory (a pool worker resolves it from the database's path). */
export const checkpointPath = (dir: string, jobId: string, version: number, part: CheckpointPart): string =>
  join(dir, jobDirName(jobId), fileName(version, part));

/** A round attempt's staged name for a part (see the head of this file). */
export const stagedPath = (dir: string, jobId: string, version: number, part: CheckpointPart, attempt: string): string =>
  join(dir, jobDirName(jobId), `${fileName(version, part)}.${checkAttempt(attempt)}.staged`);
/** Attempt names go into file names: short, lowercase letters and digits only. */
const checkAttempt = (attempt: string): string => {
  if (!/^[a-z0-9]{1,40}$/.test(attempt)) throw new Error(`a round attempt's name must be 1–40 lowercase letters or digits, got ${JSON.stringify(attempt)}`);
  return attempt;
};

/** Writes `bytes` to `file` (created or truncated) in pieces of at most 1 GiB; `sync` flushes it to disk.
 * Synchronous, for the store's own writes inside its transaction; a round's worker uses writePartAsync. */
function writePart(file: string, bytes: Uint8Array, sync: boolean): void {
  const fd = openSync(file, 'w');
  try {
    for (let at = 0; at < bytes.byteLength;) at += writeSync(fd, bytes, at, Math.min(bytes.byteLength - at, 1 << 30));
    if (sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Where a round's worker writes the new version's large parts: the store's checkpoint directory, its
 * durability, its size threshold, and the attempt's name (RelayStore.roundOutput, plus the closer's name). */
export type StagedOutput = { dir: string; sync: boolean; threshold: number; attempt: string };

/** Writes the parts over the threshold under the attempt's staged names (a pool worker calls this);
 * answers which it wrote, with their sizes. The others are left for the row. Asynchronous (libuv's
 * threads): a round starts writing its momentum while it publishes the version, and its params while it
 * hashes them, rather than after (at 124M a part is about a second of the kernel's copying). */
export async function stageParts(o: StagedOutput, jobId: string, version: number, parts: Partial<Record<CheckpointPart, Uint8Array>>): Promise<FileParts> {
  const written: FileParts = {};
  const big = (Object.entries(parts) as [CheckpointPart, Uint8Array][]).filter(([, bytes]) => bytes.byteLength > o.threshold);
  if (big.length) mkdirSync(join(o.dir, jobDirName(jobId)), { recursive: true });
  await Promise.all(big.map(async ([part, bytes]) => {
    await writePartAsync(stagedPath(o.dir, jobId, version, part, o.attempt), bytes, o.sync);
    written[part] = bytes.byteLength;
  }));
  return written;
}

async function writePartAsync(file: string, bytes: Uint8Array, sync: boolean): Promise<void> {
  const fh = await open(file, 'w');
  try {
    for (let at = 0; at < bytes.byteLength;) at += (await fh.write(bytes, at, Math.min(bytes.byteLength - at, 1 << 30), at)).bytesWritten;
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A part's bytes in an ArrayBuffer of their own (aligned for a Float32Array view, no copy), read in
 * pieces: readFileSync stops at 2 GiB. Undefined when the file is gone or not `byteLength` bytes.
 * `into`: read into this array instead (a buffer the caller reuses) when it is exactly that size. */
export function readPart(file: string, byteLength: number, into?: Uint8Array): Uint8Array | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    if (fstatSync(fd).size !== byteLength) return undefined;
    const out = into?.byteLength === byteLength ? into : new Uint8Array(new ArrayBuffer(byteLength));
    for (let at = 0; at < byteLength;) {
      const n = readSync(fd, out, at, Math.min(byteLength - at, 1 << 30), at);
      if (n === 0) return undefined;
      at += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

export type CheckpointDir = {
  readonly dir: string;
  /** Writes one part; `sync` (full durability) also flushes it before the row naming it may commit. */
  put(jobId: string, version: number, part: CheckpointPart, bytes: Uint8Array): void;
  /** The part's bytes, or undefined when the file is gone or not the size its row recorded. */
  get(jobId: string, version: number, part: CheckpointPart, byteLength: number): Uint8Array | undefined;
  /** The part as a stream (a download), its file open already, or undefined when the file is gone or not
   * the recorded size; the caller must read it (it closes the file at its end). */
  stream(jobId: string, version: number, part: CheckpointPart, byteLength: number): ReadStream | undefined;
  /** Gives a round attempt's staged parts the version's own names (the winning commit, after its check). */
  promote(jobId: string, version: number, attempt: string, parts: readonly CheckpointPart[]): void;
  /** Removes whatever a round attempt staged (it lost, failed or crashed); absent files are fine. */
  discard(jobId: string, version: number, attempt: string): void;
  /** Removes a version's files (retention, rollback: after the row is gone); absent ones are fine. */
  remove(jobId: string, version: number): void;
  /** Removes files no stored row names (`stored(dirName, version, part)`): what a crash leaves. */
  removeOrphans(stored: (dirName: string, version: number, part: CheckpointPart) => boolean): number;
};

export function openCheckpointDir(dir: string, sync: boolean): CheckpointDir {
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    put(jobId, version, part, bytes) {
      mkdirSync(join(dir, jobDirName(jobId)), { recursive: true });
      writePart(checkpointPath(dir, jobId, version, part), bytes, sync);
    },
    promote(jobId, version, attempt, parts) {
      for (const part of parts) renameSync(stagedPath(dir, jobId, version, part, attempt), checkpointPath(dir, jobId, version, part));
      if (sync && parts.length) {
        // the renames reach the disk before the row naming the files commits
        const fd = openSync(join(dir, jobDirName(jobId)), 'r');
        try { fsyncSync(fd); } finally { closeSync(fd); }
      }
    },
    discard(jobId, version, attempt) {
      for (const part of CHECKPOINT_PARTS) rmSync(stagedPath(dir, jobId, version, part, attempt), { force: true });
    },
    get: (jobId, version, part, byteLength) => readPart(checkpointPath(dir, jobId, version, part), byteLength),
    stream(jobId, version, part, byteLength) {
      // opened here, so a retention that removes the file before the download reads it cannot cut the
      // download short (an open file stays readable after its name is gone)
      let fd: number;
      try {
        fd = openSync(checkpointPath(dir, jobId, version, part), 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      if (fstatSync(fd).size !== byteLength) { closeSync(fd); return undefined; }
      return createReadStream('', { fd, highWaterMark: 1 << 20 });
    },
    remove(jobId, version) {
      for (const part of CHECKPOINT_PARTS) rmSync(checkpointPath(dir, jobId, version, part), { force: true });
    },
    removeOrphans(stored) {
      let removed = 0;
      for (const job of readdirSync(dir, { withFileTypes: true })) {
        if (!job.isDirectory()) continue;
        for (const f of readdirSync(join(dir, job.name))) {
          const m = /^v(\d+)\.(params|momentum|residual|delta)$/.exec(f);
          if (m && stored(job.name, Number(m[1]), m[2] as CheckpointPart)) continue;
          rmSync(join(dir, job.name, f), { force: true });
          removed++;
        }
      }
      return removed;
    },
  };
}
