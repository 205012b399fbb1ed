// A round's heavy math, run on a pool worker (or inline without a pool): read the base checkpoint and the
// pending updates, decode (unless decoded on arrival already, ./prefold.ts) and fold them one at a time
// into the streaming accumulator (shared/aggregate/streaming.ts), the robust rule, the DiLoCo outer step, publishing the version as a
// compressed delta (shared/codec/version-delta.ts), the hashes, and (SQLite) writing the new version's
// large parts to files under this attempt's own staged names (../store/checkpoint-files.ts). The main
// thread only routes the task and inserts the row (server/scheduler/rounds.ts; the winning commit renames
// the staged files): nothing here changes what the store holds, so a worker that dies mid-round leaves
// the round as it was, its updates pending, and at most staged files that the closer removes.
//
// Memory at 124M (4 bytes a parameter per array, about 0.5 GB): the K kept updates, then the rule's own
// arrays (centered clipping: one more, shared/aggregate/centered-clip.ts); after the rule the kept
// updates' arrays are reused for the base params, momentum and residual as they are read (no three new
// model-sized arrays while the old wait for the garbage collector).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeUpdate, type Compression, type Update } from '../../shared/codec/index.ts';
import { publishVersionInPlace } from '../../shared/codec/version-delta.ts';
import type { AggregatorName, PreAggregatorName } from '../../shared/aggregate/index.ts';
import { createRoundAccumulator, roundBuckets, type RoundAccumulator } from '../../shared/aggregate/streaming.ts';
import type { BaseCheckpoint, RoundInputs } from '../store/round-inputs.ts';
import { stageParts, type CheckpointPart, type FileParts, type StagedOutput } from '../store/checkpoint-files.ts';
import { outerStepInPlace } from '../scheduler/outer-step.ts';
import { outerGain } from '../scheduler/outer-gain.ts';

/** A test-only fault: the worker throws, or its thread exits, after folding (mid-round), or its thread
 * exits after writing its staged files ('exit-written'). */
export type RoundFault = 'throw' | 'exit' | 'exit-written';

export type RoundSpec = {
  jobId: string; version: number; length: number;
  /** pending updates' task ids, oldest first */
  taskIds: string[];
  aggregator: AggregatorName; preAggregators?: PreAggregatorName[];
  outerLr: number; outerMomentum: number;
  /** how the new version is published (deltaCompression of the job's) */
  publish: Compression;
  /** swarm jobs: each Δ is scaled by nominal / its samples (FedNova; see foldAll) */
  nominalSamples?: number;
  /** swarm jobs: the outer step's gain from the round's own spread (../scheduler/outer-gain.ts) */
  gain?: { kRef: number; max: number };
  fault?: RoundFault;
  /** where the worker writes the new version's large parts itself (RelayStore.roundOutput and the
   * attempt's name); absent: they go back in the outcome for the commit to write */
  output?: StagedOutput;
};

export type RoundOutcome = {
  params: Float32Array; momentum: Float32Array; residual: Float32Array;
  delta: Uint8Array; deltaSha256: string; hash: string;
  /** parts written under the attempt's staged names (their arrays above are then empty) */
  staged?: FileParts;
  /** updates the round applies (weight-0 ones too: they are spent), in order */
  applied: string[];
  /** updates whose payload file was gone: the store discards them */
  lost: string[];
  /** P-length vectors the accumulator held at the close */
  live: number;
  /** updates found decoded already (./prefold.ts) */
  prefolded: number;
  /** what the round's Δ was multiplied by (1 but for big swarm rounds) */
  gain: number;
  /** milliseconds per stage, on the thread that ran it */
  ms: { read: number; fold: number; rule: number; outer: number; publish: number; hash: number; write: number };
  /** that thread's CPU milliseconds per stage (Linux; what the wall times are, less waiting for a core) */
  cpuMs?: RoundOutcome['ms'];
};

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** This thread's CPU time (user + system) in ms, from /proc (clock ticks of 10 ms); NaN where there is none. */
function threadCpuMs(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

/** Updates decoded before the close (./prefold.ts): a task id's values, taken from wherever they were held. */
export type Prefolded = (taskId: string) => Float32Array | undefined;

/** `collect`: frees dead arrays now (a pool worker's ./collect.ts), between the stages that leave many */
export async function computeRound(spec: RoundSpec, inputs: RoundInputs, collect: () => void = () => undefined, prefolded: Prefolded = () => undefined): Promise<RoundOutcome> {
  const ms = { read: 0, fold: 0, rule: 0, outer: 0, publish: 0, hash: 0, write: 0 };
  const cpuMs = { ...ms };
  // the thread's CPU counts in 10 ms ticks: read again only once that much wall time has passed (a swarm
  // round of thousands of updates laps twice per update), and shared among the stages lapped since in
  // proportion to their wall time
  let t = performance.now(), c = threadCpuMs(), tc = t;
  const since: Partial<typeof ms> = {};
  const sample = (n: number) => {
    const nc = threadCpuMs();
    for (const [k, w] of Object.entries(since) as [keyof typeof ms, number][]) { cpuMs[k] += n > tc ? ((nc - c) * w) / (n - tc) : 0; delete since[k]; }
    c = nc; tc = n;
  };
  const lap = (stage: keyof typeof ms) => {
    const n = performance.now();
    ms[stage] += n - t;
    since[stage] = (since[stage] ?? 0) + (n - t);
    t = n;
    if (n - tc >= 10) sample(n);
  };
  const applied: string[] = [], lost: string[] = [];
  let found = 0;
  const take: Prefolded = (id) => { const x = prefolded(id); if (x) found++; return x; };
  // Second copies of spot checks weigh 0 (see intakeUpdate); a round made of nothing else counts them after all.
  let acc = await foldAll(spec, inputs, take, applied, lost, false, lap);
  if (acc.counted === 0 && applied.length > 0) {
    acc = undefined as unknown as RoundAccumulator;
    collect();
    acc = await foldAll(spec, inputs, take, [], [], true, lap);
  }
  if (spec.fault === 'throw') throw new Error('round fault injected for a test: the worker failed mid-round');
  if (spec.fault === 'exit') process.exit(1); // a worker thread's exit ends that thread only
  if (spec.fault === 'exit-written' && !spec.output) throw new Error('round fault injected for a test: nothing to stage, the worker failed mid-round');
  if (applied.length === 0) return empty(applied, lost, ms);
  collect(); // the payloads and their decoding's scratch, before the rule's arrays
  const out = await closeFolded(spec, inputs, acc, collect, lap, { applied, lost, ms, prefolded: found });
  sample(t);
  if (!Number.isNaN(c)) out.cpuMs = cpuMs;
  acc = undefined as unknown as RoundAccumulator;
  // what the round wrote and no longer needs (its files hold it now) goes before the result does: the
  // version's evaluation starts reading as soon as the commit lands, and would add to it
  collect();
  return out;
}

/** The rule, the outer step, publishing, hashes and the staged files, from the folded accumulator. */
async function closeFolded(spec: RoundSpec, inputs: RoundInputs, acc: RoundAccumulator, collect: () => void,
  lap: (stage: keyof RoundOutcome['ms']) => void, o: Pick<RoundOutcome, 'applied' | 'lost' | 'ms' | 'prefolded'>): Promise<RoundOutcome> {
  const { applied, lost, ms, prefolded } = o;
  const delta = acc.close(spec.aggregator, { preAggregators: spec.preAggregators });
  const gain = spec.gain ? outerGain(acc.spread(), spec.gain.kRef, spec.gain.max) : 1;
  if (gain !== 1) for (let i = 0; i < delta.length; i++) delta[i] *= gain;
  const live = acc.live;
  // the kept updates' arrays become the checkpoint's as it is read (see the head of this file)
  const spare = acc.release([delta]);
  collect(); // the rule's scratch
  lap('rule');
  const cur: BaseCheckpoint = await inputs.checkpoint(spec.jobId, spec.version, spare);
  lap('read');
  const residual = cur.residual ?? spare.pop()?.fill(0) ?? new Float32Array(spec.length);
  if (spare.length) { spare.length = 0; collect(); } // a kept update's array the checkpoint did not need
  // the outer step's result overwrites `delta` and the base momentum becomes the next (both are this round's own copies)
  const target = outerStepInPlace(cur.params, cur.momentum, delta, spec.outerLr, spec.outerMomentum);
  lap('outer');
  // each part is written as soon as it is final, while the next stage computes (see stageParts)
  const writes: Promise<FileParts>[] = [];
  const stage = (parts: Partial<Record<CheckpointPart, Uint8Array>>) => {
    if (!spec.output) return;
    const w = stageParts(spec.output, spec.jobId, spec.version + 1, parts);
    w.catch(() => undefined); // awaited below; a stage that throws first leaves it to the closer's discard
    writes.push(w);
  };
  stage({ momentum: bytesOf(cur.momentum) });
  // the new version is what its published delta gives: volunteers download that delta and rebuild these
  // exact bits (the base's array becomes the new version's: nothing here reads the base again)
  const published = publishVersionInPlace(cur.params, target, residual, spec.publish);
  lap('publish');
  const p = published.params;
  stage({ params: bytesOf(p), residual: bytesOf(residual), delta: published.delta });
  const out: RoundOutcome = {
    params: p, momentum: cur.momentum, residual, delta: published.delta, deltaSha256: sha256(published.delta),
    hash: sha256(new Uint8Array(p.buffer, p.byteOffset, p.byteLength)), applied, lost, live, gain, ms, prefolded,
  };
  lap('hash');
  if (spec.output) {
    // what is left of the writing once the hashes are done
    const staged: FileParts = Object.assign({}, ...(await Promise.all(writes)));
    out.staged = staged;
    const none = new Float32Array(0);
    if (staged.params !== undefined) out.params = none;
    if (staged.momentum !== undefined) out.momentum = none;
    if (staged.residual !== undefined) out.residual = none;
    if (staged.delta !== undefined) out.delta = new Uint8Array(0);
    lap('write');
    if (spec.fault === 'exit-written') process.exit(1);
  }
  return out;
}

const bytesOf = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Folds every pending update, one payload at a time. `all`: every update at weight 1 (a round of
 * spot-check second copies only). Tasks of different H (swarm jobs) are folded as FedNova does (Wang et
 * al., NeurIPS'20, arXiv 2007.07481): each Δ divided by its own samples and multiplied by the job's nominal,
 * weighted by its samples (and staleness). Averaged raw, a 40-step Δ is 8× a 5-step one and its weight 8×
 * too: the round's step was then set by the fastest devices and the outer momentum carried it past the
 * minimum (measured: 31 % held-out accuracy where fixed H reached 88 % at equal samples, bench/swarm.ts). */
async function foldAll(spec: RoundSpec, inputs: RoundInputs, prefolded: Prefolded, applied: string[], lost: string[], all: boolean, lap: (s: 'read' | 'fold') => void): Promise<RoundAccumulator> {
  const acc = createRoundAccumulator(spec.length, { seed: spec.version, buckets: roundBuckets(spec.taskIds.length, spec.length) });
  for (const id of spec.taskIds) {
    // decoded when it arrived (./prefold.ts): only its weight and samples are read now
    const held = prefolded(id);
    const u = held ? await inputs.pendingMeta(id) : await inputs.pending(id);
    lap('read');
    if (u === 'lost') { lost.push(id); continue; }
    if (!u) continue; // applied meanwhile (another relay's round): this round will not commit
    applied.push(id);
    if (!all && !(u.weight > 0)) continue;
    const x: Update = held ? { kind: 'dense', values: held } : decodeUpdate(u.payload!, spec.length);
    const k = spec.nominalSamples !== undefined && u.samples > 0 ? spec.nominalSamples / u.samples : 1;
    if (k !== 1) for (let i = 0; i < x.values.length; i++) x.values[i] *= k;
    acc.fold(x, all ? 1 : u.weight);
    lap('fold');
  }
  return acc;
}

function empty(applied: string[], lost: string[], ms: RoundOutcome['ms']): RoundOutcome {
  const none = new Float32Array(0);
  return { params: none, momentum: none, residual: none, delta: new Uint8Array(0), deltaSha256: '', hash: '', applied, lost, live: 0, gain: 1, ms, prefolded: 0 };
}
