// npm run bench:flood — a live relay under an upload flood from one address: 8 parallel chunked 300 MB
// uploads to an unknown task, then 8 to a real task (leased by a registered volunteer), with the relay's
// default limits; each of the 8 starts a new upload as soon as its last one is answered, for 10 s
// (BENCH_SECONDS) per target, as an attacker would. The relay runs as its own process, so its RSS is its own; while each flood runs this
// process samples that RSS and times GET /healthz. Prints, per flood: the relay's RSS growth (peak over
// baseline), /healthz p99 and the bytes the flood got written before the relay answered. Last line:
//   flood: unknown task +<X> MB rss, p99 <Y> ms; real task +<Z> MB rss, p99 <W> ms
// BENCH_RELAY_ROOT=<another checkout> runs that checkout's relay instead (to compare before and after).
import { spawn } from 'node:child_process';
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

const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-flood-'));
const script = join(dataDir, 'relay.mts');
// the relay as deployed (default limits, default job), but no evaluation and a cheap proof of work
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
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;

/** One chunked upload of STREAM_BYTES zeros, written with backpressure until the relay answers or closes. */
function flood(path: string): Promise<{ status: number; written: number }> {
  return new Promise((done) => {
    const u = new URL(url + path);
    let written = 0;
    let answered = false;
    const chunk = Buffer.alloc(CHUNK);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
      answered = true;
      res.resume();
      res.on('end', () => { req.destroy(); done({ status: res.statusCode!, written }); });
    });
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

/** Runs `work` while sampling the relay's RSS (every 50 ms) and timing /healthz (back to back). */
async function measure(label: string, work: () => Promise<{ status: number; written: number }[]>) {
  const base = rssMb();
  let peak = base;
  let running = true;
  const sampler = (async () => { while (running) { peak = Math.max(peak, rssMb()); await new Promise((r) => setTimeout(r, 50)); } })();
  // /healthz is timed from a process of its own, so this one's busy upload loop does not delay the probes
  const prober = spawn(process.execPath, ['-e', PROBER, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let probed = '';
  prober.stdout!.on('data', (c) => { probed += c; });
  const results = await work();
  running = false;
  prober.kill('SIGTERM');
  await new Promise((r) => prober.once('exit', r));
  await sampler;
  const latencies = probed.split('\n').filter(Boolean).map(Number);
  const counts = new Map<number, number>();
  for (const r of results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  // status 0: the relay closed the connection before this client read its answer
  const statuses = [...counts].sort(([a], [b]) => a - b).map(([st, n]) => `${n}× ${st}`).join(', ');
  const writtenMb = results.reduce((a, r) => a + r.written, 0) / 1e6;
  const p99 = pct(latencies, 0.99);
  console.log(`${label}: ${results.length} uploads (${STREAMS} at a time, ${STREAM_BYTES / 1e6} MB each, chunked) → ${statuses || 'none'}, ${writtenMb.toFixed(0)} MB written in all; relay rss ${base.toFixed(0)} → peak ${peak.toFixed(0)} MB (+${(peak - base).toFixed(0)}); /healthz p50 ${pct(latencies, 0.5).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms over ${latencies.length} probes`);
  return { growth: peak - base, p99 };
}

try {
  // a real task: a registered, signed volunteer leases one from the default job
  const identity = await createIdentity();
  const pow = await (await fetch(`${url}/api/volunteers/challenge`)).json() as { challenge: string; difficulty: number };
  const reg = await fetch(`${url}/api/volunteers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ publicKey: identity.publicKey, challenge: pow.challenge, nonce: await solvePow(pow.challenge, pow.difficulty) }) });
  const { volunteerId } = await reg.json() as { volunteerId: string };
  const leaseOne = async (): Promise<Task> => {
    const at = Date.now();
    const r = await fetch(`${url}/api/jobs/mnist-mlp/tasks`, { method: 'POST', body: JSON.stringify({ volunteerId }), headers: { 'content-type': 'application/json', 'x-tabtrain-time': String(at), 'x-tabtrain-signature': await signTaskRequest(identity, 'mnist-mlp', at) } });
    if (r.status !== 200) throw new Error(`lease failed: ${r.status} ${await r.text()}`);
    return await r.json() as Task;
  };
  const task = await leaseOne();
  await measure('idle', async () => { await new Promise((r) => setTimeout(r, SECONDS * 1000)); return []; });
  /** STREAMS workers, each uploading again as soon as its last upload is answered, until SECONDS pass. */
  const sustained = async (path: (i: number) => string) => {
    const until = performance.now() + SECONDS * 1000;
    const all = await Promise.all(Array.from({ length: STREAMS }, async (_, i) => {
      const out = [];
      while (performance.now() < until) out.push(await flood(path(i)));
      return out;
    }));
    return all.flat();
  };
  const unknown = await measure('unknown task', () => sustained((i) => `/api/tasks/t-flood-${i}/update`));
  const real = await measure('real task', () => sustained(() => `/api/tasks/${task.taskId}/update`));
  console.log(`flood: unknown task +${unknown.growth.toFixed(0)} MB rss, p99 ${unknown.p99.toFixed(0)} ms; real task +${real.growth.toFixed(0)} MB rss, p99 ${real.p99.toFixed(0)} ms`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
}
