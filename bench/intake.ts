// npm run bench:intake — what a large upload costs the relay's event loop. For each size a live relay runs as
// its own process with the Moby-Dick demo's text and a GPT of that size (no round closes, no evaluation:
// only intake runs); this process uploads K int8 updates made with the codec from random Δ, one after
// another over real HTTP on loopback, and reads the relay's main-thread CPU time (the event loop's, from
// /proc) and all its threads' over the uploads, with the relay's own event-loop delay (its /metrics);
// then K more while /healthz is polled every 10 ms (from this process, which is sending the bodies too). Then, in this
// process, the pool's dispatch cost against checking a small body on the loop, which sets the size above
// which intake sends a body's checks to the pool (skip with BENCH_INTAKE_DISPATCH=0: the part that needs
// this version's modules). Env: BENCH_INTAKE_SIZES (default "1M,10M"; also "31M", "124M"), BENCH_INTAKE_K
// (default 4). Last line:
//   intake: <size> upload costs the event loop <X> ms CPU (all threads <Y> ms), loop delay max <L> ms, /healthz p99 <H> ms during uploads; pool dispatch <D> ms of loop CPU vs <V> ms to check a 1 MiB body on the loop
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeUpdate } from '../shared/codec/index.ts';
import { mobyDick } from '../shared/jobs/demos.ts';
import { tokenizerVocab } from '../shared/jobs/spec.ts';
import { paramCount, type GptConfig } from '../shared/models/config.ts';
import { encodeUpdateFrame } from '../shared/protocol/frame.ts';
import type { JobInfo, Task } from '../shared/protocol/messages.ts';
import { createIdentity, signTaskRequest, signUpdate } from '../shared/security/identity.ts';
import { solvePow } from '../shared/security/pow.ts';
import { rng } from '../shared/util/rng.ts';

const JOB = 'moby-dick';
const K = Number(process.env.BENCH_INTAKE_K ?? 4);
const shapes: Record<string, Omit<GptConfig, 'vocab'>> = {
  '1M': { kind: 'gpt', context: 64, layers: 1, heads: 2, width: 10 }, // 1,007,130 parameters
  '10M': { kind: 'gpt', context: 64, layers: 2, heads: 4, width: 96 }, // 9,879,360
  '31M': { kind: 'gpt', context: 64, layers: 2, heads: 4, width: 288 },
  '124M': { kind: 'gpt', context: 64, layers: 7, heads: 12, width: 768 }, // 126,860,544
};
const sizes = (process.env.BENCH_INTAKE_SIZES ?? '1M,10M').split(',').map((s) => s.trim()).filter(Boolean);
for (const s of sizes) if (!shapes[s]) throw new Error(`BENCH_INTAKE_SIZES: unknown size ${s}; use ${Object.keys(shapes).join(', ')}`);

const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))] : NaN; };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** CPU ms of a process (all threads, user + system, in 10 ms ticks), or of one of its threads (the main
 * thread's id is the pid) from the scheduler's own count, in nanoseconds. */
const cpuMs = (pid: number, tid?: number): number => {
  if (tid !== undefined) return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
};

async function startRelay(dataDir: string, model: Omit<GptConfig, 'vocab'>): Promise<{ child: ChildProcess; url: string }> {
  const script = join(dataDir, 'relay.mts');
  const lifted = { capacity: 1e9, refillPerSecond: 1e9 };
  writeFileSync(script, `
import { buildApp } from ${JSON.stringify(join(import.meta.dirname, '../server/app.ts'))};
const relay = await buildApp({ dataDir: ${JSON.stringify(dataDir)}, port: 0, host: '127.0.0.1', defaultJob: false, evaluate: false, demo: ${JSON.stringify(JOB)},
  demoOverrides: {
    model: ${JSON.stringify(model)},
    hyperparameters: { ...${JSON.stringify(mobyDick.hyperparameters)}, steps: 1, batchSize: 1, updatesPerRound: 1000, quorum: 1000, roundTimeoutMs: 3_600_000, leaseMs: 3_600_000, until: undefined },
  },
  defence: { powDifficulty: 8, replication: { baseRate: 0 }, limits: { tasksPerAddress: ${JSON.stringify(lifted)}, tasksPerIdentity: ${JSON.stringify(lifted)}, uploadsPerAddress: ${JSON.stringify(lifted)}, uploadsPerIdentity: ${JSON.stringify(lifted)} } } });
process.once('SIGTERM', () => { void relay.close().then(() => process.exit(0)); });
process.stdout.write('URL ' + relay.url + '\\n');
`);
  // BENCH_INTAKE_NODE_FLAGS: flags for the relay's node (e.g. --cpu-prof, --trace-gc) to see where its loop goes
  const flags = (process.env.BENCH_INTAKE_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c) => { out += c; const m = /URL (\S+)\n/.exec(out); if (m) resolve(m[1]); });
    child.once('exit', (c) => reject(new Error(`bench relay exited with ${c}`)));
  });
  return { child, url };
}

type Result = { size: string; params: number; bytes: number; loopMs: number[]; allMs: number; wallMs: number[]; lagMs: { p99: number; max: number }; gcPerUpload: number; healthP99: number; healthMax: number };

async function runSize(size: string): Promise<Result> {
  const model = shapes[size];
  const n = paramCount({ ...model, vocab: tokenizerVocab.bpe });
  const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-intake-'));
  const { child, url } = await startRelay(dataDir, model);
  const pid = child.pid!;
  try {
    const post = (path: string, body: BodyInit, headers: Record<string, string>) => fetch(url + path, { method: 'POST', body, headers });
    const info = await (await fetch(`${url}/api/jobs/${JOB}`)).json() as JobInfo;
    if (paramCount(info.model) !== n) throw new Error(`unexpected job: ${paramCount(info.model)} parameters`);
    const identity = await createIdentity();
    const pow = await (await fetch(`${url}/api/volunteers/challenge`)).json() as { challenge: string; difficulty: number };
    const { volunteerId } = await (await post('/api/volunteers', JSON.stringify({
      publicKey: identity.publicKey, challenge: pow.challenge, nonce: await solvePow(pow.challenge, pow.difficulty),
    }), { 'content-type': 'application/json' })).json() as { volunteerId: string };
    // frames and signatures made before the clock starts: only the relay's work is measured
    const r0 = rng(11);
    const uploads: { task: Task; frame: Uint8Array; headers: Record<string, string> }[] = [];
    for (let i = 0; i < 2 * K; i++) {
      const at = Date.now();
      const r = await post(`/api/jobs/${JOB}/tasks`, JSON.stringify({ volunteerId }), { 'content-type': 'application/json', 'x-tabtrain-time': String(at), 'x-tabtrain-signature': await signTaskRequest(identity, JOB, at) });
      if (r.status !== 200) throw new Error(`task request answered ${r.status}: ${await r.text()}`);
      const task = await r.json() as Task;
      const delta = new Float32Array(n);
      for (let j = 0; j < n; j++) delta[j] = r0.normal() * 1e-5;
      const frame = encodeUpdateFrame({ lease: task.lease, volunteerId, losses: [5], samples: task.steps * task.batchSize, computeMs: 1000 }, encodeUpdate(delta, task.compression));
      uploads.push({ task, frame, headers: { 'content-type': 'application/octet-stream', 'x-tabtrain-signature': await signUpdate(identity, task.taskId, task.lease, frame) } });
    }
    // the relay settles first (worker threads loaded, startup work done): under 10 % of a core for 2 s
    for (let i = 0, last = cpuMs(pid); i < 60; i++) { await sleep(2000); const c = cpuMs(pid); if (c - last < 200) break; last = c; }

    const send = async (i: number) => {
      const u = uploads[i];
      const res = await post(`/api/tasks/${u.task.taskId}/update`, u.frame as BodyInit, u.headers);
      const text = await res.text();
      if (res.status !== 200) throw new Error(`upload ${i} answered ${res.status}: ${text}`);
    };
    // the first K uploads alone, for their CPU (the answer comes once the update is stored: the relay's
    // main thread has done its part); the next K with /healthz polled, for its delay
    const loopMs: number[] = [], wallMs: number[] = [];
    const scrape = () => fetch(`${url}/metrics`).then((r) => r.text());
    // resets the relay's own event-loop delay histogram (prom-client's, sampled every 10 ms)
    const gcMs = (text: string) => 1000 * [...text.matchAll(/^tabtrain_process_nodejs_gc_duration_seconds_sum\{kind="[^"]+"\} (\S+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    const gc0 = gcMs(await scrape());
    const all0 = cpuMs(pid);
    for (let i = 0; i < K; i++) {
      const c0 = cpuMs(pid, pid), t0 = performance.now();
      await send(i);
      wallMs.push(performance.now() - t0);
      loopMs.push(cpuMs(pid, pid) - c0);
    }
    const allMs = cpuMs(pid) - all0;
    const text = await scrape();
    const lag = (stat: string) => 1000 * Number(new RegExp(`^tabtrain_process_nodejs_eventloop_lag_${stat}_seconds (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    const lagMs = { p99: lag('p99'), max: lag('max') };
    const gcPerUpload = (gcMs(text) - gc0) / K;
    const polls: number[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const t = performance.now();
        const r = await fetch(`${url}/healthz`);
        await r.arrayBuffer();
        polls.push(performance.now() - t);
        await sleep(10);
      }
    })();
    for (let i = K; i < 2 * K; i++) await send(i);
    polling = false;
    await poller;
    return { size, params: n, bytes: uploads[0].frame.byteLength, loopMs, allMs, wallMs, lagMs, gcPerUpload, healthP99: pct(polls, 0.99), healthMax: Math.max(...polls) };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Loop CPU of checking a body of `bytes` on the loop vs dispatching its check to the pool (this process). */
async function dispatchCost(): Promise<{ bytes: number; loopMs: number; poolMs: number }[]> {
  const { validateEncodedSafe } = await import('../server/defence/validate.ts');
  const { validateOnPool } = await import('../server/defence/validate-file.ts');
  const { openPool } = await import('../server/pool/index.ts');
  const keep = openPool(); // the workers stay up between checks, as in a running relay
  const dir = mkdtempSync(join(tmpdir(), 'tabtrain-dispatch-'));
  const out: { bytes: number; loopMs: number; poolMs: number }[] = [];
  try {
    await validateOnPool('/dev/null', { paramCount: 1 }).catch(() => undefined); // the worker's code loaded
    for (const kib of [16, 64, 256, 1024, 4096]) {
      const n = kib * 1024 - 64;
      const r0 = rng(kib);
      const payload = encodeUpdate(Float32Array.from({ length: n }, () => r0.normal() * 1e-3), { kind: 'int8', block: 256 });
      const file = join(dir, `${kib}.bin`);
      writeFileSync(file, payload);
      const reps = kib <= 256 ? 400 : 60;
      const main = () => cpuMs(process.pid, process.pid);
      let c0 = main();
      for (let i = 0; i < reps; i++) validateEncodedSafe(payload, { paramCount: n });
      const loopMs = (main() - c0) / reps;
      c0 = main();
      for (let i = 0; i < reps; i++) await validateOnPool(file, { paramCount: n });
      const poolMs = (main() - c0) / reps;
      out.push({ bytes: payload.byteLength, loopMs, poolMs });
      console.log(`  ${(payload.byteLength / 1024).toFixed(0)} KiB int8 body: check on the loop ${loopMs.toFixed(3)} ms CPU, on the pool ${poolMs.toFixed(3)} ms of loop CPU (${reps} each)`);
    }
  } finally {
    await keep.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

const results: Result[] = [];
for (const size of sizes) {
  const r = await runSize(size);
  results.push(r);
  const mean = r.loopMs.reduce((a, b) => a + b, 0) / r.loopMs.length;
  console.log(`${size} (${r.params} parameters, ${(r.bytes / 1e6).toFixed(1)} MB int8 frame): event-loop CPU per upload ${r.loopMs.map((m) => m.toFixed(0)).join(' / ')} ms (mean ${mean.toFixed(0)}, of it garbage collection ${r.gcPerUpload.toFixed(0)}), `
    + `all threads ${(r.allMs / K).toFixed(0)} ms per upload; answered in ${r.wallMs.map((m) => (m / 1000).toFixed(2)).join(' / ')} s; `
    + `the relay's own event-loop delay over them p99 ${r.lagMs.p99.toFixed(1)} ms, max ${r.lagMs.max.toFixed(1)} ms; /healthz p99 ${r.healthP99.toFixed(1)} ms, max ${r.healthMax.toFixed(1)} ms during uploads`);
}
const dispatch = process.env.BENCH_INTAKE_DISPATCH === '0' ? undefined : await dispatchCost();
const last = results[results.length - 1];
const lastMean = last.loopMs.reduce((a, b) => a + b, 0) / last.loopMs.length;
const mib = dispatch?.find((d) => d.bytes > 1000 * 1024 && d.bytes < 1100 * 1024);
console.log(`intake: ${last.size} upload costs the event loop ${lastMean.toFixed(0)} ms CPU (all threads ${(last.allMs / K).toFixed(0)} ms), loop delay max ${last.lagMs.max.toFixed(1)} ms, /healthz p99 ${last.healthP99.toFixed(1)} ms during uploads`
  + (mib ? `; pool dispatch ${mib.poolMs.toFixed(3)} ms of loop CPU vs ${mib.loopMs.toFixed(3)} ms to check a 1 MiB body on the loop` : ''));
process.exit(0);
