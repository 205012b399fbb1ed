// npm run bench:stall — what one big researcher submission does to the relay: the GPT spec of the
// security report (context 1024, 1 layer, 8 heads, width 1200, byte tokenizer; 19.1M parameters) with a
// 200 kB text, submitted to an in-process relay. Meanwhile the relay's own event-loop delay is sampled
// (perf_hooks.monitorEventLoopDelay) and a separate process polls /healthz every 100 ms. Runs until
// version 0's held-out evaluation has landed. Last line:
// BENCH_STALL_CASE=csv submits a 4M-row, 16 MiB CSV for an MLP instead.
//   stall: submit <S> s (HTTP <code>), eval landed <E> s, loop lag p99 <P> ms max <M> ms, healthz p99 <H> ms max <X> ms (<n> polls, <f> failed), data dir +<D> MB, rss <R> MB
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { buildApp } from '../server/app.ts';
import { createToken } from '../server/ops/tokens.ts';

// BENCH_STALL_CASE=csv: instead, a 16 MiB labelled CSV of 4M rows for a small MLP (the parse and split)
const csvCase = process.env.BENCH_STALL_CASE === 'csv';
const spec = csvCase
  ? { name: 'stall csv', model: { kind: 'mlp', hidden: [4] }, dataset: { format: 'labelled', shards: 4 }, hyperparameters: { steps: 1, batchSize: 1 } }
  : {
    name: 'stall', model: { kind: 'gpt', context: 1024, layers: 1, heads: 8, width: 1200 },
    dataset: { format: 'text', tokenizer: 'byte', shards: 4 }, hyperparameters: { steps: 1, batchSize: 1 },
  };
const words = ['relay', 'volunteer', 'gradient', 'round', 'version', 'shard', 'the', 'of', 'and', 'model'];
let text = '';
if (csvCase) text = '0,1\n1,0\n'.repeat(2_000_000);
else for (let i = 0; text.length < 200_000; i++) text += words[(i * 7 + (i >> 3)) % words.length] + (i % 13 === 0 ? '.\n' : ' ');

const dirBytes = (d: string): number => readdirSync(d, { withFileTypes: true })
  .reduce((a, e) => a + (e.isDirectory() ? dirBytes(join(d, e.name)) : statSync(join(d, e.name)).size), 0);
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };

const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-stall-'));
const relay = await buildApp({ dataDir, port: 0, host: '127.0.0.1', defaultJob: false });
const url = relay.url!;
const researcher = createToken(relay.app.db, { role: 'researcher', name: 'rita', actor: 'bench' }).token;
const operator = createToken(relay.app.db, { role: 'operator', name: 'olga', actor: 'bench' }).token;
const baseBytes = dirBytes(dataDir);

// /healthz from another process, so its latency is what any client of a stalled relay would see
const poller = spawn(process.execPath, ['-e', `
const lat = []; let failed = 0; let stop = false;
process.stdin.on('data', () => { stop = true; });
(async () => {
  while (!stop) {
    const t = performance.now();
    try { const r = await fetch(${JSON.stringify(url)} + '/healthz', { signal: AbortSignal.timeout(60000) }); await r.text(); lat.push(performance.now() - t); } catch { failed++; }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write(JSON.stringify({ lat, failed }));
  process.exit(0);
})();`], { stdio: ['pipe', 'pipe', 'inherit'] });
let pollOut = '';
poller.stdout.on('data', (d) => { pollOut += d; });
await new Promise((r) => setTimeout(r, 500));

const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
const t0 = performance.now();
const form = new FormData();
form.set('spec', JSON.stringify(spec));
form.set('data', new Blob([text]), 'corpus.txt');
const res = await fetch(`${url}/api/ops/jobs`, { method: 'POST', headers: { authorization: `Bearer ${researcher}` }, body: form });
const body = await res.json() as { jobId: string };
const submitS = (performance.now() - t0) / 1000;
let evalS = NaN;
if (res.status === 201) {
  for (;;) {
    const r = await fetch(`${url}/api/jobs/${body.jobId}/evals`, { headers: { authorization: `Bearer ${operator}` } });
    if (((await r.json()) as { evals: unknown[] }).evals.length > 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  evalS = (performance.now() - t0) / 1000;
} else {
  console.log('submission refused:', res.status, JSON.stringify(body));
}
lag.disable();
const rssMb = process.memoryUsage().rss / 1e6;
const grown = (dirBytes(dataDir) - baseBytes) / 1e6;
poller.stdin.write('x');
await new Promise((r) => poller.once('exit', r));
const { lat, failed } = JSON.parse(pollOut) as { lat: number[]; failed: number };
await relay.close();
rmSync(dataDir, { recursive: true, force: true });
const ms = (ns: number) => (ns / 1e6).toFixed(0);
console.log(`stall: submit ${submitS.toFixed(1)} s (HTTP ${res.status}), eval landed ${evalS.toFixed(1)} s, loop lag p99 ${ms(lag.percentile(99))} ms max ${ms(lag.max)} ms, healthz p99 ${pct(lat, 0.99).toFixed(0)} ms max ${lat.reduce((a, x) => Math.max(a, x), 0).toFixed(0)} ms (${lat.length} polls, ${failed} failed), data dir +${grown.toFixed(0)} MB, rss ${rssMb.toFixed(0)} MB`);
