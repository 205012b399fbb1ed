// A version published as a compressed delta from the one before. The relay DEFINES version v + 1 as
// θ_v + decode(delta), not as its outer step's exact result: what compression dropped stays in the
// relay's own error-feedback residual and goes out with a later delta (as in the volunteers' uploads).
// So a volunteer holding θ_v that applies the deltas up to v + n holds the relay's θ_{v+n} bit for bit,
// checked against the version hash. Applying is plain fp32 arithmetic in JavaScript: a product or sum of
// two fp32 values computed in float64 and stored into a Float32Array is the correctly rounded fp32 result
// (float64 has more than 2·24 + 2 bits), so every browser and Node get the same bits.
import { decodeUpdate, encodeUpdate, encodeUpdateFedBack, toDense, type Compression } from './index.ts';
import { publishInt8InPlace } from './int8.ts';

/** How a job's versions are published: int8 blocks (about 4× fewer bytes than fp32) unless the job
 * compresses nothing. Top-k jobs get int8 too: a version that moved only 1 % of its coordinates would
 * hold every volunteer back by what error feedback has not sent yet, round after round. A job may choose
 * otherwise (hyperparameters.versionCompression): top-k with the relay's error feedback sends each version
 * in about as many bytes as one update, as SparseLoCo does for its pseudo-gradients (arXiv 2508.15706),
 * at the cost of volunteers training on a version that lags the outer step by what is not sent yet. */
export const deltaCompression = (uploads: Compression, chosen?: Compression): Compression =>
  chosen ?? (uploads.kind === 'fp32' ? uploads : { kind: 'int8', block: uploads.kind === 'int8' ? uploads.block : 256 });

/** θ + decoded delta, as a new array (the base is not changed: it may be a cached copy). */
export function applyVersionDelta(base: Float32Array, delta: Uint8Array): Float32Array {
  const d = toDense(decodeUpdate(delta, base.length));
  const out = new Float32Array(base.length);
  for (let i = 0; i < out.length; i++) out[i] = base[i] + d[i];
  return out;
}

/**
 * The relay's side: publishes `target` (the outer step's result) as a delta from `base`, carrying what
 * compression drops in `residual` (updated in place; zeros to start). Returns the delta's bytes and the
 * version's parameters as every volunteer will rebuild them.
 */
export function publishVersion(base: Float32Array, target: Float32Array, residual: Float32Array, c: Compression): { delta: Uint8Array; params: Float32Array } {
  const step = new Float32Array(base.length);
  for (let i = 0; i < step.length; i++) step[i] = target[i] - base[i];
  const delta = encodeUpdate(step, c, residual);
  // the published version misses target by what compression dropped, now in residual (the last fp32
  // rounding of base + decoded is below any quantisation step and is not carried)
  return { delta, params: applyVersionDelta(base, delta) };
}

/** publishVersion for a caller that owns both arrays and needs neither afterwards (the relay's round, at
 * 124M parameters five model-sized arrays fewer): `target` becomes the step, `base` becomes the published
 * version (returned as params). The same operations in the same order, so the same bits. */
export function publishVersionInPlace(base: Float32Array, target: Float32Array, residual: Float32Array, c: Compression): { delta: Uint8Array; params: Float32Array } {
  if (c.kind === 'int8' && residual.length === base.length && target.length === base.length) return { delta: publishInt8InPlace(base, target, residual, c.block), params: base };
  // the step plus the residual, in `target` (the fp32 sums encodeUpdate would make in a copy of its own)
  for (let i = 0; i < target.length; i++) target[i] = target[i] - base[i];
  for (let i = 0; i < target.length; i++) target[i] = target[i] + residual[i];
  const delta = encodeUpdateFedBack(target, c, residual);
  // decoded into `target` (needed no more) where the codec can: no new model-sized array
  const u = decodeUpdate(delta, base.length, target);
  const d = u.kind === 'dense' ? u.values : toDense(u);
  for (let i = 0; i < base.length; i++) base[i] = base[i] + d[i];
  return { delta, params: base };
}
