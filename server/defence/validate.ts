// Checks a decoded update before the relay stores it: right size, finite values, well-formed sparse
// indices, not empty, and an L2 norm within a bound taken from the round's other updates. Pure: the
// relay calls it and turns a refusal into a 4xx with the code and message given here.
import { encodedNorm, readHeader, updateLength, type Update } from '../../shared/codec/index.ts';

export type ValidationCode = 'WRONG_LENGTH' | 'NON_FINITE' | 'BAD_INDICES' | 'EMPTY_UPDATE' | 'NORM_TOO_LARGE';
export type ValidationResult = { ok: true; norm: number } | { ok: false; code: ValidationCode; message: string };

export type ValidationContext = {
  paramCount: number;
  /** Largest L2 norm accepted (from normBoundFrom); absent = no bound yet (too few updates seen). */
  normBound?: number;
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

function checkNorm(norm: number, ctx: ValidationContext): ValidationResult {
  // an honest tab that ran H optimizer steps never returns exactly nothing: that is a free rider
  if (norm === 0) return fail('EMPTY_UPDATE', 'update is all zeros; run the task\'s inner steps and send their Δ');
  if (ctx.normBound !== undefined && norm > ctx.normBound) {
    return fail('NORM_TOO_LARGE', `update norm ${norm.toPrecision(4)} exceeds this round's bound ${ctx.normBound.toPrecision(4)} (from the other updates)`);
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

/** Inserts x into an ascending array, keeping it sorted (binary search + one splice). */
export function insertSorted(sorted: number[], x: number): void {
  let lo = 0, hi = sorted.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (sorted[mid] <= x) lo = mid + 1; else hi = mid; }
  sorted.splice(lo, 0, x);
}

function fail(code: ValidationCode, message: string): ValidationResult {
  return { ok: false, code, message };
}
