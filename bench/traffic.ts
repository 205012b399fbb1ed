// npm run bench:traffic — the field's headline question for this network: how many bytes does training
// move, against a per-step data-parallel all-reduce of dense fp32 gradients, and at what accuracy
// against one process training the same model on the same samples?
// W simulated volunteers (the real volunteer loop, CPU reference trainer) train the MNIST job on a live
// relay on loopback until they have uploaded W × TASKS accepted updates between them. The job is the
// default MNIST job with the bench's communication settings (BENCH_H inner steps, BENCH_UPLOAD codec for
// updates, BENCH_VERSIONS codec for published versions, BENCH_OUTER outer lr and momentum; printed on the
// job line). Defaults: H = 1000 (DiLoCo's order of inner steps), int8 uploads, versions published top-k
// 10 % with the relay's error feedback (a version delta about a fifth of an upload, so downloads, shards
// included, stay under uploads), plain averaging as the outer step. The bytes in the headline are the relay's own
// socket counters (every byte read and written on its connections: request and status lines, headers,
// bodies as sent, compressed shards as compressed); requests are also counted by route from the
// volunteers' side (bodies as sent, headers as HTTP/1.1 would send them) for the breakdown. The single-
// process baseline trains the same model from the same initial parameters with the same AdamW on the same
// number of samples, drawn the same way (every shard equally often, batches and augmentation by seed and step).
// Then the peer-to-peer part (./traffic-tabs.ts): BENCH_TABS real tabs in headless Chromium (default 10)
// train on a fresh relay with sharing off, then on; peers carried = bytes tabs took from each other over
// WebRTC / (those + the relay's egress of params, deltas and shards) in the run with sharing on, both as sent
// (the relay's compressed, the tabs' gzipped where that is smaller).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../server/app.ts';
import { launchBrowser } from '../test/helpers/browser.ts';
import { tabsTraffic } from './traffic-tabs.ts';
import { dataset } from '../server/data/datasets.ts';
import { defaultJobSpec } from '../server/default-job.ts';
import { decodeTaskData, taskBatch } from '../shared/data/task-data.ts';
import { initParams, paramCount, type MlpConfig } from '../shared/models/config.ts';
import type { Eval } from '../shared/protocol/messages.ts';
import { mlpEvaluate } from '../shared/reference/mlp.ts';
import { createCpuTrainer } from '../shared/train/cpu.ts';
import { rng } from '../shared/util/rng.ts';
import { runVolunteer } from '../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../shared/volunteer/store.ts';
import type { Compression } from '../shared/codec/index.ts';

const W = Number(process.env.BENCH_VOLUNTEERS ?? 4);
// defaults that finish in minutes on 2 busy cores (H = 200 × 20 tasks ran past 50 minutes under load)
const TASKS = Number(process.env.BENCH_TASKS ?? 5);
/** H, and the codecs of updates and of published versions, as `topk:<fraction>:<bits>`, `int8:<block>` or `fp32` */
const H = Number(process.env.BENCH_H ?? 1000);
const codec = (s: string): Compression => {
  const [kind, a, b] = s.split(':');
  return kind === 'topk' ? { kind, fraction: Number(a), bits: Number(b) as 4 | 8 } : kind === 'int8' ? { kind, block: Number(a ?? 256) } : { kind: 'fp32' };
};
const UPLOAD = codec(process.env.BENCH_UPLOAD ?? 'int8:256');
const VERSIONS = codec(process.env.BENCH_VERSIONS ?? 'topk:0.1:8');
/** outer step `lr:momentum`: plain averaging (1:0) by default; few long rounds overshoot with Nesterov 0.9 */
const [OUTER_LR, OUTER_MOMENTUM] = (process.env.BENCH_OUTER ?? '1:0').split(':').map(Number);
const TABS = Number(process.env.BENCH_TABS ?? 10);
/** BENCH_NODE=0: the P2P part only (its figures need no Node swarm) */
const NODE = process.env.BENCH_NODE !== '0';
class Skip extends Error {}
/** accepted updates per tab in each P2P run */
const TAB_UPDATES = Number(process.env.BENCH_TAB_UPDATES ?? 6);

type Route = 'lease' | 'params' | 'manifest' | 'delta' | 'shard' | 'update' | 'other';
const routeOf = (method: string, path: string): Route =>
  method === 'POST' && /\/tasks$/.test(path) ? 'lease'
    : /\/versions\/\d+\/params$/.test(path) ? 'params'
      : /\/versions\/\d+\/manifest$/.test(path) ? 'manifest'
        : /\/versions\/\d+\/delta$/.test(path) ? 'delta'
          : /\/shards\/\d+$/.test(path) ? 'shard'
            : /\/update$/.test(path) ? 'update' : 'other';
const bytes: Record<Route, { up: number; down: number; n: number }> = Object.fromEntries(
  (['lease', 'params', 'manifest', 'delta', 'shard', 'update', 'other'] as Route[]).map((r) => [r, { up: 0, down: 0, n: 0 }])) as never;

const headerBytes = (h: Headers | Record<string, string> | undefined): number => {
  let n = 0;
  const entries = h instanceof Headers ? [...h.entries()] : Object.entries(h ?? {});
  for (const [k, v] of entries) n += k.length + v.length + 4;
  return n;
};

/** fetch that counts what crosses the wire for each request, by route. */
async function countingFetch(url: string, init?: RequestInit): Promise<Response> {
  const u = new URL(url);
  const method = init?.method ?? 'GET';
  const route = routeOf(method, u.pathname);
  const body = init?.body;
  const up = `${method} ${u.pathname}${u.search} HTTP/1.1\r\n`.length + headerBytes(init?.headers as Record<string, string>) + `host: ${u.host}\r\n\r\n`.length
    + (typeof body === 'string' ? new TextEncoder().encode(body).length : body instanceof Uint8Array ? body.byteLength : 0);
  const res = await fetch(url, init);
  const payload = new Uint8Array(await res.arrayBuffer());
  bytes[route].up += up;
  // fetch has decoded a compressed body: what crossed the wire is its declared length
  const sent = res.headers.get('content-encoding') ? Number(res.headers.get('content-length')) : payload.byteLength;
  bytes[route].down += 'HTTP/1.1 200 OK\r\n\r\n'.length + headerBytes(res.headers) + sent;
  bytes[route].n += 1;
  return new Response(payload, { status: res.status, statusText: res.statusText, headers: res.headers });
}

const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-traffic-'));
// the job runs its TASKS × W updates: no stopping rule ends it first, and no lease runs out on a loaded
// machine (a re-issue would train the same samples twice)
const job = { steps: H, compression: UPLOAD, outerLr: OUTER_LR, outerMomentum: OUTER_MOMENTUM, versionCompression: VERSIONS, until: { versions: 100_000 }, leaseMs: 1_800_000 };
const relay = await buildApp({ dataDir, port: 0, host: '127.0.0.1', logger: false, defaultJob: job, defence: { powDifficulty: 8, replication: { baseRate: 0 } } });
const url = relay.url!.replace('0.0.0.0', '127.0.0.1');
// every byte on the relay's connections, both ways
const sockets = new Set<import('node:net').Socket>();
relay.app.server.on('connection', (s) => sockets.add(s));
const wire = () => [...sockets].reduce((a, s) => ({ down: a.down + s.bytesWritten, up: a.up + s.bytesRead }), { down: 0, up: 0 });
const spec = defaultJobSpec(job);
const h = spec.hyperparameters;
const P = paramCount(spec.model);
let headline = 'traffic: Node swarm not run (BENCH_NODE=0)';
try {
  if (!NODE) throw new Skip();
  const t0 = Date.now();
  let uploaded = 0;
  // the swarm stops at W × TASKS accepted updates between them, not TASKS each: a volunteer that finished
  // its own would leave the last rounds short of K, each then waiting out the round timer
  const stop = new AbortController();
  let returned = 0;
  const loops = Promise.all(Array.from({ length: W }, (_, i) => runVolunteer({
    server: url, fetch: countingFetch, createTrainer: createCpuTrainer, store: memoryLoopStore(), jobId: 'mnist-mlp',
    signal: stop.signal, agent: `traffic-${i}`,
    onEvent: (e) => { if (e.type === 'uploaded' && e.ack.accepted && ++uploaded >= W * TASKS) stop.abort(); },
  }).finally(() => { returned++; })));
  // Some runs saw volunteer loops not return after the stop (cause not found): the bytes counted so far are
  // the run's, so the bench waits a minute for them, says how many were still out, and goes on
  await new Promise<void>((done, fail) => {
    loops.then(() => done(), fail);
    stop.signal.addEventListener('abort', () => setTimeout(done, 60_000).unref(), { once: true });
  });
  if (returned < W) console.log(`warning: ${W - returned} of ${W} volunteer loops had not returned 60 s after the stop`);
  const onWire = wire();
  // the last version's evaluation lands just after its round
  let evals: Eval[] = [];
  for (let k = 0; k < 100; k++) {
    evals = ((await (await fetch(`${url}/api/jobs/mnist-mlp/evals`)).json()) as { evals: Eval[] }).evals;
    if (evals.at(-1)?.version === relay.app.store.getJob('mnist-mlp')!.version) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const last = evals.at(-1)!;
  const samples = uploaded * h.steps * h.batchSize;

  // single process: the same model and initial parameters (seed 1, as the relay's job), AdamW, samples
  const data = dataset('mnist');
  const shards = data.shardBytes.map(decodeTaskData);
  const trainer = createCpuTrainer(spec.model, { batchSize: h.batchSize, adamw: h.adamw, clipNorm: h.clipNorm });
  const init = initParams(spec.model, 1);
  await trainer.load(init);
  const r = rng(12345);
  for (let task = 0; task < uploaded; task++) {
    const shard = shards[task % shards.length], seed = r.int(2 ** 31);
    for (let s = 0; s < h.steps; s++) await trainer.step(taskBatch(shard, spec.model, seed, s, h.batchSize, h.augment));
  }
  const d = await trainer.delta();
  const single = mlpEvaluate(spec.model as MlpConfig, Float32Array.from(init, (x, i) => x - d[i]), data.heldOut!);

  const counted = Object.values(bytes).reduce((a, b) => a + b.up + b.down, 0);
  const { down, up } = onWire, total = down + up;
  const modelDown = bytes.params.down + bytes.delta.down + bytes.manifest.down;
  // ring all-reduce of dense fp32 gradients: per step each of W workers sends and receives 2(W−1)/W · 4P
  const steps = samples / (W * h.batchSize);
  const allReduce = steps * W * 2 * (2 * (W - 1) / W) * 4 * P;
  const name = (c: Compression) => (c.kind === 'topk' ? `top-k ${100 * c.fraction}% ${c.bits}-bit` : c.kind === 'int8' ? `int8 blocks of ${c.block}` : 'fp32');
  console.log(`job: MNIST ${spec.model.kind} ${P} params, ${W} volunteers × ${TASKS} tasks (H=${h.steps}, batch ${h.batchSize}, uploads ${name(UPLOAD)}, versions published ${name(VERSIONS)} (both with error feedback), K=${h.updatesPerRound}, outer lr ${h.outerLr} momentum ${h.outerMomentum}, ${relay.app.store.getJob('mnist-mlp')!.version} rounds), ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  for (const [k, v] of Object.entries(bytes)) console.log(`  ${k.padEnd(8)} ${String(v.n).padStart(5)} requests  up ${String(v.up).padStart(10)} B  down ${String(v.down).padStart(10)} B`);
  console.log(`tasks uploaded ${uploaded}, samples in accepted updates ${samples}, versions ${relay.app.store.getJob('mnist-mlp')!.version}`);
  console.log(`model bytes down per task ${(modelDown / uploaded).toFixed(0)} (params ${bytes.params.n}×, deltas ${bytes.delta.n}×) vs update bytes up per task ${(bytes.update.up / uploaded).toFixed(0)}: ${(modelDown / bytes.update.up).toFixed(2)}`);
  const visits = relay.app.scheduler.shardVisits('mnist-mlp');
  console.log(`shard downloads ${bytes.shard.n} (${bytes.shard.down} B on the wire) for ${uploaded} tasks; fresh tasks per shard ${visits.join(' ')}`);
  console.log(`all bytes on the relay's sockets: ${total} (down ${down}, up ${up}; counted by request ${counted}); per-step ring all-reduce of fp32 gradients for the same samples and ${W} workers: ${allReduce.toExponential(3)}`);
  console.log(`held-out accuracy: swarm ${(100 * last.accuracy).toFixed(2)} % (loss ${last.loss.toFixed(4)}) at version ${last.version}; single process ${(100 * single.accuracy).toFixed(2)} % (loss ${single.loss.toFixed(4)})`);
  headline = `traffic: ${(allReduce / total).toFixed(0)}x fewer bytes than per-step all-reduce at ${(100 * (last.accuracy - single.accuracy)).toFixed(2)} pts from single-machine accuracy; down/up per task ${(down / up).toFixed(2)}`;
} catch (e) {
  if (!(e instanceof Skip)) throw e;
} finally {
  await relay.close();
  rmSync(dataDir, { recursive: true, force: true });
}

let peersCarried = 'peers carried n/a (BENCH_TABS=0)';
if (TABS > 0) {
  const browser = await launchBrowser({ webgpu: false });
  try {
    const runs = [];
    for (const share of [false, true]) {
      const r = await tabsTraffic(browser, TABS, share, TABS * TAB_UPDATES);
      runs.push(r);
      const down = r.model + r.shard;
      console.log(`${TABS} tabs, sharing ${share ? 'on ' : 'off'}: ${r.accepted} updates accepted in ${r.seconds.toFixed(0)} s; relay sent params+deltas ${r.model} B, shards ${r.shard} B, other ${r.other} B (${(down / r.accepted).toFixed(0)} B of model and shards per update); tabs took ${r.peers} B from each other (asks of a peer that brought nothing ${r.missed}, bytes rejected by hash ${r.rejected})`);
    }
    const [off, on] = runs;
    const perUpdate = (r: typeof on) => (r.model + r.shard) / r.accepted;
    console.log(`relay egress of model and shards per accepted update: ${perUpdate(off).toFixed(0)} B with sharing off, ${perUpdate(on).toFixed(0)} B on (${(100 * (1 - perUpdate(on) / perUpdate(off))).toFixed(0)} % less)`);
    // like for like: tabs send each other shards and deltas gzipped, as the relay sends them compressed,
    // and count the bytes on their channels
    peersCarried = `peers carried ${(100 * on.peers / (on.peers + on.model + on.shard)).toFixed(0)}% of downloads with ${TABS} tabs`;
  } finally {
    await browser.close();
  }
}
console.log(`${headline}; ${peersCarried}`);

