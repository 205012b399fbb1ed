// npm run bench:flood — a live relay under an upload flood from one address: 8 parallel chunked 300 MB
// uploads to an unknown task, then (on a fresh relay) to a real task leased by a registered volunteer,
// with the relay's default limits. Each of the 8 starts a new upload as soon as its last one is answered,
// for 10 s (BENCH_SECONDS), as an attacker would. The relay runs as its own process, so its RSS is its own;
// /healthz is timed from a third process, so this one's busy upload loop does not delay the probes.
// Prints per target the relay's RSS growth (peak over its idle baseline) and /healthz p50/p99, idle and
// under the flood. Last line:
//   flood: unknown task +<X> MB rss, p99 <Y> ms; real task +<Z> MB rss, p99 <W> ms (idle p99 <V> ms)
// BENCH_RELAY_ROOT=<another checkout> floods that checkout's relay instead (to compare before and after).
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Task } from '../shared/protocol/messages.ts';
import { createIdentity, signTaskRequest } from '../shared/security/identity.ts';
import { solvePow } from '../shared/security/pow.ts';

const STREAMS = Number(process.env.BENCH_STREAMS ?? 8);
const STREAM_BYTES = Number(process.env.BENCH_STREAM_MB ?? 300) * 1e6;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CHUNK = 1 << 20;
const root = resolve(process.env.BENCH_RELAY_ROOT ?? join(import.meta.dirname, '..'));

type Upload = { status: number; written: number };
type RelayProc = { url: string; child: ChildProcess; rssMb(): number; stop(): Promise<void> };

/** The relay as deployed (default limits, default job), but no evaluation and a cheap proof of work. */
async function startRelay(): Promise<RelayProc> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-flood-'));
  const script = join(dataDir, 'relay.mts');
  writeFileSync(script, `
import { buildApp } from ${JSON.stringify(join(root, 'server/app.ts'))};
const relay = await buildApp({ dataDir: ${JSON.stringify(dataDir)}, port: 0, host: '127.0.0.1', evaluate: false,
  defaultJob: { updatesPerRound: 1e6, quorum: 1e6, leaseMs: 3_600_000 }, defence: { powDifficulty: 8 } });
process.once('SIGTERM', () => { void relay.close().then(() => process.exit(0)); });
process.stdout.write('URL ' + relay.url + '\\n');
`);
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'], cwd: root });
  const url = await new Promise<string>((res, rej) => {
    let out = '';
    child.stdout!.on('data', (c) => { out += c; const m = /URL (\S+)\n/.exec(out); if (m) res(m[1]); });
    child.once('exit', (c) => rej(new Error(`flood relay exited with ${c}`)));
  });
  return {
    url, child,
    rssMb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A registered, signed volunteer leases one task of the default job. */
async function leaseTask(url: string): Promise<Task> {
  const identity = await createIdentity();
  const pow = await (await fetch(`${url}/api/volunteers/challenge`)).json() as { challenge: string; difficulty: number };
  const reg = await fetch(`${url}/api/volunteers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ publicKey: identity.publicKey, challenge: pow.challenge, nonce: await solvePow(pow.challenge, pow.difficulty) }) });
  const { volunteerId } = await reg.json() as { volunteerId: string };
  const at = Date.now();
  const r = await fetch(`${url}/api/jobs/mnist-mlp/tasks`, { method: 'POST', body: JSON.stringify({ volunteerId }), headers: { 'content-type': 'application/json', 'x-tabtrain-time': String(at), 'x-tabtrain-signature': await signTaskRequest(identity, 'mnist-mlp', at) } });
  if (r.status !== 200) throw new Error(`lease failed: ${r.status} ${await r.text()}`);
  return await r.json() as Task;
}

/** One chunked upload of STREAM_BYTES zeros, written with backpressure until the relay answers or closes. */
function flood(url: string): Promise<Upload> {
  return new Promise((done) => {
    const u = new URL(url);
    let written = 0;
    let answered = false;
    const chunk = Buffer.alloc(CHUNK);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
      answered = true;
      res.resume();
      res.on('end', () => { req.destroy(); done({ status: res.statusCode!, written }); });
    });
    // status 0: the relay closed the connection before this client read its answer
    req.on('error', () => { answered = true; done({ status: 0, written }); });
    const pump = () => {
      while (!answered && written < STREAM_BYTES) {
        written += CHUNK;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

/** STREAMS workers, each uploading again as soon as its last upload is answered, until SECONDS pass. */
async function sustained(url: (i: number) => string): Promise<Upload[]> {
  const until = performance.now() + SECONDS * 1000;
  const all = await Promise.all(Array.from({ length: STREAMS }, async (_, i) => {
    const out: Upload[] = [];
    while (performance.now() < until) out.push(await flood(url(i)));
    return out;
  }));
  return all.flat();
}

/** Times GET /healthz back to back (20 ms apart) and prints each latency, ms, one a line. */
const PROBER = `
const url = process.argv[1];
let on = true;
process.on('SIGTERM', () => { on = false; });
(async () => {
  while (on) {
    const t = performance.now();
    try { await fetch(url + '/healthz').then((r) => r.arrayBuffer()); process.stdout.write((performance.now() - t) + '\\n'); } catch {}
    await new Promise((r) => setTimeout(r, 20));
  }
  process.exit(0);
})();
`;

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN; };

/** Runs `work` while sampling the relay's RSS (every 50 ms) and timing /healthz from another process. */
async function measure(relay: RelayProc, work: () => Promise<Upload[]>) {
  const base = relay.rssMb();
  let peak = base;
  let running = true;
  const sampler = (async () => { while (running) { peak = Math.max(peak, relay.rssMb()); await new Promise((r) => setTimeout(r, 50)); } })();
  const prober = spawn(process.execPath, ['-e', PROBER, relay.url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let probed = '';
  prober.stdout!.on('data', (c) => { probed += c; });
  const uploads = await work();
  running = false;
  prober.kill('SIGTERM');
  await new Promise((r) => prober.once('exit', r));
  await sampler;
  const latencies = probed.split('\n').filter(Boolean).map(Number);
  return { base, growth: peak - base, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), probes: latencies.length, uploads };
}

async function target(label: string, path: (relay: RelayProc) => Promise<(i: number) => string>) {
  const relay = await startRelay();
  try {
    const url = await path(relay);
    const idle = await measure(relay, async () => { await new Promise((r) => setTimeout(r, Math.min(5, SECONDS) * 1000)); return []; });
    const m = await measure(relay, () => sustained(url));
    const counts = new Map<number, number>();
    for (const u of m.uploads) counts.set(u.status, (counts.get(u.status) ?? 0) + 1);
    const statuses = [...counts].sort(([a], [b]) => a - b).map(([st, n]) => `${n}× ${st}`).join(', ');
    const writtenMb = m.uploads.reduce((a, u) => a + u.written, 0) / 1e6;
    console.log(`${label}: ${m.uploads.length} uploads (${STREAMS} at a time, ${STREAM_BYTES / 1e6} MB each, chunked) → ${statuses}; ${writtenMb.toFixed(0)} MB written by the client in all`);
    console.log(`  relay rss ${m.base.toFixed(0)} MB → peak +${m.growth.toFixed(0)} MB; /healthz idle p50 ${idle.p50.toFixed(1)} / p99 ${idle.p99.toFixed(1)} ms (${idle.probes} probes), under flood p50 ${m.p50.toFixed(1)} / p99 ${m.p99.toFixed(1)} ms (${m.probes} probes)`);
    return { growth: m.growth, p99: m.p99, idleP99: idle.p99 };
  } finally {
    await relay.stop();
  }
}

const unknown = await target('unknown task', async (r) => (i) => `${r.url}/api/tasks/t-flood-${i}/update`);
const real = await target('real task', async (r) => { const task = await leaseTask(r.url); return () => `${r.url}/api/tasks/${task.taskId}/update`; });
console.log(`flood: unknown task +${unknown.growth.toFixed(0)} MB rss, p99 ${unknown.p99.toFixed(0)} ms; real task +${real.growth.toFixed(0)} MB rss, p99 ${real.p99.toFixed(0)} ms (idle p99 ${Math.max(unknown.idleP99, real.idleP99).toFixed(0)} ms)`);
