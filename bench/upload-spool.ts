// npm run bench:spool — what spooling an upload body costs (server/routes/spool.ts), in memory vs to a file,
// at several body sizes: the body arrives as 64 KiB chunks (what a socket hands over), is hashed on the way
// while in memory (a spooled one is hashed on the pool, not here), and is read back whole (intake no longer
// reads a spooled body back: its pool worker reads the file). CPU time (user + system) per body, over REPS bodies each, and the
// relay's memory held while the body arrives (heap + ArrayBuffers after a full GC, the last chunk in).
// One line per size, then the last line:
//   spool: <size> bodies cost <r>× the CPU in a file as in memory; a <big> body held <m> MB in memory vs <f> MB spooled
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { openSpoolDir, spoolBody } from '../server/routes/spool.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const held = () => { gc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };

const CHUNK = 64 * 1024;
const REPS = Number(process.env.BENCH_REPS ?? 20);
const piece = Buffer.alloc(CHUNK, 7);
/** A body of `bytes` as a socket would give it: fresh chunks (a socket's are never reused). */
const body = (bytes: number, probe?: () => void): Readable => {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= bytes) { probe?.(); this.push(null); return; }
      const n = Math.min(CHUNK, bytes - sent);
      sent += n;
      this.push(Buffer.from(piece.subarray(0, n)));
    },
  });
};
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

const dir = openSpoolDir(mkdtempSync(join(tmpdir(), 'tabtrain-spool-')));
const sizes = [16 * 1024, 256 * 1024, 1 << 20, 8 << 20, 64 << 20];
const ratios: { size: number; ratio: number }[] = [];
for (const size of sizes) {
  const per = async (memoryBytes: number) => {
    const t = process.cpuUsage();
    for (let i = 0; i < REPS; i++) {
      const b = await spoolBody(body(size), dir, memoryBytes);
      b.bytes();
      b.discard();
    }
    return cpuMs(process.cpuUsage(t)) / REPS;
  };
  const mem = await per(Infinity);
  const file = await per(0);
  ratios.push({ size, ratio: file / mem });
  console.log(`${(size / 1024).toFixed(0)} KiB: ${mem.toFixed(3)} ms CPU in memory, ${file.toFixed(3)} ms to a file (${(file / mem).toFixed(2)}×)`);
}

// memory held while a big body arrives, measured as its last chunk comes in
const big = 256 << 20;
const heldWhile = async (memoryBytes: number) => {
  const before = held();
  let at = 0;
  const b = await spoolBody(body(big, () => { at = held() - before; }), dir, memoryBytes);
  b.discard();
  return at;
};
const inMemory = await heldWhile(Infinity);
const spooled = await heldWhile(1 << 20);
rmSync(join(dir, '..'), { recursive: true, force: true });
const small = ratios.filter((r) => r.size <= 256 * 1024).map((r) => r.ratio);
console.log(`spool: ≤256 KiB bodies cost ${(small.reduce((a, r) => a + r, 0) / small.length).toFixed(2)}× the CPU in a file as in memory; a ${big >> 20} MiB body held ${(inMemory / 1e6).toFixed(1)} MB in memory vs ${(spooled / 1e6).toFixed(1)} MB spooled`);
