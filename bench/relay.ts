// npm run bench:relay — upload intake of live relays on loopback for a 1M-parameter model.
// Each relay runs as its own process (as in production); this process leases tasks, then sends many
// concurrent update frames (top-k 1 % and dense int8). The relay's CPU (process.cpuUsage in the relay,
// over IPC) divided by uploads is the figure that means something on a busy machine; wall-clock rates
// swing with whatever else runs. Rounds are disabled (K huge), so the figure is intake: frame parse, lease
// check, signature, full decode and finite/norm checks, sha-256, the store's commit.
// Then, on a fresh Postgres database (created here, dropped after; BENCH_DATABASE_URL names the server's
// admin database, default the local postgres user): one relay's CPU per top-k upload, and three relays on
// that database taking uploads leased from one relay and sent to another, counted afterwards in the
// database: every acknowledged upload stored once, no task leased twice. Last line:
//   relay: <C> ms cpu per topk1% upload, <N> updates/s topk1%, <M> updates/s int8, p99 <X> ms, rss <Y> MB; postgres: <C2> ms cpu per upload, 3 relays <N3> updates/s
// BENCH_CPU_PROF=dir writes a V8 CPU profile of the SQLite relay's top-k upload phase there.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { encodeUpdate, type Compression } from '../shared/codec/index.ts';
import { paramCount, type MlpConfig } from '../shared/models/config.ts';
import { encodeUpdateFrame } from '../shared/protocol/frame.ts';
import type { Task } from '../shared/protocol/messages.ts';
import { rng } from '../shared/util/rng.ts';
import { createIdentity, signTaskRequest, signUpdate, type Identity } from '../shared/security/identity.ts';
import { solvePow } from '../shared/security/pow.ts';

const TOPK_UPLOADS = Number(process.env.BENCH_TOPK_UPLOADS ?? 3000);
const INT8_UPLOADS = Number(process.env.BENCH_INT8_UPLOADS ?? 200);
const PG_UPLOADS = Number(process.env.BENCH_PG_UPLOADS ?? 1500);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const model: MlpConfig = { kind: 'mlp', inputs: 784, hidden: [1260], classes: 10 }; // 1,001,710 parameters
const N = paramCount(model);
const TOPK: Compression = { kind: 'topk', fraction: 0.01, bits: 8 };
const INT8: Compression = { kind: 'int8', block: 256 };

const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-bench-'));
// The bench relay's server script: the real app, with two 1M-parameter jobs (unless another relay on the
// same database made them) and no evaluation; it answers the bench's probes over IPC.
const script = join(dataDir, 'relay.mts');
writeFileSync(script, `
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { buildApp } from ${JSON.stringify(join(import.meta.dirname, '../server/app.ts'))};
import { defaultJobSpec } from ${JSON.stringify(join(import.meta.dirname, '../server/default-job.ts'))};
// one client stands in for many volunteers here, so the per-identity and per-address limits are lifted
const lifted = { capacity: 1e9, refillPerSecond: 1e9 };
// BENCH_GROUP_COMMIT=off: one transaction per upload (to compare); =<ms>: batches wait that long for company
const gc = process.env.BENCH_GROUP_COMMIT;
const relay = await buildApp({ dataDir: process.env.RELAY_DIR, databaseUrl: process.env.RELAY_DATABASE_URL || undefined, port: 0, host: '127.0.0.1', defaultJob: false, evaluate: false,
  groupCommit: gc === 'off' ? false : gc ? { waitMs: Number(gc) } : undefined,
  defence: { powDifficulty: 8, limits: { tasksPerAddress: lifted, tasksPerIdentity: lifted, uploadsPerAddress: lifted, uploadsPerIdentity: lifted } } });
if (process.env.RELAY_MAKE_JOBS) {
  for (const [id, compression] of [['bench-topk', ${JSON.stringify(TOPK)}], ['bench-int8', ${JSON.stringify(INT8)}]]) {
    const spec = defaultJobSpec({ updatesPerRound: 1e9, quorum: 1e9, leaseMs: 3_600_000, stalenessBound: 1000, compression });
    await relay.app.scheduler.createJob(id, { ...spec, model: ${JSON.stringify(model)} }, 'running');
  }
}
const session = new Session();
process.on('message', async (m) => {
  // all threads, and the event loop's thread alone (Linux: its scheduler time in ns)
  if (m === 'batches') process.send({ batches: relay.app.stores.groupCommitStats?.() });
  else if (m === 'cpu') { const u = process.cpuUsage(); const main = Number(readFileSync('/proc/self/task/' + process.pid + '/schedstat', 'utf8').split(' ')[0]) / 1e6; process.send({ cpu: (u.user + u.system) / 1000, main }); }
  // the bench's probe of retained memory: collect garbage, then report the heap and native buffers still live
  else if (m === 'mem') { globalThis.gc(); globalThis.gc(); const u = process.memoryUsage(); process.send({ mem: u.heapUsed + u.external }); }
  else if (m === 'prof-start') { session.connect(); await session.post('Profiler.enable'); await session.post('Profiler.setSamplingInterval', { interval: 200 }); await session.post('Profiler.start'); process.send({ prof: true }); }
  else if (m && m.profStop) { const { profile } = await session.post('Profiler.stop'); writeFileSync(m.profStop, JSON.stringify(profile)); session.disconnect(); process.send({ prof: true }); }
  else if (m === 'close') { await relay.close(); process.exit(0); }
});
process.send({ url: relay.url });
`);

type Reply = { batches?: { batches: number; items: number }; url?: string; cpu?: number; main?: number; mem?: number; prof?: boolean };
type RelayProcess = {
  url: string; pid: number;
  /** the relay's own CPU time so far, ms (all its threads: event loop, libuv pool, workers, GC) */
  cpuMs(): Promise<{ all: number; main: number }>;
  /** heap + native buffers still live after a full GC, MB */
  liveMb(): Promise<number>;
  rssMb(): number;
  ask(m: unknown): Promise<Reply>;
  close(): Promise<void>;
};

async function startRelay(dir: string, databaseUrl?: string, makeJobs = true): Promise<RelayProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', script], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, RELAY_DIR: dir, RELAY_DATABASE_URL: databaseUrl ?? '', RELAY_MAKE_JOBS: makeJobs ? '1' : '' },
  });
  const replies: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  child.on('message', (r: Reply) => replies.shift()?.resolve(r));
  child.once('exit', (c) => { for (const w of replies.splice(0)) w.reject(new Error(`bench relay exited with ${c}`)); });
  const next = () => new Promise<Reply>((resolve, reject) => { replies.push({ resolve, reject }); });
  const ask = (m: unknown) => { const r = next(); child.send(m as string); return r; };
  const { url } = await next();
  return {
    url: url!, pid: child.pid!, ask,
    cpuMs: async () => { const r = await ask('cpu'); return { all: r.cpu!, main: r.main! }; },
    liveMb: async () => (await ask('mem')).mem! / 1e6,
    rssMb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024,
    close: async () => { const exited = new Promise((r) => child.once('exit', r)); child.send('close'); await exited; },
  };
}

async function pool<T>(count: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next < count) { const i = next++; out[i] = await work(i); } }));
  return out;
}

let retried = 0;
/** A relay short of database connections (a busy machine) answers 503: a volunteer asks again, and so does
 * this (an upload re-sent is idempotent). How often is reported. */
async function again(send: () => Promise<Response>): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const res = await send();
    if (res.status !== 503 || attempt === 10) return res;
    await res.arrayBuffer();
    retried++;
    await new Promise((r) => setTimeout(r, 300));
  }
}

const post = async (url: string, body: BodyInit, type: string) => fetch(url, { method: 'POST', body, headers: { 'content-type': type } });

/** A signing identity registered with its proof of work: every upload is signed (verification is intake cost). */
async function register(url: string): Promise<{ identity: Identity; volunteerId: string }> {
  const identity = await createIdentity();
  const pow = await (await fetch(url + '/api/volunteers/challenge')).json() as { challenge: string; difficulty: number };
  const { volunteerId } = await (await post(url + '/api/volunteers', JSON.stringify({
    publicKey: identity.publicKey, challenge: pow.challenge, nonce: await solvePow(pow.challenge, pow.difficulty),
  }), 'application/json')).json() as { volunteerId: string };
  return { identity, volunteerId };
}

type Run = { perSec: number; p99: number; cpuMs: number; rss: number[]; taskIds: string[]; acked: number };

/** Leases `uploads` tasks (lease i from relays[i % n]), then uploads them (upload i to relays[(i + 1) % n])
 * and measures the upload phase: rate, latency, and the relays' CPU per upload (summed over relays). */
async function run(relays: RelayProcess[], who: { identity: Identity; volunteerId: string }, jobId: string, c: Compression, uploads: number, profile?: string): Promise<Run> {
  const { identity, volunteerId } = who;
  const r = rng(7);
  const delta = Float32Array.from({ length: N }, () => r.normal() * 1e-3);
  const payload = encodeUpdate(delta, c);
  const at = (i: number) => relays[i % relays.length];
  const tasks = await pool(uploads, async (i) => {
    // task requests are signed too (not timed here: this is the lease phase)
    const res = await again(async () => {
      const t = Date.now(); // signed anew for each try: a signed task request is good once
      const headers = { 'content-type': 'application/json', 'x-tabtrain-time': String(t), 'x-tabtrain-signature': await signTaskRequest(identity, jobId, t) };
      return fetch(`${at(i).url}/api/jobs/${jobId}/tasks`, { method: 'POST', headers, body: JSON.stringify({ volunteerId }) });
    });
    if (res.status !== 200) throw new Error(`lease ${i} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as Task;
  });
  const frames = tasks.map((t) => encodeUpdateFrame({ lease: t.lease, volunteerId, losses: [0.5], samples: 640, computeMs: 100 }, payload));
  const signatures = await Promise.all(tasks.map((t, i) => signUpdate(identity, t.taskId, t.lease, frames[i])));
  const sampleRss = () => Math.max(...relays.map((x) => x.rssMb()));
  const rss: number[] = [sampleRss()];
  const latencies: number[] = [];
  if (profile) await relays[0].ask('prof-start');
  const batches = async () => (await Promise.all(relays.map(async (x) => (await x.ask('batches')).batches ?? { batches: 0, items: 0 })))
    .reduce((a, b) => ({ batches: a.batches + b.batches, items: a.items + b.items }));
  const b0 = await batches();
  const cpu0 = await Promise.all(relays.map((x) => x.cpuMs()));
  const start = performance.now();
  let acked = 0;
  const retried0 = retried;
  await pool(uploads, async (i) => {
    const t0 = performance.now();
    const res = await again(() => fetch(`${at(i + 1).url}/api/tasks/${tasks[i].taskId}/update`, {
      method: 'POST', body: frames[i] as BodyInit, headers: { 'content-type': 'application/octet-stream', 'x-tabtrain-signature': signatures[i] },
    }));
    if (res.status !== 200) throw new Error(`upload ${i} answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
    acked++;
    latencies.push(performance.now() - t0);
    if (i % 500 === 0) rss.push(sampleRss());
  });
  const seconds = (performance.now() - start) / 1000;
  const cpu1 = await Promise.all(relays.map((x) => x.cpuMs()));
  const b1 = await batches();
  const shared = b1.batches > b0.batches ? `, ${((b1.items - b0.items) / (b1.batches - b0.batches)).toFixed(1)} uploads per commit` : '';
  if (profile) await relays[0].ask({ profStop: profile });
  const cpuMs = cpu1.reduce((s, x, i) => s + x.all - cpu0[i].all, 0) / uploads;
  const mainMs = cpu1.reduce((s, x, i) => s + x.main - cpu0[i].main, 0) / uploads;
  rss.push(sampleRss());
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)];
  const perSec = uploads / seconds;
  console.log(`${c.kind} on ${relays.length} relay(s): ${uploads} uploads of ${payload.length} bytes (${(4 * N / payload.length).toFixed(1)}× under fp32) in ${seconds.toFixed(1)} s = ${perSec.toFixed(0)}/s, p50 ${latencies[latencies.length >> 1].toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, relay rss ${rss.map((x) => x.toFixed(0)).join(' → ')} MB; relay CPU ${cpuMs.toFixed(3)} ms/update, of it the event loop's thread ${mainMs.toFixed(3)} ms (${(1000 / cpuMs).toFixed(0)}/s per fully available core)${shared}${retried > retried0 ? `; ${retried - retried0} answers were 503 and sent again` : ''}`);
  return { perSec, p99, cpuMs, rss, taskIds: tasks.map((t) => t.taskId), acked };
}

/** One SQLite relay: top-k and int8 intake. */
async function sqlitePart() {
  const relay = await startRelay(join(dataDir, 'sqlite'));
  try {
    const who = await register(relay.url);
    const live0 = await relay.liveMb();
    const profile = process.env.BENCH_CPU_PROF ? join(process.env.BENCH_CPU_PROF, `relay-topk-${Date.now()}.cpuprofile`) : undefined;
    const topk = await run([relay], who, 'bench-topk', TOPK, TOPK_UPLOADS, profile);
    const int8 = await run([relay], who, 'bench-int8', INT8, INT8_UPLOADS);
    const live1 = await relay.liveMb();
    console.log(`sqlite relay live after GC ${live0.toFixed(0)} → ${live1.toFixed(0)} MB${profile ? `; top-k profile in ${profile}` : ''}`);
    return { topk, int8 };
  } finally {
    await relay.close();
  }
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>, url = ADMIN_URL): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

/** One relay on a fresh database (C2), then three on another fresh one (N3), checked in the database. */
async function postgresPart() {
  const databases: string[] = [];
  const fresh = async () => {
    const name = `tabtrain_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
    await admin((c) => c.query(`CREATE DATABASE ${name}`));
    databases.push(name);
    const u = new URL(ADMIN_URL); u.pathname = `/${name}`;
    return u.toString();
  };
  const relays: RelayProcess[] = [];
  try {
    const one = await fresh();
    relays.push(await startRelay(join(dataDir, 'pg1'), one));
    const single = await run(relays, await register(relays[0].url), 'bench-topk', TOPK, PG_UPLOADS);
    await relays.pop()!.close();

    const shared = await fresh();
    relays.push(await startRelay(join(dataDir, 'pg3-0'), shared));
    relays.push(...await Promise.all([1, 2].map((i) => startRelay(join(dataDir, `pg3-${i}`), shared, false))));
    const three = await run(relays, await register(relays[0].url), 'bench-topk', TOPK, PG_UPLOADS);
    // in the database: every acknowledged upload stored once, each leased task once, all accepted
    const counts = await admin(async (c) => (await c.query<{ tasks: number; accepted: number; updates: number; distinct_updates: number }>(`SELECT
      (SELECT COUNT(*)::int FROM tasks WHERE job_id = 'bench-topk') AS tasks,
      (SELECT COUNT(*)::int FROM tasks WHERE job_id = 'bench-topk' AND state = 'accepted') AS accepted,
      (SELECT COUNT(*)::int FROM updates WHERE job_id = 'bench-topk') AS updates,
      (SELECT COUNT(DISTINCT task_id)::int FROM updates WHERE job_id = 'bench-topk') AS distinct_updates`)).rows[0], shared);
    const leased = new Set(three.taskIds).size;
    const lost = three.acked - counts.updates;
    const ok = leased === PG_UPLOADS && counts.tasks === PG_UPLOADS && counts.accepted === three.acked && counts.updates === three.acked && counts.distinct_updates === counts.updates;
    console.log(`3 relays on one Postgres: ${three.acked} uploads acknowledged, ${counts.updates} stored (${counts.distinct_updates} distinct), ${lost} lost; ${PG_UPLOADS} leases gave ${leased} distinct tasks, ${counts.tasks} task rows, ${counts.accepted} accepted: ${ok ? 'none lost or leased twice' : 'MISMATCH'}`);
    if (!ok) throw new Error('3 relays on one Postgres lost an upload or leased a task twice');
    return { single, three };
  } finally {
    await Promise.all(relays.map((r) => r.close()));
    for (const name of databases) await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
}

try {
  const { topk, int8 } = await sqlitePart();
  const rss = Math.max(...topk.rss, ...int8.rss);
  const head = `relay: ${topk.cpuMs.toFixed(2)} ms cpu per topk1% upload, ${topk.perSec.toFixed(0)} updates/s topk1%, ${int8.perSec.toFixed(0)} updates/s int8, p99 ${Math.max(topk.p99, int8.p99).toFixed(1)} ms, rss ${rss.toFixed(0)} MB`;
  let tail: string;
  try {
    if (PG_UPLOADS <= 0) throw new Error('BENCH_PG_UPLOADS=0 does not exist');
    const { single, three } = await postgresPart();
    tail = `postgres: ${single.cpuMs.toFixed(2)} ms cpu per upload, 3 relays ${three.perSec.toFixed(0)} updates/s`;
  } catch (e) {
    const why = e instanceof Error ? `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` : String(e);
    if (!/ECONNREFUSED|ENOTFOUND|password|does not exist/.test(why)) throw e;
    console.log(`postgres not measured: ${why} (set BENCH_DATABASE_URL to a server's admin database)`);
    tail = 'postgres: not measured';
  }
  console.log(`${head}; ${tail}`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
