// The benchmark's attacks. Model poisoning follows ByzFL's definitions (byzfl.readthedocs.io, "Attacks"),
// with the attacker omniscient as there: it sees this round's honest Δs. Each returns the vectors the
// f attackers send; the bench encodes them (int8, as honest volunteers do) and runs the relay's checks.
//   sign-flip    ByzFL SignFlipping: −μ, μ the honest mean.
//   alie         ByzFL ALittleIsEnough(tau = 1.5): μ + τ · σ per coordinate, σ² the unbiased (n − 1) variance.
//   ipm          ByzFL InnerProductManipulation(tau = 2): −τ · μ.
//   alie-opt,    ByzFL Optimal_ALIE / Optimal_InnerProductManipulation: τ chosen each round by a line search
//   ipm-opt      that maximises ‖defence(honest ∪ attack(τ)) − μ‖ with the defence in force (pre-aggregators,
//                rule and the relay's norm bound), 20 evaluations as ByzFL's evals = 20: 12 on a log grid
//                0.1…100, then 8 between the best point's neighbours.
//   inf          ByzFL Inf: every coordinate +∞ (the codec refuses it before aggregation).
//   mimic        ByzFL Mimic(epsilon = 0): all attackers copy honest volunteer 0 (over-weights one
//                volunteer's data; it matters under non-IID data).
//   gaussian     noise with 2.5 × the median honest norm (ours; ByzFL's Gaussian has an absolute σ that the
//                norm bound would refuse outright).
//   label-flip   data poisoning, ByzFL LabelFlipping: the attacker trains honestly on labels y → 9 − y.
//   backdoor     data poisoning (BadNets trigger, bench/attacks/data.ts): half of every batch carries the
//                trigger and the target label; the Δ is sent as trained.
//   backdoor-boost  the same Δ scaled to 2.5 × the median honest norm (Bagdasaryan et al.'s boosting,
//                kept under the relay's 3 × median norm bound).
//   alie-mix,    adaptive to the usefulness check (ours): each attacker trains honestly on its own data and
//   ipm-mix      sends its own Δ_a plus the poison, Δ_a + τ · σ (ALIE's deviation) or Δ_a − τ · μ (IPM's), so
//                the loss on its own task's batch can still drop; τ by the same line search (which sees the
//                check), on a grid from 0.01, counting only a τ at which the relay accepts the attackers
//                (refused, they would leave the honest aggregate alone, whatever its distance from μ).
import type { Rng } from '../../shared/util/rng.ts';

export const attackNames = [
  'none', 'sign-flip', 'gaussian', 'alie', 'alie-opt', 'ipm', 'ipm-opt', 'alie-mix', 'ipm-mix', 'inf', 'mimic', 'label-flip', 'backdoor', 'backdoor-boost',
] as const;
export type Attack = (typeof attackNames)[number];
export const dataPoisoning: readonly Attack[] = ['label-flip', 'backdoor', 'backdoor-boost'];

export type Poison = 'none' | 'label-flip' | 'backdoor';
export type AttackContext = {
  honest: Float32Array[];
  f: number;
  /** The relay's pipeline on honest ∪ these attacker vectors: its aggregate (undefined if all were
   * refused) and how many of the attacker vectors it accepted. */
  defend: (attackers: Float32Array[]) => { agg?: Float32Array; attackersAccepted: number };
  /** Attacker a's Δ from training on its own data, poisoned as asked. */
  train: (a: number, poison: Poison) => Promise<Float32Array>;
  r: Rng;
};

export const mean = (xs: Float32Array[]): Float64Array => {
  const m = new Float64Array(xs[0].length);
  for (const x of xs) for (let i = 0; i < m.length; i++) m[i] += x[i] / xs.length;
  return m;
};
export const norm = (x: ArrayLike<number>) => { let s = 0; for (let i = 0; i < x.length; i++) s += x[i] * x[i]; return Math.sqrt(s); };
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };

function std(xs: Float32Array[], mu: Float64Array): Float64Array {
  const v = new Float64Array(mu.length);
  for (const x of xs) for (let i = 0; i < mu.length; i++) v[i] += (x[i] - mu[i]) ** 2 / (xs.length - 1);
  return v.map(Math.sqrt);
}

const alie = (mu: Float64Array, sd: Float64Array, tau: number) => Float32Array.from(mu, (m, i) => m + tau * sd[i]);
const ipm = (mu: Float64Array, tau: number) => Float32Array.from(mu, (m) => -tau * m);
/** An attacker's own honest Δ with τ × the poison added: what passes a check on its own batch. */
export const mixIn = (own: Float32Array, poison: ArrayLike<number>, tau: number) => Float32Array.from(own, (h, i) => h + tau * poison[i]);

/** τ maximising the defended aggregate's distance from the honest mean; 20 evaluations, 12 on a log grid
 * from `lo` to 100. `make` gives the f attacker vectors for a τ. */
export function lineSearch(c: AttackContext, make: (tau: number) => Float32Array[], lo0 = 0.1, mustPass = false): number {
  const mu = mean(c.honest);
  const harm = (tau: number) => {
    const { agg, attackersAccepted } = c.defend(make(tau));
    if (!agg || (mustPass && attackersAccepted === 0)) return -1;
    let s = 0;
    for (let i = 0; i < mu.length; i++) s += (agg[i] - mu[i]) ** 2;
    return s;
  };
  const grid = Array.from({ length: 12 }, (_, k) => lo0 * Math.pow(100 / lo0, k / 11));
  const scores = grid.map(harm);
  let b = scores.indexOf(Math.max(...scores));
  let best = grid[b], bestScore = scores[b];
  const lo = grid[Math.max(0, b - 1)], hi = grid[Math.min(grid.length - 1, b + 1)];
  for (let k = 1; k <= 8; k++) {
    const tau = lo * Math.pow(hi / lo, k / 9);
    const s = harm(tau);
    if (s > bestScore) { bestScore = s; best = tau; }
  }
  return best;
}

/** The f attacker vectors of this round (before the relay's checks). */
export async function attackVectors(attack: Attack, c: AttackContext): Promise<Float32Array[]> {
  const f = c.f, d = c.honest[0].length;
  const copies = (v: Float32Array) => Array.from({ length: f }, () => v);
  const mu = mean(c.honest);
  const honestNorm = median(c.honest.map(norm));
  switch (attack) {
    case 'none': return [];
    case 'sign-flip': return copies(ipm(mu, 1));
    case 'ipm': return copies(ipm(mu, 2));
    case 'ipm-opt': return copies(ipm(mu, lineSearch(c, (t) => copies(ipm(mu, t)))));
    case 'alie': return copies(alie(mu, std(c.honest, mu), 1.5));
    case 'alie-opt': { const sd = std(c.honest, mu); return copies(alie(mu, sd, lineSearch(c, (t) => copies(alie(mu, sd, t))))); }
    case 'alie-mix': case 'ipm-mix': {
      const own = await Promise.all(Array.from({ length: f }, (_, a) => c.train(a, 'none')));
      const poison = attack === 'alie-mix' ? std(c.honest, mu) : mu.map((m) => -m);
      const make = (t: number) => own.map((h) => mixIn(h, poison, t));
      return make(lineSearch(c, make, 0.01, true));
    }
    case 'inf': return copies(new Float32Array(d).fill(Infinity));
    case 'mimic': return copies(c.honest[0]);
    case 'gaussian': return Array.from({ length: f }, () => {
      const g = Float32Array.from({ length: d }, () => c.r.normal());
      const k = (2.5 * honestNorm) / norm(g);
      return g.map((v) => v * k);
    });
    case 'label-flip': return Promise.all(Array.from({ length: f }, (_, a) => c.train(a, 'label-flip')));
    case 'backdoor': return Promise.all(Array.from({ length: f }, (_, a) => c.train(a, 'backdoor')));
    case 'backdoor-boost': return Promise.all(Array.from({ length: f }, async (_, a) => {
      const v = await c.train(a, 'backdoor');
      const k = (2.5 * honestNorm) / norm(v);
      return v.map((x) => x * k);
    }));
  }
}
