// Checks a decoded update before the relay stores it: right size, finite values, well-formed sparse
// indices, not empty, and an L2 norm within a bound that holds from a job's first update (a prior from
// the job's optimiser settings, then the recent accepted norms). Pure: the relay calls it and turns a
// refusal into a 4xx with the code and message given here.
import { CodecError, compressionDensity, encodedNorm, readHeader, updateLength, type Update } from '../../shared/codec/index.ts';
import type { Hyperparameters } from '../../shared/protocol/messages.ts';

/** CORRUPT: the payload does not decode (truncated, unknown kind, bad scales, non-finite fp32 values). */
export type ValidationCode = 'WRONG_LENGTH' | 'NON_FINITE' | 'BAD_INDICES' | 'EMPTY_UPDATE' | 'NORM_TOO_LARGE' | 'CORRUPT';
export type ValidationResult = { ok: true; norm: number } | { ok: false; code: ValidationCode; message: string };

export type ValidationContext = {
  paramCount: number;
  /** Largest L2 norm accepted (from normBoundFrom); absent = no bound yet (too few updates seen). */
  normBound?: number;
  /** Where the bound came from, for the refusal's message. */
  boundFrom?: string;
};

export function validateUpdate(u: Update, ctx: ValidationContext): ValidationResult {
  const n = updateLength(u);
  if (n !== ctx.paramCount) return fail('WRONG_LENGTH', `update has ${n} values but the model has ${ctx.paramCount} parameters`);
  if (u.kind === 'sparse') {
    if (u.indices.length !== u.values.length) return fail('BAD_INDICES', `sparse update has ${u.indices.length} indices but ${u.values.length} values`);
    let prev = -1;
    for (let j = 0; j < u.indices.length; j++) {
      const i = u.indices[j];
      if (i <= prev) return fail('BAD_INDICES', `sparse update indices must be strictly ascending (index ${j} is ${i} after ${prev})`);
      if (i >= n) return fail('BAD_INDICES', `sparse update index ${j} is ${i}, out of range for ${n} parameters`);
      prev = i;
    }
  }
  let sq = 0;
  const v = u.values;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!Number.isFinite(x)) return fail('NON_FINITE', `update value ${i} is ${x}; every value must be finite`);
    sq += x * x;
  }
  return checkNorm(Math.sqrt(sq), ctx); // finite: fp32 values squared cannot overflow a float64 sum
}

/**
 * validateUpdate on an encoded update; a frame that does not decode throws the codec's CodecError.
 * The norm comes from the quantised bytes (encodedNorm), so intake never expands a 1M-parameter upload
 * into 4 MB of floats, nor a top-k one into arrays it would throw away.
 */
export function validateEncoded(bytes: Uint8Array, ctx: ValidationContext): ValidationResult {
  const n = readHeader(bytes).length;
  if (n !== ctx.paramCount) return fail('WRONG_LENGTH', `update has ${n} values but the model has ${ctx.paramCount} parameters`);
  return checkNorm(encodedNorm(bytes), ctx);
}

/** validateEncoded that never throws: a payload that does not decode is CORRUPT, so the caller handles
 * every refusal on one path (final task, strike) instead of a thrown error skipping it. */
export function validateEncodedSafe(bytes: Uint8Array, ctx: ValidationContext): ValidationResult {
  try {
    const n = readHeader(bytes).length;
    if (n !== ctx.paramCount) return fail('WRONG_LENGTH', `update has ${n} parameters but the model has ${ctx.paramCount}; encode the full delta of this job's model`);
    return validateEncoded(bytes, ctx);
  } catch (e) {
    if (e instanceof CodecError) return fail('CORRUPT', e.message);
    throw e;
  }
}

function checkNorm(norm: number, ctx: ValidationContext): ValidationResult {
  if (!Number.isFinite(norm)) return fail('NON_FINITE', `update norm is ${norm}; every value must be finite`);
  // an honest tab that ran H optimizer steps never returns exactly nothing: that is a free rider
  if (norm === 0) return fail('EMPTY_UPDATE', 'update is all zeros; run the task\'s inner steps and send their Δ');
  if (ctx.normBound !== undefined && norm > ctx.normBound) {
    return fail('NORM_TOO_LARGE', `update norm ${norm.toPrecision(4)} exceeds this round's bound ${ctx.normBound.toPrecision(4)} (${ctx.boundFrom ?? 'from the other updates'})`);
  }
  return { ok: true, norm };
}

export type NormBoundOptions = { factor?: number; minCount?: number };

/**
 * The norm bound for the next updates of a round: factor × the median norm of the accepted ones (default
 * 3×), or undefined while fewer than minCount (default 3) are known. The median moves only if most
 * updates are large, so a minority of attackers cannot raise the bar for themselves; honest pseudo-
 * gradients of one round have similar norms (same base version, same H, same lr), so 3× leaves room.
 */
export function normBoundFrom(norms: number[], opts: NormBoundOptions = {}): number | undefined {
  return normBoundFromSorted(norms.filter(Number.isFinite).sort((a, b) => a - b), opts);
}

/** normBoundFrom for finite norms already sorted ascending (the relay keeps each round's that way). */
export function normBoundFromSorted(sorted: number[], opts: NormBoundOptions = {}): number | undefined {
  const factor = opts.factor ?? 3, minCount = opts.minCount ?? 3;
  let lo = 0;
  while (lo < sorted.length && !(sorted[lo] > 0)) lo++; // zero norms (free riders, rows without a norm) don't count
  const m = sorted.length - lo;
  if (m < minCount) return undefined;
  const mid = lo + (m >> 1);
  return factor * (m % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2);
}

/**
 * The largest L2 norm an honest task's Δ can have, from the job's settings alone: the bound a job's first
 * updates are held to, before any history exists (a per-round bound needs some updates in the round, and
 * the first ones were never checked: four Sybils of norm 900 each moved a fresh job's loss from 2.4 to 412).
 *
 * AdamW moves each parameter per step by lr·(|m̂/√v̂| + wd·|θ|). By Cauchy–Schwarz over the gradient
 * history, |m_t|/√v_t ≤ (1−β1)/√(1−β2) · √(Σ_{k<t} (β1²/β2)^k), and bias correction multiplies that by
 * √(1−β2^t)/(1−β1^t) (exactly 1 at t = 1). Summed over the task's H steps, that is the most one parameter can
 * move whatever the gradients; √n of them give the L2 bound, plus the decay term lr·wd·(‖θ‖ + that) per step.
 * It is a worst case (every parameter at its extreme, all in one direction): honest Δs are several times
 * smaller, while a Sybil's ±c on every coordinate must stay under it and so moves the model no further than
 * an honest task could. Top-k with error feedback sends a fraction f of the coordinates, each carrying what
 * it gathered over about 1/f tasks: ≈ 1/f the size on f·n coordinates, so the bound grows by 1/√f.
 * 5 % slack covers int8 rounding (at most half a step per value) and float error.
 */
export function priorNormBound(paramCount: number, h: Pick<Hyperparameters, 'steps' | 'adamw' | 'compression'>, paramsNorm = 0): number {
  const { lr, beta1, beta2, weightDecay } = h.adamw;
  const r = (beta1 * beta1) / beta2;
  let perParam = 0, geometric = 0;
  for (let t = 1; t <= h.steps; t++) {
    geometric += r ** (t - 1);
    const bc1 = 1 - beta1 ** t, bc2 = 1 - beta2 ** t;
    perParam += ((1 - beta1) / Math.sqrt(1 - beta2)) * Math.sqrt(geometric) * (Math.sqrt(bc2) / bc1);
  }
  const adam = lr * perParam * Math.sqrt(paramCount);
  let bound = adam + h.steps * lr * weightDecay * (paramsNorm + adam);
  bound /= Math.sqrt(compressionDensity(h.compression));
  return 1.05 * bound;
}

export type NormHistoryOptions = NormBoundOptions & { /** recent accepted norms kept per job (default 64) */ history?: number };

/**
 * A job's norm bound for its next update: factor × the median of its last `history` accepted norms (across
 * rounds, so it holds from a round's first update) once minCount are known, never above the prior (so a
 * majority of Sybils cannot ratchet the median up past what an honest task can produce), and the prior
 * alone before that. The median moves only when most recent updates are large.
 */
export function jobNormBound(recent: number[], prior: number, opts: NormBoundOptions = {}): { bound: number; from: string } {
  const fromHistory = normBoundFrom(recent, opts);
  if (fromHistory !== undefined && fromHistory < prior) {
    return { bound: fromHistory, from: `${opts.factor ?? 3} × the median of the job's last ${recent.length} accepted update norms` };
  }
  return { bound: prior, from: 'the most an honest task can move the parameters: H steps of AdamW at the job\'s learning rate' };
}

/** Inserts x into an ascending array, keeping it sorted (binary search + one splice). */
export function insertSorted(sorted: number[], x: number): void {
  let lo = 0, hi = sorted.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (sorted[mid] <= x) lo = mid + 1; else hi = mid; }
  sorted.splice(lo, 0, x);
}

function fail(code: ValidationCode, message: string): ValidationResult {
  return { ok: false, code, message };
}
