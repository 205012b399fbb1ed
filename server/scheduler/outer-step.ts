// DiLoCo outer step: SGD with Nesterov momentum on the aggregated pseudo-gradient Δ
// (Douillard et al., arXiv 2311.08105, Alg. 1; Nesterov in PyTorch's SGD form):
//   m ← μ·m + Δ;   θ ← θ − lr·(Δ + μ·m)
/** Returns new θ and m; the inputs are left untouched (they are the previous checkpoint). */
export function outerStep(params: Float32Array, momentum: Float32Array, delta: Float32Array, lr: number, mu: number): { params: Float32Array; momentum: Float32Array } {
  const n = params.length;
  const p = new Float32Array(n), m = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const mi = mu * momentum[i] + delta[i];
    m[i] = mi;
    p[i] = params[i] - lr * (delta[i] + mu * mi);
  }
  return { params: p, momentum: m };
}

/** Staleness down-weighting: an update s versions old counts 1/(1+s) as much as a fresh one. */
export const stalenessWeight = (staleness: number): number => 1 / (1 + staleness);

/** The same step in place, for the round's own copies (a model-sized array less at 124M): `momentum`
 * becomes m, `delta` becomes the new θ (returned); `params` is left as it was (the base to publish from). */
export function outerStepInPlace(params: Float32Array, momentum: Float32Array, delta: Float32Array, lr: number, mu: number): Float32Array {
  const n = params.length;
  for (let i = 0; i < n; i++) {
    const d = delta[i];
    const mi = mu * momentum[i] + d;
    momentum[i] = mi;
    delta[i] = params[i] - lr * (d + mu * mi);
  }
  return delta;
}
