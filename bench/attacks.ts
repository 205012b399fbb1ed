// npm run bench:attacks — the default MNIST MLP job with 20 simulated volunteers, 20 % of them hostile,
// at protocol level and in-process: every round each volunteer gets a task (base version, shard, seed),
// honest ones run H inner AdamW steps with the CPU reference and send an int8 frame with error feedback;
// the relay side decodes each frame (codec), refuses exact replays, validates (finite, non-empty, norm ≤
// 3 × the round's median), aggregates with the job's rule and takes the DiLoCo outer step (Nesterov,
// lr 0.7, momentum 0.9). Prints held-out accuracy per aggregator × attack; the last line is the summary.
// Env: BENCH_ROUNDS (default 6), BENCH_STEPS (inner steps H, default 20), BENCH_WORKERS (default 2),
// BENCH_ATTACKS / BENCH_AGGREGATORS (comma lists, to run a subset).
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { aggregate, aggregatorNames, defaultAggregator, type AggregatorName } from '../shared/aggregate/index.ts';
import { CodecError, decodeUpdate, encodeUpdate, type Compression, type Update } from '../shared/codec/index.ts';
import { batchFor } from '../shared/data/shard.ts';
import { defaultMlp, initParams, paramCount } from '../shared/models/config.ts';
import { mlpEvaluate } from '../shared/reference/mlp.ts';
import { createCpuTrainer } from '../shared/train/cpu.ts';
import { rng, type Rng } from '../shared/util/rng.ts';
import { loadMnist } from '../server/data/mnist.ts';
import { mnistHyperparameters } from '../server/default-job.ts';
import { outerStep } from '../server/scheduler/outer-step.ts';
import { normBoundFrom, validateUpdate } from '../server/defence/validate.ts';

export const attacks = ['none', 'sign-flip', 'gaussian', 'alie', 'ipm', 'nan-inf', 'replay', 'free-rider'] as const;
type Attack = (typeof attacks)[number];
type Scenario = { aggregator: AggregatorName; attack: Attack };
type Outcome = Scenario & { accuracy: number; refused: Record<string, number>; seconds: number };

const VOLUNTEERS = 20, ATTACKERS = 4;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const hp = { ...mnistHyperparameters, steps: Number(process.env.BENCH_STEPS ?? mnistHyperparameters.steps) };
const compression: Compression = hp.compression;
const model = defaultMlp;
const d = paramCount(model);

// Attack strengths, each chosen to pass the relay's checks where it can (the attacker knows them):
const SIGN_FLIP_SCALE = 2.5; // −2.5 × its own honest Δ: under the 3 × median norm bound
const NOISE_NORM = 2.5; // Gaussian noise with 2.5 × the median honest norm
const ALIE_Z = 1.5; // μ + 1.5 σ per coordinate (ByzFL's default τ)
const IPM_SCALE = 4; // −4 × the honest mean: with 4 of 20 it cancels the honest mean under plain averaging

function mean(xs: Float32Array[]): Float64Array {
  const m = new Float64Array(d);
  for (const x of xs) for (let i = 0; i < d; i++) m[i] += x[i] / xs.length;
  return m;
}
const norm = (x: ArrayLike<number>) => { let s = 0; for (let i = 0; i < x.length; i++) s += x[i] * x[i]; return Math.sqrt(s); };
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
const gaussianWithNorm = (r: Rng, target: number) => {
  const g = Float32Array.from({ length: d }, () => r.normal());
  const k = target / norm(g);
  return g.map((v) => v * k);
};

/** The frames the 4 attackers send this round. `own` trains the attacker's honest Δ when it needs one. */
async function attackerFrames(
  attack: Attack, round: number, honest: Float32Array[], own: (a: number) => Promise<Float32Array>,
  memory: Map<number, Uint8Array>, r: Rng,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  const honestNorm = median(honest.map(norm));
  // colluders add a little jitter so their frames are not byte-identical (the relay drops exact copies)
  const jitter = (x: ArrayLike<number>) => Float32Array.from(x, (v) => v * (1 + 1e-3 * r.normal()));
  for (let a = 0; a < ATTACKERS; a++) {
    switch (attack) {
      case 'sign-flip': out.push(encodeUpdate((await own(a)).map((v) => -SIGN_FLIP_SCALE * v), compression)); break;
      case 'gaussian': out.push(encodeUpdate(gaussianWithNorm(r, NOISE_NORM * honestNorm), compression)); break;
      case 'alie': {
        const mu = mean(honest);
        const sd = new Float64Array(d);
        for (const x of honest) for (let i = 0; i < d; i++) sd[i] += (x[i] - mu[i]) ** 2 / honest.length;
        out.push(encodeUpdate(jitter(Float32Array.from(mu, (m, i) => m + ALIE_Z * Math.sqrt(sd[i]))), compression));
        break;
      }
      case 'ipm': out.push(encodeUpdate(jitter(Float32Array.from(mean(honest), (m) => -IPM_SCALE * m)), compression)); break;
      case 'nan-inf': {
        const x = honest[a].slice(); // an honest-looking update with NaN/Inf planted in it
        for (let i = a; i < d; i += 97) x[i] = a % 2 ? Infinity : NaN;
        out.push(encodeUpdate(x, { kind: 'fp32' })); // int8 would refuse to encode it; fp32 carries it verbatim
        break;
      }
      case 'replay': {
        // keep the first round's upload and send it again every round: two attackers byte for byte,
        // two re-encoded with a little jitter so the bytes differ (stale content under a fresh lease)
        if (!memory.has(a)) memory.set(a, encodeUpdate(await own(a), compression));
        const old = memory.get(a)!;
        if (a < 2 || round === 0) out.push(old);
        else out.push(encodeUpdate(jitter(decodeUpdate(old).values), compression));
        break;
      }
      case 'free-rider': out.push(encodeUpdate(a < 2 ? new Float32Array(d) : gaussianWithNorm(r, honestNorm), compression)); break;
      case 'none': break;
    }
  }
  return out;
}

async function runScenario(s: Scenario): Promise<Outcome> {
  const t0 = performance.now();
  const data = loadMnist();
  const trainer = createCpuTrainer(model, { batchSize: hp.batchSize, adamw: hp.adamw, clipNorm: hp.clipNorm });
  let params: Float32Array = initParams(model, 42);
  let momentum: Float32Array = new Float32Array(d);
  const residuals = Array.from({ length: VOLUNTEERS }, () => new Float32Array(d));
  const memory = new Map<number, Uint8Array>();
  const seen = new Set<string>();
  const refused: Record<string, number> = {};
  const r = rng(7);
  const nAttackers = s.attack === 'none' ? 0 : ATTACKERS;

  const train = async (volunteer: number, round: number): Promise<Float32Array> => {
    const shard = data.shards[volunteer % data.shards.length];
    const seed = (round * 1000 + volunteer) >>> 0;
    await trainer.load(params);
    for (let k = 0; k < hp.steps; k++) await trainer.step(batchFor(shard, seed, k, hp.batchSize));
    return trainer.delta();
  };

  for (let round = 0; round < ROUNDS; round++) {
    const honest: Float32Array[] = [];
    const frames: Uint8Array[] = [];
    for (let v = nAttackers; v < VOLUNTEERS; v++) {
      const delta = await train(v, round);
      honest.push(delta);
      frames.push(encodeUpdate(delta, compression, residuals[v]));
    }
    frames.push(...(await attackerFrames(s.attack, round, honest, (a) => train(a, round), memory, r)));

    // relay side: decode, refuse byte-exact replays, validate against the round's median norm
    const decoded: Update[] = [];
    for (const f of frames) {
      const digest = createHash('sha256').update(f).digest('hex');
      if (seen.has(digest)) { refused.DUPLICATE = (refused.DUPLICATE ?? 0) + 1; continue; }
      seen.add(digest);
      try {
        decoded.push(decodeUpdate(f, d));
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        refused.CODEC = (refused.CODEC ?? 0) + 1;
      }
    }
    const norms = decoded.map((u) => norm(u.values));
    const normBound = normBoundFrom(norms);
    const accepted: Update[] = [];
    for (const u of decoded) {
      const v = validateUpdate(u, { paramCount: d, normBound });
      if (v.ok) accepted.push(u);
      else refused[v.code] = (refused[v.code] ?? 0) + 1;
    }
    if (accepted.length === 0) continue;
    const agg = aggregate(s.aggregator, accepted, accepted.map(() => 1), { seed: round });
    ({ params, momentum } = outerStep(params, momentum, agg, hp.outerLr, hp.outerMomentum));
  }
  trainer.destroy();
  const { accuracy } = mlpEvaluate(model, params, { x: data.heldOut.x, y: data.heldOut.y, n: data.heldOut.n });
  return { ...s, accuracy, refused, seconds: (performance.now() - t0) / 1000 };
}

// ------------------------------------------------------------------ driver: scenarios over workers

async function main(): Promise<void> {
  const scenarios: Scenario[] = [];
  const pick = <T extends string>(env: string | undefined, all: readonly T[]) => (env ? all.filter((x) => env.split(',').includes(x)) : all);
  const runAttacks = pick(process.env.BENCH_ATTACKS, attacks), runAggs = pick(process.env.BENCH_AGGREGATORS, aggregatorNames);
  for (const attack of runAttacks) for (const aggregator of runAggs) scenarios.push({ aggregator, attack });
  const workers = Math.max(1, Math.min(Number(process.env.BENCH_WORKERS ?? 2), availableParallelism(), scenarios.length));
  console.log(`attacks: ${VOLUNTEERS} volunteers (${ATTACKERS} attackers), ${ROUNDS} rounds of H=${hp.steps} × batch ${hp.batchSize}, ` +
    `${compression.kind} updates, ${scenarios.length} runs on ${workers} worker(s)`);
  const results: Outcome[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: workers }, () => new Promise<void>((resolve, reject) => {
    // child processes (not worker threads: those do not get tsx's loader), each running scenarios it is fed
    const w = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, BENCH_ROLE: 'scenario-runner' } });
    const feed = () => {
      if (next < scenarios.length) w.send(scenarios[next++]);
      else { w.kill(); resolve(); }
    };
    w.on('message', (m) => {
      const o = m as Outcome;
      results.push(o);
      const ref = Object.entries(o.refused).map(([k, n]) => `${k}×${n}`).join(' ') || '-';
      console.log(`  ${o.attack.padEnd(10)} ${o.aggregator.padEnd(13)} ${(100 * o.accuracy).toFixed(1).padStart(5)} %  ${o.seconds.toFixed(0)} s  refused: ${ref}`);
      feed();
    });
    w.on('error', reject);
    w.on('exit', (code) => { if (code) reject(new Error(`scenario runner exited with ${code}`)); });
    feed();
  })));

  const acc = (attack: Attack, aggregator: AggregatorName) => 100 * (results.find((o) => o.attack === attack && o.aggregator === aggregator)?.accuracy ?? NaN);
  console.log(`\nfinal held-out accuracy (%), ${ROUNDS} rounds:`);
  console.log(`${'attack'.padEnd(12)}${aggregatorNames.map((a) => a.padStart(15)).join('')}`);
  for (const attack of attacks) console.log(`${(attack === 'none' ? 'clean' : attack).padEnd(12)}${aggregatorNames.map((a) => acc(attack, a).toFixed(1).padStart(15)).join('')}`);
  const hostile = attacks.filter((a) => a !== 'none');
  const worst = (agg: AggregatorName) => Math.min(...hostile.map((a) => acc(a, agg)));
  const clean = acc('none', 'mean');
  console.log(`attacks: default defence worst case ${worst(defaultAggregator).toFixed(1)} % vs clean ${clean.toFixed(1)} % (20 % attackers); mean worst case ${worst('mean').toFixed(1)} %`);
}

if (process.env.BENCH_ROLE === 'scenario-runner') {
  process.on('message', async (s) => process.send!(await runScenario(s as Scenario)));
} else {
  await main();
}
