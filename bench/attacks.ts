// npm run bench:attacks — poisoning as the field measures it (ByzFL's attacks and defences), at protocol
// level and in-process. 10 simulated volunteers, 2 of them hostile (20 %); every round each honest one
// trains H inner AdamW steps with the CPU reference on its own shard and sends an int8 frame with error
// feedback; the attackers send what their attack says (bench/attacks/attacks.ts), seeing the honest Δs.
// The relay side decodes each frame (codec), refuses exact replays, validates (finite, norm ≤ 3 × the
// round's median), aggregates with the defence (pre-aggregators, then the rule) and takes the DiLoCo
// outer step (Nesterov, lr 0.7, momentum 0.9). Clean runs have the 8 honest volunteers alone.
//
// Size, chosen so the whole table (14 attacks × 22 defences × 2 splits = 616 runs, about 3 CPU seconds
// each at 30 rounds) runs in half an hour of 2 idle cores: MNIST pooled to 14 × 14, an MLP 196-32-10 (6,634 parameters; the
// default job's 784-128-10 costs 24 × more per step on the CPU), 8,000 training rows over 8 honest
// volunteers, IID or Dirichlet α = 0.1 over classes, 2,000 held out; BENCH_ROUNDS (default 30) rounds of
// H = BENCH_STEPS (default 10) × batch 32 (30: at 15 the non-IID clean model was still at 71 %, 79 % at 30).
// Env: BENCH_WORKERS (default 2), BENCH_ATTACKS / BENCH_DEFENCES / BENCH_SPLITS (comma lists, subsets).
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { aggregate, type AggregatorName, type PreAggregatorName } from '../shared/aggregate/index.ts';
import { CodecError, decodeUpdate, encodeUpdate, type Update } from '../shared/codec/index.ts';
import { batchFor, type Shard } from '../shared/data/shard.ts';
import type { Usefulness } from '../shared/protocol/messages.ts';
import { initParams, paramCount, type MlpConfig } from '../shared/models/config.ts';
import { mlpEvaluate, mlpLogits } from '../shared/reference/mlp.ts';
import { createCpuTrainer } from '../shared/train/cpu.ts';
import { rng } from '../shared/util/rng.ts';
import { mnistHyperparameters } from '../server/default-job.ts';
import { DEFAULT_RELATIVE_SHARE, resolveJobHyperparameters } from '../server/defence/default.ts';
import { refusal, RELATIVE_WINDOW, usefulnessScore } from '../server/defence/usefulness.ts';
import { outerStep } from '../server/scheduler/outer-step.ts';
import { normBoundFrom, validateUpdate } from '../server/defence/validate.ts';
import { attackNames, attackVectors, dataPoisoning, norm, type Attack, type Poison } from './attacks/attacks.ts';
import { addTrigger, benchData, classesPerShard, CLASSES, INPUTS, TARGET, triggeredHeldOut, type Split } from './attacks/data.ts';

/** "nnm+centered-clip": pre-aggregators then the rule. A leading "useful+" adds the relay's usefulness
 * check in enforce mode with minDrop 0 (server/defence/usefulness.ts): an update that does not lower the
 * loss on its own task's first batch is refused before aggregation; "useful-rel+" adds the relative floor
 * too, at the default share (server/defence/default.ts). */
type Defence = { name: string; rule: AggregatorName; pre: PreAggregatorName[]; usefulness: Usefulness };
const defence = (name: string): Defence => {
  const parts = name.split('+');
  const mode = parts[0] === 'useful' || parts[0] === 'useful-rel' ? 'enforce' : 'off';
  const relative = parts[0] === 'useful-rel' ? { relativeShare: DEFAULT_RELATIVE_SHARE } : {};
  if (mode === 'enforce') parts.shift();
  return { name, rule: parts.pop() as AggregatorName, pre: parts as PreAggregatorName[], usefulness: { mode, minDrop: 0, ...relative } };
};
export const defences = [
  'mean', 'median', 'trimmed-mean', 'geometric-median', 'krum', 'multi-krum', 'centered-clip',
  'nnm+trimmed-mean', 'nnm+centered-clip', 'nnm+multi-krum', 'arc+nnm+centered-clip',
  'useful+mean', 'useful+median', 'useful+trimmed-mean', 'useful+centered-clip', 'useful+multi-krum', 'useful+nnm+multi-krum',
  'useful-rel+mean', 'useful-rel+trimmed-mean', 'useful-rel+centered-clip', 'useful-rel+multi-krum', 'useful-rel+nnm+multi-krum',
].map(defence);
const splits: Split[] = ['iid', 'non-iid'];

type Scenario = { defence: string; attack: Attack; split: Split };
type Flags = { n: number; own: number; heldOut: number };
type Outcome = Scenario & {
  accuracy: number; backdoor: number; refused: Record<string, number>; seconds: number; cpu: number;
  /** usefulness drop ≤ 0 on the volunteer's own assigned batch / on a held-out batch, per kind of sender */
  useful: { attacker: Flags; honest: Flags };
  /** under the check: each scored update's drop on its own batch as a share of the loss before */
  drops: { attacker: number[]; honest: number[] };
};

const HONEST = 8, ATTACKERS = 2;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);
const hp = { ...mnistHyperparameters, steps: Number(process.env.BENCH_STEPS ?? 10) };
const compression = hp.compression;
const model: MlpConfig = { kind: 'mlp', inputs: INPUTS, hidden: [32], classes: CLASSES };
const d = paramCount(model);

/** What the relay applies to a job submitted with this model and batch size and no defence named
 * (server/defence/default.ts, the code the relay's job submission runs): the bench's "default defence". */
const submitted = resolveJobHyperparameters(model, { hyperparameters: { batchSize: hp.batchSize } });
const enforced = submitted.usefulness?.mode === 'enforce' ? (submitted.usefulness.relativeShare ? 'useful-rel' : 'useful') : '';
const DEFAULT = [enforced, ...(submitted.preAggregators ?? []), submitted.aggregator].filter(Boolean).join('+');
{
  const parsed = defence(DEFAULT), off: Usefulness = { mode: 'off', minDrop: 0 };
  const want = submitted.usefulness?.mode === 'score' ? off : (submitted.usefulness ?? off);
  const same = (a: Usefulness, b: Usefulness) => a.mode === b.mode && a.minDrop === b.minDrop && (a.relativeShare ?? 0) === (b.relativeShare ?? 0);
  if (!same(parsed.usefulness, want)) throw new Error(`the bench cannot run the default defence ${JSON.stringify(submitted.usefulness)}`);
}

const cache = new Map<Split, { data: ReturnType<typeof benchData>; trigger: Shard }>();
function dataFor(split: Split) {
  if (!cache.has(split)) { const data = benchData(split, HONEST, ATTACKERS); cache.set(split, { data, trigger: triggeredHeldOut(data.heldOut) }); }
  return cache.get(split)!;
}

async function runScenario(s: Scenario): Promise<Outcome> {
  const t0 = performance.now();
  const def = defence(s.defence);
  const cpu0 = process.cpuUsage();
  const { data, trigger } = dataFor(s.split);
  const trainer = createCpuTrainer(model, { batchSize: hp.batchSize, adamw: hp.adamw, clipNorm: hp.clipNorm });
  let params: Float32Array = initParams(model, 42);
  let momentum: Float32Array = new Float32Array(d);
  const residuals = Array.from({ length: HONEST }, () => new Float32Array(d));
  const seen = new Set<string>();
  const refused: Record<string, number> = {};
  const useful = { attacker: { n: 0, own: 0, heldOut: 0 }, honest: { n: 0, own: 0, heldOut: 0 } };
  const drops = { attacker: [] as number[], honest: [] as number[] };
  /** relative drops of the updates the check accepted, in order (useful-rel: the job's recent history) */
  const history: number[] = [];
  const r = rng(7);
  const f = s.attack === 'none' ? 0 : ATTACKERS;
  const count = (k: string) => { refused[k] = (refused[k] ?? 0) + 1; };

  const train = async (shard: Shard, seed: number, poison?: Poison): Promise<Float32Array> => {
    await trainer.load(params);
    for (let k = 0; k < hp.steps; k++) {
      const b = batchFor(shard, seed, k, hp.batchSize);
      if (b.kind !== 'labelled') throw new Error('the bench trains on labelled batches');
      if (poison === 'label-flip') for (let i = 0; i < b.n; i++) b.y[i] = CLASSES - 1 - b.y[i];
      if (poison === 'backdoor') for (let i = 0; i < b.n >> 1; i++) { addTrigger(b.x, i); b.y[i] = TARGET; }
      await trainer.step(b);
    }
    return trainer.delta();
  };
  const aggregateWith = (xs: Update[], round: number) =>
    aggregate(def.rule, xs, xs.map(() => 1), { seed: round, preAggregators: def.pre });
  type Owner = { shard: Shard; seed: number; attacker: boolean };
  /** Validation (and the usefulness check if the defence has it), then aggregation, on vectors already
   * decoded: what the relay does after the codec. */
  const relay = (xs: Update[], who: Owner[], round: number, tally: boolean): { agg?: Float32Array; accepted: boolean[] } => {
    const normBound = normBoundFrom(xs.map((u) => norm(u.values)));
    const accepted = xs.map((u, j) => {
      const v = validateUpdate(u, { paramCount: d, normBound });
      if (!v.ok && tally) count(v.code);
      if (!v.ok || def.usefulness.mode !== 'enforce') return v.ok;
      const score = usefulnessScore(model, params, u, batchFor(who[j].shard, who[j].seed, 0, hp.batchSize));
      const ratio = score.drop / score.before;
      if (tally) (who[j].attacker ? drops.attacker : drops.honest).push(ratio);
      const no = refusal(def.usefulness, score, history.slice(-RELATIVE_WINDOW).reverse()) !== undefined;
      if (no && tally) count('NOT_USEFUL');
      if (!no && tally) history.push(ratio);
      return !no;
    });
    const ok = xs.filter((_, j) => accepted[j]);
    return { agg: ok.length ? aggregateWith(ok, round) : undefined, accepted };
  };

  for (let round = 0; round < ROUNDS; round++) {
    const seedOf = (v: number) => (round * 1000 + v) >>> 0;
    const frames: Uint8Array[] = [], owners: Owner[] = [];
    const honest: Float32Array[] = [];
    for (let v = 0; v < HONEST; v++) {
      const frame = encodeUpdate(await train(data.honest[v], seedOf(v)), compression, residuals[v]);
      frames.push(frame);
      owners.push({ shard: data.honest[v], seed: seedOf(v), attacker: false });
      honest.push(decodeUpdate(frame, d).values as Float32Array);
    }
    const dense = (values: Float32Array): Update => ({ kind: 'dense', values });
    const evil = await attackVectors(s.attack, {
      honest, f, r,
      defend: (xs) => {
        const { agg, accepted } = relay([...honest, ...xs].map(dense), [...owners, ...xs.map((_, a) => ({ shard: data.attackers[a], seed: seedOf(100 + a), attacker: true }))], round, false);
        return { agg, attackersAccepted: accepted.slice(HONEST).filter(Boolean).length };
      },
      train: (a, poison) => train(data.attackers[a], seedOf(100 + a), poison),
    });
    evil.forEach((x, a) => {
      // colluders add a little jitter so their frames are not byte-identical (the relay drops exact copies)
      const jittered = Float32Array.from(x, (v) => v * (1 + 1e-3 * r.normal()));
      frames.push(encodeUpdate(jittered, jittered.every(Number.isFinite) ? compression : { kind: 'fp32' }));
      owners.push({ shard: data.attackers[a], seed: seedOf(100 + a), attacker: true });
    });

    // relay side: decode, refuse byte-exact replays, validate, aggregate
    const decoded: Update[] = [], from: typeof owners = [];
    frames.forEach((fr, j) => {
      const digest = createHash('sha256').update(fr).digest('hex');
      if (seen.has(digest)) return count('DUPLICATE');
      seen.add(digest);
      try {
        decoded.push(decodeUpdate(fr, d)); from.push(owners[j]);
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        count('CODEC');
      }
    });
    const { agg, accepted } = relay(decoded, from, round, true);
    // usefulness (server/defence/usefulness.ts) of every accepted update, on its own batch and a held-out one
    const control = batchFor(data.heldOut, round, 0, hp.batchSize);
    decoded.forEach((u, j) => {
      if (!accepted[j] || def.usefulness.mode === 'enforce') return; // (under the check itself every accepted update passed it)
      const score = usefulnessScore(model, params, u, batchFor(from[j].shard, from[j].seed, 0, hp.batchSize), control);
      const t = from[j].attacker ? useful.attacker : useful.honest;
      t.n++;
      if (score.drop <= 0) t.own++;
      if ((score.controlDrop ?? 0) <= 0) t.heldOut++;
    });
    if (!agg) continue;
    ({ params, momentum } = outerStep(params, momentum, agg, hp.outerLr, hp.outerMomentum));
  }
  trainer.destroy();
  const { accuracy } = mlpEvaluate(model, params, { x: data.heldOut.x, y: data.heldOut.y, n: data.heldOut.n });
  const logits = mlpLogits(model, params, trigger.x, trigger.n);
  let hits = 0;
  for (let i = 0; i < trigger.n; i++) {
    const row = logits.subarray(i * CLASSES, (i + 1) * CLASSES);
    if (row.indexOf(Math.max(...row)) === TARGET) hits++;
  }
  return { ...s, accuracy, backdoor: hits / trigger.n, refused, useful, drops, seconds: (performance.now() - t0) / 1000, cpu: (process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6 };
}

// ------------------------------------------------------------------ driver: scenarios over workers

const pct = (x: number) => (100 * x).toFixed(1);

async function main(): Promise<void> {
  const pick = <T extends string>(env: string | undefined, all: readonly T[]) => (env ? all.filter((x) => env.split(',').includes(x)) : [...all]);
  const runAttacks = pick(process.env.BENCH_ATTACKS, attackNames);
  const runDefences = pick(process.env.BENCH_DEFENCES, defences.map((x) => x.name));
  if (!runDefences.includes(DEFAULT)) runDefences.push(DEFAULT);
  const runSplits = pick(process.env.BENCH_SPLITS, splits);
  const scenarios: Scenario[] = [];
  for (const split of runSplits) for (const attack of runAttacks) for (const def of runDefences) scenarios.push({ defence: def, attack, split });
  const workers = Math.max(1, Math.min(Number(process.env.BENCH_WORKERS ?? 2), availableParallelism(), scenarios.length));
  const nonIid = benchData('non-iid', HONEST, ATTACKERS).honest.map(classesPerShard);
  console.log(`attacks: ${HONEST + ATTACKERS} volunteers (${ATTACKERS} attackers, f = ${ATTACKERS}), MLP 196-32-10 (${d} parameters) on MNIST 14 × 14, ` +
    `${ROUNDS} rounds of H=${hp.steps} × batch ${hp.batchSize}, ${compression.kind} updates, ${scenarios.length} runs on ${workers} worker(s); ` +
    `non-IID: Dirichlet α = 0.1, classes holding ≥ 5 % of a shard: ${nonIid.join(' ')}`);
  const results: Outcome[] = [];
  let next = 0, cpuChildren = 0;
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
      cpuChildren += o.cpu;
      const ref = Object.entries(o.refused).map(([k, n]) => `${k}×${n}`).join(' ') || '-';
      console.log(`  ${o.split.padEnd(8)} ${o.attack.padEnd(15)} ${o.defence.padEnd(22)} ${pct(o.accuracy).padStart(5)} %  backdoor ${pct(o.backdoor).padStart(5)} %  ${o.cpu.toFixed(1)} s CPU  refused: ${ref}`);
      feed();
    });
    w.on('error', reject);
    w.on('exit', (code) => { if (code) reject(new Error(`scenario runner exited with ${code}`)); });
    feed();
  })));

  const get = (split: Split, attack: Attack, def: string) => results.find((o) => o.split === split && o.attack === attack && o.defence === def);
  const acc = (split: Split, attack: Attack, def: string) => 100 * (get(split, attack, def)?.accuracy ?? NaN);
  const hostile = runAttacks.filter((a) => a !== 'none');
  const worst = (split: Split, def: string) => Math.min(...hostile.map((a) => acc(split, a, def)));
  for (const split of runSplits) {
    console.log(`\nfinal held-out accuracy (%), ${split}, ${ROUNDS} rounds (rows: attack; columns: defence):`);
    console.log(`${'attack'.padEnd(15)}${runDefences.map((x) => x.padStart(Math.max(9, x.length + 1))).join('')}`);
    for (const attack of runAttacks) console.log(`${(attack === 'none' ? 'clean' : attack).padEnd(15)}${runDefences.map((x) => acc(split, attack, x).toFixed(1).padStart(Math.max(9, x.length + 1))).join('')}`);
    console.log(`${'worst case'.padEnd(15)}${runDefences.map((x) => worst(split, x).toFixed(1).padStart(Math.max(9, x.length + 1))).join('')}`);
    console.log(`backdoor success (%), triggered non-target held-out rows classified as ${TARGET}:`);
    for (const attack of runAttacks.filter((a) => a === 'none' || a.startsWith('backdoor'))) {
      console.log(`${(attack === 'none' ? 'clean' : attack).padEnd(15)}${runDefences.map((x) => (100 * (get(split, attack, x)?.backdoor ?? NaN)).toFixed(1).padStart(Math.max(9, x.length + 1))).join('')}`);
    }
  }
  console.log('\nusefulness score (drop ≤ 0 would be refused under enforce, minDrop 0), accepted updates over all defences:');
  for (const split of runSplits) for (const attack of hostile) {
    const os = results.filter((o) => o.split === split && o.attack === attack);
    const sum = (k: 'attacker' | 'honest', g: keyof Flags) => os.reduce((a, o) => a + o.useful[k][g], 0);
    const share = (k: 'attacker' | 'honest', g: keyof Flags) => (sum(k, 'n') ? `${pct(sum(k, g) / sum(k, 'n'))} %` : '-');
    console.log(`  ${split.padEnd(8)} ${attack.padEnd(15)} attackers flagged: own batch ${share('attacker', 'own').padStart(7)}, held-out ${share('attacker', 'heldOut').padStart(7)} ` +
      `(${sum('attacker', 'n')} updates); honest flagged: own ${share('honest', 'own').padStart(7)}, held-out ${share('honest', 'heldOut').padStart(7)}`);
  }
  const enforced = results.filter((o) => o.drops.honest.length);
  if (enforced.length) {
    console.log('\nunder the check: drop on its own batch ÷ loss before, quantiles 1 % / 10 % / 50 % (over every defence with the check):');
    const q = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return [0.01, 0.1, 0.5].map((p) => (s.length ? s[Math.floor(p * (s.length - 1))].toFixed(3) : '-')).join(' / '); };
    for (const split of runSplits) {
      console.log(`  ${split.padEnd(8)} ${'honest'.padEnd(15)} ${q(enforced.filter((o) => o.split === split).flatMap((o) => o.drops.honest))}`);
      for (const attack of hostile) console.log(`  ${split.padEnd(8)} ${attack.padEnd(15)} ${q(enforced.filter((o) => o.split === split && o.attack === attack).flatMap((o) => o.drops.attacker))}`);
    }
  }
  const rank = runDefences.map((x) => ({ x, gap: Math.min(...runSplits.map((sp) => worst(sp, x) - acc(sp, 'none', 'mean'))) })).sort((a, b) => b.gap - a.gap);
  console.log(`\ndefences by worst case minus clean mean accuracy (min over splits): ${rank.map((e) => `${e.x} ${e.gap.toFixed(1)}`).join(', ')}`);
  console.log(`default defence ${DEFAULT}: clean ${runSplits.map((sp) => `${acc(sp, 'none', DEFAULT).toFixed(1)} % ${sp}`).join(', ')} (mean: ${runSplits.map((sp) => `${acc(sp, 'none', 'mean').toFixed(1)} %`).join(', ')}); ` +
    `${scenarios.length} runs, ${cpuChildren.toFixed(0)} CPU seconds`);
  const bd = (def: string) => Math.max(...runSplits.flatMap((sp) => runAttacks.filter((a) => a.startsWith('backdoor')).map((a) => 100 * (get(sp, a, def)?.backdoor ?? NaN))));
  console.log(`attacks: default defence worst case ${worst('iid', DEFAULT).toFixed(1)} % vs clean ${acc('iid', 'none', 'mean').toFixed(1)} % ` +
    `(20 % attackers, ${hostile.length} attacks, IID), ${worst('non-iid', DEFAULT).toFixed(1)} % vs ${acc('non-iid', 'none', 'mean').toFixed(1)} % non-IID; ` +
    `backdoor success ${bd(DEFAULT).toFixed(1)} % (no defence ${bd('mean').toFixed(1)} %)`);
  void dataPoisoning;
}

if (process.env.BENCH_ROLE === 'scenario-runner') {
  process.on('message', async (s) => process.send!(await runScenario(s as Scenario)));
} else {
  await main();
}
