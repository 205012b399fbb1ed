// npm run bench:relay — upload throughput of a live relay on loopback for a 1M-parameter model.
// The relay runs as its own process (as in production); this process leases tasks, then sends many
// concurrent update frames (top-k 1 % and dense int8), and samples the relay's RSS while it does, and
// its live memory (heap + buffers after a full GC) before and after each run: what a leak would grow.
// Rounds are disabled (K huge) so the figure is intake: frame parse, lease check, full decode and
// finite/norm checks, sha-256, SQLite commit (BENCH_DATABASE_URL=postgres://…: an empty Postgres database
// instead). Last line:
//   relay: <N> updates/s topk1%, <M> updates/s int8, p99 <X> ms, rss <Y> MB
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeUpdate, type Compression } from '../shared/codec/index.ts';
import { paramCount, type MlpConfig } from '../shared/models/config.ts';
import { encodeUpdateFrame } from '../shared/protocol/frame.ts';
import type { Task } from '../shared/protocol/messages.ts';
import { rng } from '../shared/util/rng.ts';
import { createIdentity, signTaskRequest, signUpdate } from '../shared/security/identity.ts';
import { solvePow } from '../shared/security/pow.ts';

const TOPK_UPLOADS = Number(process.env.BENCH_TOPK_UPLOADS ?? 10_000);
const INT8_UPLOADS = Number(process.env.BENCH_INT8_UPLOADS ?? 500);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const model: MlpConfig = { kind: 'mlp', inputs: 784, hidden: [1260], classes: 10 }; // 1,001,710 parameters
const N = paramCount(model);

const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-bench-'));
// The bench relay's server script: the real app, with two 1M-parameter jobs and no evaluation.
const script = join(dataDir, 'relay.mts');
writeFileSync(script, `
import { buildApp } from ${JSON.stringify(join(import.meta.dirname, '../server/app.ts'))};
import { defaultJobSpec } from ${JSON.stringify(join(import.meta.dirname, '../server/default-job.ts'))};
// one client stands in for many volunteers here, so the per-identity and per-address limits are lifted
const lifted = { capacity: 1e9, refillPerSecond: 1e9 };
const relay = await buildApp({ dataDir: ${JSON.stringify(dataDir)}, databaseUrl: ${JSON.stringify(process.env.BENCH_DATABASE_URL)}, port: 0, host: '127.0.0.1', defaultJob: false, evaluate: false,
  defence: { powDifficulty: 8, limits: { tasksPerAddress: lifted, tasksPerIdentity: lifted, uploadsPerAddress: lifted, uploadsPerIdentity: lifted } } });
for (const [id, compression] of [['bench-topk', { kind: 'topk', fraction: 0.01, bits: 8 }], ['bench-int8', { kind: 'int8', block: 256 }]]) {
  const spec = defaultJobSpec({ updatesPerRound: 1e9, quorum: 1e9, leaseMs: 3_600_000, stalenessBound: 1000, compression });
  relay.app.scheduler.createJob(id, { ...spec, model: ${JSON.stringify(model)} }, 'running');
}
process.once('SIGTERM', () => { void relay.close().then(() => process.exit(0)); });
// the bench's probe of retained memory: collect garbage, then report the heap and native buffers still live
process.on('SIGUSR2', () => { globalThis.gc!(); globalThis.gc!(); const m = process.memoryUsage(); process.stdout.write('MEM ' + (m.heapUsed + m.external) + '\\n'); });
process.stdout.write('URL ' + relay.url + '\\n');
`);
// BENCH_CPU_PROF=dir writes a V8 CPU profile of the relay process there (open in Chrome DevTools).
const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
const child = spawn(process.execPath, [...prof, '--expose-gc', '--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
let childOut = '';
const fromChild = (re: RegExp) => new Promise<string>((resolve, reject) => {
  const look = () => { const m = re.exec(childOut); if (m) { childOut = childOut.slice(m.index + m[0].length); child.stdout!.off('data', look); resolve(m[1]); } };
  child.stdout!.on('data', look);
  child.once('exit', (c) => reject(new Error(`bench relay exited with ${c}`)));
  look();
});
child.stdout!.on('data', (c) => { childOut += c; });
const url = await fromChild(/URL (\S+)\n/);
/** Heap + native buffers the relay still holds after a full garbage collection, MB: what a leak would grow. */
const liveMb = async () => { const m = fromChild(/MEM (\d+)\n/); child.kill('SIGUSR2'); return Number(await m) / 1e6; };
/** CPU seconds the relay process has used (user + system), from /proc: what it costs, whatever the load. */
const cpuSeconds = () => {
  const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;

const post = async (path: string, body: BodyInit, type: string) => fetch(url + path, { method: 'POST', body, headers: { 'content-type': type } });
// a signing identity, registered with its proof of work; every upload is signed (verification is intake cost)
const identity = await createIdentity();
const pow = await (await fetch(url + '/api/volunteers/challenge')).json() as { challenge: string; difficulty: number };
const { volunteerId } = await (await post('/api/volunteers', JSON.stringify({
  publicKey: identity.publicKey, challenge: pow.challenge, nonce: await solvePow(pow.challenge, pow.difficulty),
}), 'application/json')).json() as { volunteerId: string };

async function pool<T>(count: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next < count) { const i = next++; out[i] = await work(i); } }));
  return out;
}

async function run(jobId: string, c: Compression, uploads: number) {
  const r = rng(7);
  const delta = Float32Array.from({ length: N }, () => r.normal() * 1e-3);
  const payload = encodeUpdate(delta, c);
  const tasks = await pool(uploads, async () => {
    const at = Date.now(); // task requests are signed too (not timed here: this is the lease phase)
    const headers = { 'content-type': 'application/json', 'x-tabtrain-time': String(at), 'x-tabtrain-signature': await signTaskRequest(identity, jobId, at) };
    return (await (await fetch(`${url}/api/jobs/${jobId}/tasks`, { method: 'POST', headers, body: JSON.stringify({ volunteerId }) })).json()) as Task;
  });
  const frames = tasks.map((t) => encodeUpdateFrame({ lease: t.lease, volunteerId, losses: [0.5], samples: 640, computeMs: 100 }, payload));
  const signatures = await Promise.all(tasks.map((t, i) => signUpdate(identity, t.taskId, t.lease, frames[i])));
  const live0 = await liveMb();
  const rss: number[] = [rssMb()];
  const latencies: number[] = [];
  const start = performance.now();
  const cpu0 = cpuSeconds();
  await pool(uploads, async (i) => {
    const t0 = performance.now();
    const res = await fetch(`${url}/api/tasks/${tasks[i].taskId}/update`, {
      method: 'POST', body: frames[i] as BodyInit, headers: { 'content-type': 'application/octet-stream', 'x-tabtrain-signature': signatures[i] },
    });
    if (res.status !== 200) throw new Error(`upload ${i} answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
    latencies.push(performance.now() - t0);
    if (i % 500 === 0) rss.push(rssMb());
  });
  const seconds = (performance.now() - start) / 1000;
  const cpuMs = ((cpuSeconds() - cpu0) * 1000) / uploads;
  rss.push(rssMb());
  const live1 = await liveMb();
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)];
  const perSec = uploads / seconds;
  console.log(`${c.kind}: ${uploads} uploads of ${payload.length} bytes (${(4 * N / payload.length).toFixed(1)}× under fp32) in ${seconds.toFixed(1)} s = ${perSec.toFixed(0)}/s, p50 ${latencies[latencies.length >> 1].toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, relay rss ${rss.map((x) => x.toFixed(0)).join(' → ')} MB, live after GC ${live0.toFixed(0)} → ${live1.toFixed(0)} MB; relay CPU ${cpuMs.toFixed(2)} ms/update (${(1000 / cpuMs).toFixed(0)}/s per fully available core)`);
  return { perSec, p99, rss };
}

try {
  const topk = await run('bench-topk', { kind: 'topk', fraction: 0.01, bits: 8 }, TOPK_UPLOADS);
  const int8 = await run('bench-int8', { kind: 'int8', block: 256 }, INT8_UPLOADS);
  const rss = Math.max(...topk.rss, ...int8.rss);
  console.log(`relay: ${topk.perSec.toFixed(0)} updates/s topk1%, ${int8.perSec.toFixed(0)} updates/s int8, p99 ${Math.max(topk.p99, int8.p99).toFixed(1)} ms, rss ${rss.toFixed(0)} MB`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
}
