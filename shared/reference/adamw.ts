// AdamW (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101) on a flat buffer, and global-norm
// clipping. The WebGPU engine's kernels implement exactly these formulas; tests compare the two.
export type AdamWOptions = { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };
export type AdamWState = { m: Float32Array; v: Float32Array; t: number };

export const adamwDefaults: AdamWOptions = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

export function adamwState(n: number): AdamWState {
  return { m: new Float32Array(n), v: new Float32Array(n), t: 0 };
}

export function adamwStep(params: Float32Array, grad: Float32Array, s: AdamWState, o: AdamWOptions): void {
  s.t += 1;
  const bc1 = 1 - o.beta1 ** s.t, bc2 = 1 - o.beta2 ** s.t;
  for (let i = 0; i < params.length; i++) {
    const g = grad[i];
    const m = (s.m[i] = o.beta1 * s.m[i] + (1 - o.beta1) * g);
    const v = (s.v[i] = o.beta2 * s.v[i] + (1 - o.beta2) * g * g);
    params[i] -= o.lr * ((m / bc1) / (Math.sqrt(v / bc2) + o.eps) + o.weightDecay * params[i]);
  }
}

/** Scales grad in place so its L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(grad: Float32Array, maxNorm: number): number {
  let sq = 0;
  for (let i = 0; i < grad.length; i++) sq += grad[i] * grad[i];
  const norm = Math.sqrt(sq);
  if (norm > maxNorm) {
    const k = maxNorm / (norm + 1e-6);
    for (let i = 0; i < grad.length; i++) grad[i] *= k;
  }
  return norm;
}
