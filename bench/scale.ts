// npm run bench:scale — the relay at about 1M, 10M and 124M parameters. For each size a live relay runs
// as its own process (so its RSS is its own) with the Moby-Dick demo's text and a GPT of that size; this
// process uploads one round of K = 4 int8 updates made with the codec from random Δ (not trained) over
// real HTTP on loopback, and times each stage: upload intake (each upload's answer), the round's stages
// as the relay reports them (read, fold = decode + accumulate, rule, outer step, publish, hash and write =
// the new version's files, on the pool; commit = the row, on the event loop), the round close as seen from outside (last
// upload's answer → the new version visible), and the evaluation (version visible → its evaluation
// visible). /healthz is polled every 10 ms throughout, from a thread of this process's own (the uploads'
// bodies are made before the clock starts); the relay's peak RSS (VmHWM, reset before the
// uploads) and its own event-loop delay (prom-client's monitor, read from /metrics) are reported. Then one
// engine training step at 124M through Node and Dawn, with the memory plan's bytes beside the measured.
// Tasks are one step of batch 1 (the relay's work does not depend on H; a 124M task of the demo's H is over the
// relay's task-size limit). Env: BENCH_SCALE_SIZES (default "1M,10M,124M"), BENCH_SCALE_ENGINE=0 skips the engine step,
// BENCH_SCALE_AGGREGATOR (default centered-clip). Last line:
//   scale: 124M round of 4 closes in <S> s, healthz p99 <H> ms meanwhile, relay rss <R> GB; engine 124M step <E> s
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { encodeUpdate } from '../shared/codec/index.ts';
import { mobyDick } from '../shared/jobs/demos.ts';
import { tokenizerVocab } from '../shared/jobs/spec.ts';
import { paramCount, type GptConfig } from '../shared/models/config.ts';
import { encodeUpdateFrame } from '../shared/protocol/frame.ts';
import type { Eval, JobInfo, Task } from '../shared/protocol/messages.ts';
import { createIdentity, signTaskRequest, signUpdate } from '../shared/security/identity.ts';
import { solvePow } from '../shared/security/pow.ts';
import { rng } from '../shared/util/rng.ts';

const K = 4;
const JOB = 'moby-dick';
const shapes: Record<string, Omit<GptConfig, 'vocab'>> = {
  '1M': { kind: 'gpt', context: 64, layers: 1, heads: 2, width: 10 }, // 1,007,130 parameters
  '10M': { kind: 'gpt', context: 64, layers: 2, heads: 4, width: 96 }, // 9,879,360
  '124M': { kind: 'gpt', context: 64, layers: 7, heads: 12, width: 768 }, // 126,860,544 (GPT-2-small's width and vocabulary)
};
const sizes = (process.env.BENCH_SCALE_SIZES ?? '1M,10M,124M').split(',').map((s) => s.trim()).filter(Boolean);
for (const s of sizes) if (!shapes[s]) throw new Error(`BENCH_SCALE_SIZES: unknown size ${s}; use ${Object.keys(shapes).join(', ')}`);
const aggregator = process.env.BENCH_SCALE_AGGREGATOR ?? 'centered-clip';
const engineOn = process.env.BENCH_SCALE_ENGINE !== '0';

const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))] : NaN; };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** milliseconds on a clock every thread of this process shares */
const now = (): number => performance.timeOrigin + performance.now();

type Poll = { at: number; ms: number };
/** Polls `url`/healthz every 10 ms on a worker thread until stopped; a dropped connection or a non-200
 * answer counts as failed, and polling goes on. Ready once a first, unrecorded poll has been answered (the
 * thread's first fetch loads the HTTP client: a few hundred ms that are not the relay's). */
function startPoller(url: string): { ready: Promise<void>; stop(): Promise<{ polls: Poll[]; failed: number }> } {
  const w = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const now = () => performance.timeOrigin + performance.now();
    const polls = []; let failed = 0, on = true;
    parentPort.once('message', () => { on = false; });
    (async () => {
      await fetch(workerData + '/healthz').then((r) => r.arrayBuffer()).catch(() => undefined);
      parentPort.postMessage('ready');
      while (on) {
        const at = now();
        try { const r = await fetch(workerData + '/healthz'); await r.arrayBuffer(); if (r.status !== 200) failed++; } catch { failed++; }
        polls.push({ at, ms: now() - at });
        await new Promise((r) => setTimeout(r, 10));
      }
      parentPort.postMessage({ polls, failed });
    })();`, { eval: true, workerData: url });
  const ready = new Promise<void>((resolve, reject) => { w.once('message', () => resolve()); w.once('error', reject); });
  const done = ready.then(() => new Promise<{ polls: Poll[]; failed: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); }));
  return { ready, async stop() { w.postMessage('stop'); const r = await done; await w.terminate(); return r; } };
}

type Result = {
  size: string; params: number; intakeMs: number[]; closeS: number; evalS: number; stages: Record<string, number>; stageCpu: Record<string, number>; prefolded: number;
  /** relay CPU seconds by phase: all threads, and the main thread (the event loop) */
  cpu: { intake: Cpu; round: Cpu; eval: Cpu };
  healthP99: { intake: number; round: number; all: number }; healthMax: number; healthFailed: number; healthPolls: number; lagMs: { p99: number; max: number }; rssGb: number;
};

async function startRelay(dataDir: string, model: Omit<GptConfig, 'vocab'>): Promise<{ child: ChildProcess; url: string }> {
  const script = join(dataDir, 'relay.mts');
  const lifted = { capacity: 1e9, refillPerSecond: 1e9 };
  writeFileSync(script, `
import { buildApp } from ${JSON.stringify(join(import.meta.dirname, '../server/app.ts'))};
const relay = await buildApp({ dataDir: ${JSON.stringify(dataDir)}, port: 0, host: '127.0.0.1', defaultJob: false, demo: ${JSON.stringify(JOB)},
  demoOverrides: {
    model: ${JSON.stringify(model)},
    hyperparameters: { ...${JSON.stringify(mobyDick.hyperparameters)}, steps: 1, batchSize: 1, updatesPerRound: ${K}, quorum: ${K}, roundTimeoutMs: 3_600_000, leaseMs: 3_600_000, until: undefined, aggregator: ${JSON.stringify(aggregator)} },
    guardrail: { maxLossRise: 100 },
  },
  // one client stands in for many volunteers here, so the per-identity and per-address limits are lifted
  defence: { powDifficulty: 8, replication: { baseRate: 0 }, limits: { tasksPerAddress: ${JSON.stringify(lifted)}, tasksPerIdentity: ${JSON.stringify(lifted)}, uploadsPerAddress: ${JSON.stringify(lifted)}, uploadsPerIdentity: ${JSON.stringify(lifted)} } } });
process.once('SIGTERM', () => { void relay.close().then(() => process.exit(0)); });
process.stdout.write('URL ' + relay.url + '\\n');
`);
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  if (process.env.BENCH_SCALE_LOG) child.stdout!.on('data', (c) => process.stderr.write(c));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c) => { out += c; const m = /URL (\S+)\n/.exec(out); if (m) resolve(m[1]); });
    child.once('exit', (c) => reject(new Error(`bench relay exited with ${c}`)));
  });
  return { child, url };
}

/** CPU seconds (user + system) of the relay process, or of one of its threads (the main thread's id is the pid). */
const cpu = (pid: number, tid?: number): number => {
  const f = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
type Cpu = { all: number; main: number };
const cpuNow = (pid: number): Cpu => ({ all: cpu(pid), main: cpu(pid, pid) });
const cpuSince = (pid: number, a: Cpu): Cpu => { const b = cpuNow(pid); return { all: b.all - a.all, main: b.main - a.main }; };

const status = (pid: number, field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

async function runSize(size: string): Promise<Result> {
  const model = shapes[size];
  const n = paramCount({ ...model, vocab: tokenizerVocab.bpe });
  const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-scale-'));
  const setup0 = performance.now();
  const { child, url } = await startRelay(dataDir, model);
  const pid = child.pid!;
  try {
    const post = (path: string, body: BodyInit, headers: Record<string, string>) => fetch(url + path, { method: 'POST', body, headers });
    const json = async <T>(path: string): Promise<T> => (await (await fetch(url + path)).json()) as T;
    const info = await json<JobInfo>(`/api/jobs/${JOB}`);
    if (info.version !== 0 || paramCount(info.model) !== n) throw new Error(`unexpected job: version ${info.version}, ${paramCount(info.model)} parameters`);
    console.log(`${size}: gpt ${n} parameters (width ${model.width}, ${model.layers} layers, context ${model.context}), ${aggregator}; relay ready in ${((performance.now() - setup0) / 1000).toFixed(1)} s`);

    const identity = await createIdentity();
    const pow = await json<{ challenge: string; difficulty: number }>('/api/volunteers/challenge');
    const { volunteerId } = await (await post('/api/volunteers', JSON.stringify({
      publicKey: identity.publicKey, challenge: pow.challenge, nonce: await solvePow(pow.challenge, pow.difficulty),
    }), { 'content-type': 'application/json' })).json() as { volunteerId: string };
    const tasks: Task[] = [];
    for (let i = 0; i < K; i++) {
      const at = Date.now();
      const r = await post(`/api/jobs/${JOB}/tasks`, JSON.stringify({ volunteerId }), { 'content-type': 'application/json', 'x-tabtrain-time': String(at), 'x-tabtrain-signature': await signTaskRequest(identity, JOB, at) });
      if (r.status !== 200) throw new Error(`task request answered ${r.status}: ${await r.text()}`);
      tasks.push(await r.json() as Task);
    }
    // the first evaluation (version 0) is done before the clock starts, and the relay has settled (its
    // worker threads loaded their code): under 10 % of a core for 2 s, or 3 minutes at most
    for (let i = 0; i < 6000 && (await json<{ evals: Eval[] }>(`/api/jobs/${JOB}/evals`)).evals.length === 0; i++) await sleep(50);
    for (let i = 0, last = cpu(pid); i < 90; i++) { await sleep(2000); const c = cpu(pid); if (c - last < 0.2) break; last = c; }

    // the uploads are made before the clock starts: this process's own work must not take the relay's CPU
    const r0 = rng(11);
    const uploads = await Promise.all(tasks.map(async (t) => {
      // random Δ, not trained: the relay's work does not depend on what the numbers are
      const delta = new Float32Array(n);
      for (let j = 0; j < n; j++) delta[j] = r0.normal() * 1e-4;
      const frame = encodeUpdateFrame({ lease: t.lease, volunteerId, losses: [5], samples: t.steps * t.batchSize, computeMs: 1000 }, encodeUpdate(delta, t.compression));
      return { t, frame, headers: { 'content-type': 'application/octet-stream', 'x-tabtrain-signature': await signUpdate(identity, t.taskId, t.lease, frame) } };
    }));

    // /healthz every 10 ms, from the first upload to the evaluation of the new version, from a thread of
    // its own: a poller on this thread would count this thread's own pauses as the relay's
    const poller = startPoller(url);
    await poller.ready;
    writeFileSync(`/proc/${pid}/clear_refs`, '5'); // peak RSS from here
    await fetch(`${url}/metrics`).then((r) => r.text()); // resets the relay's event-loop delay histogram

    const intakeMs: number[] = [];
    const cpu0 = cpuNow(pid);
    for (const [i, { t, frame, headers }] of uploads.entries()) {
      const u0 = performance.now();
      const res = await post(`/api/tasks/${t.taskId}/update`, frame as BodyInit, headers);
      const text = await res.text();
      intakeMs.push(performance.now() - u0);
      if (res.status !== 200) throw new Error(`upload ${i} answered ${res.status}: ${text}`);
    }
    uploads.length = 0;
    const roundStart = now();
    const cpuIntake = cpuSince(pid, cpu0), cpu1 = cpuNow(pid);
    await fetch(`${url}/metrics`).then((r) => r.text()); // the event-loop delay from here covers the round
    let version = 0;
    // every 50 ms: a job read is a few milliseconds of the relay's loop, which a 10 ms poll made a fifth of a core
    while (version < 1) { version = (await json<JobInfo>(`/api/jobs/${JOB}`)).version; if (version < 1) await sleep(50); }
    const roundEnd = now();
    const cpuRound = cpuSince(pid, cpu1), cpu2 = cpuNow(pid);
    const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
    while (!(await json<{ evals: Eval[] }>(`/api/jobs/${JOB}/evals`)).evals.some((e) => e.version === 1)) await sleep(50);
    const evalEnd = now();
    const cpuEval = cpuSince(pid, cpu2);
    const { polls, failed } = await poller.stop();
    const rss = status(pid, 'VmHWM');
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    const stages = Object.fromEntries(['read', 'fold', 'rule', 'outer', 'publish', 'hash', 'write', 'dispatch', 'commit'].map((s) => [s, metric(`tabtrain_round_stage_seconds\\{job="${JOB}",stage="${s}"\\}`)]));
    const stageCpu = Object.fromEntries(['read', 'fold', 'rule', 'outer', 'publish', 'hash', 'write'].map((s) => [s, metric(`tabtrain_round_stage_cpu_seconds\\{job="${JOB}",stage="${s}"\\}`)]));
    const during = (a: number, b: number) => polls.filter((p) => p.at + p.ms >= a && p.at <= b).map((p) => p.ms);
    return {
      size, params: n, intakeMs, closeS: (roundEnd - roundStart) / 1000, evalS: (evalEnd - roundEnd) / 1000, stages, stageCpu, prefolded: metric(`tabtrain_round_prefolded_updates\\{job="${JOB}"\\}`),
      cpu: { intake: cpuIntake, round: cpuRound, eval: cpuEval },
      healthP99: { intake: pct(during(0, roundStart), 0.99), round: pct(during(roundStart, roundEnd), 0.99), all: pct(polls.map((p) => p.ms), 0.99) },
      healthMax: Math.max(...during(roundStart, roundEnd)), healthFailed: failed, healthPolls: polls.length,
      lagMs: { p99: 1000 * metric('tabtrain_process_nodejs_eventloop_lag_p99_seconds'), max: 1000 * metric('tabtrain_process_nodejs_eventloop_lag_max_seconds') },
      rssGb: rss / 1e9,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** One training step of the engine at 124M in Node through Dawn, and the memory plan's bytes beside what it allocated. */
async function engineStep(): Promise<{ seconds: number; line: string }> {
  const { nodeGpu } = await import('../server/gpu/dawn.ts');
  const { planMemory } = await import('../shared/engine/memory-plan.ts');
  const { createWebGpuTrainer } = await import('../shared/engine/trainer.ts');
  const { initParams } = await import('../shared/models/config.ts');
  const model: GptConfig = { ...shapes['124M'], vocab: tokenizerVocab.bpe };
  const gpu = await nodeGpu();
  const plan = planMemory(model, 1);
  const tr = await createWebGpuTrainer(gpu, model, { batchSize: 1, adamw: { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 }, clipNorm: 1 });
  try {
    await tr.load(initParams(model, 1));
    const r = rng(2);
    const tokens = Int32Array.from({ length: model.context + 1 }, () => r.int(model.vocab));
    const t0 = performance.now();
    await tr.step({ kind: 'tokens', tokens, n: 1 });
    const [loss] = await tr.losses();
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, line: `engine 124M (${paramCount(model)} params, context ${model.context}, batch 1): step ${seconds.toFixed(1)} s (loss ${loss.toFixed(3)}); memory plan ${(plan.total / 1e9).toFixed(3)} GB, allocated ${(tr.allocatedBytes / 1e9).toFixed(3)} GB; bench process peak RSS ${(process.resourceUsage().maxRSS / 1e6).toFixed(2)} GB` };
  } finally {
    tr.destroy();
  }
}

const results: Result[] = [];
for (const size of sizes) {
  const r = await runSize(size);
  results.push(r);
  const st = Object.entries(r.stages).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
  console.log(`  the round's thread CPU by stage, s: ${Object.entries(r.stageCpu).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}; ${r.prefolded} of ${K} updates decoded on arrival`);
  console.log(`  intake ${r.intakeMs.map((m) => (m / 1000).toFixed(2)).join(' / ')} s per upload; round close ${r.closeS.toFixed(2)} s (relay stages, s: ${st}); evaluation lands ${r.evalS.toFixed(2)} s after`);
  const c = (x: Cpu) => `${x.all.toFixed(2)} s (event loop ${x.main.toFixed(2)} s)`;
  console.log(`  relay CPU: intake ${c(r.cpu.intake)}, round ${c(r.cpu.round)}, evaluation ${c(r.cpu.eval)}`);
  console.log(`  /healthz p99 ${r.healthP99.round.toFixed(1)} ms during the round (max ${r.healthMax.toFixed(1)}), ${r.healthP99.intake.toFixed(1)} ms during uploads, ${r.healthFailed} of ${r.healthPolls} polls failed; relay event-loop delay in the round p99 ${r.lagMs.p99.toFixed(1)} ms, max ${r.lagMs.max.toFixed(1)} ms; relay peak RSS ${r.rssGb.toFixed(2)} GB`);
}
let engine = 'not run';
if (engineOn) {
  const e = await engineStep();
  console.log(e.line);
  engine = `${e.seconds.toFixed(1)} s`;
}
const big = results.find((r) => r.size === '124M') ?? results.at(-1)!;
console.log(`scale: ${big.size} round of ${K} closes in ${big.closeS.toFixed(1)} s, healthz p99 ${big.healthP99.round.toFixed(0)} ms meanwhile, relay rss ${big.rssGb.toFixed(2)} GB; engine 124M step ${engine}`);
