// CPU reference of the MLP: forward, backward (softmax cross-entropy) and evaluation.
// float32 storage, float64 accumulation. Used by tests, simulated volunteers and relay-side evaluation.
import { paramLayout, type MlpConfig } from '../models/config.ts';

/** x: [n, inputs] row-major; y: class labels. */
export type LabelledBatch = { x: Float32Array; y: ArrayLike<number>; n: number };

type Layer = { w: Float32Array; b: Float32Array; fanIn: number; fanOut: number };

function layers(config: MlpConfig, flat: Float32Array): Layer[] {
  const specs = paramLayout(config);
  const out: Layer[] = [];
  for (let i = 0; i < specs.length; i += 2) {
    const w = specs[i], b = specs[i + 1];
    out.push({
      w: flat.subarray(w.offset, w.offset + w.size),
      b: flat.subarray(b.offset, b.offset + b.size),
      fanIn: w.shape[0],
      fanOut: w.shape[1],
    });
  }
  return out;
}

/** out[n, fanOut] = x[n, fanIn] · W + b */
function affine(x: Float32Array, n: number, l: Layer): Float32Array {
  const out = new Float32Array(n * l.fanOut);
  const acc = new Float64Array(l.fanOut);
  for (let r = 0; r < n; r++) {
    acc.set(l.b);
    for (let i = 0; i < l.fanIn; i++) {
      const xi = x[r * l.fanIn + i];
      if (xi === 0) continue;
      const row = i * l.fanOut;
      for (let j = 0; j < l.fanOut; j++) acc[j] += xi * l.w[row + j];
    }
    out.set(acc, r * l.fanOut);
  }
  return out;
}

/** Activations of every layer (post-ReLU for hidden layers, raw logits last). */
function forward(config: MlpConfig, params: Float32Array, x: Float32Array, n: number): Float32Array[] {
  const acts = [x];
  const ls = layers(config, params);
  ls.forEach((l, k) => {
    const z = affine(acts[acts.length - 1], n, l);
    if (k < ls.length - 1) for (let i = 0; i < z.length; i++) if (z[i] < 0) z[i] = 0;
    acts.push(z);
  });
  return acts;
}

export function mlpLogits(config: MlpConfig, params: Float32Array, x: Float32Array, n: number): Float32Array {
  const acts = forward(config, params, x, n);
  return acts[acts.length - 1];
}

/** Mean softmax cross-entropy; fills dlogits (already divided by n) when given. */
export function softmaxCrossEntropy(
  logits: Float32Array, y: ArrayLike<number>, n: number, classes: number, dlogits?: Float32Array,
): { loss: number; correct: number } {
  let loss = 0, correct = 0;
  for (let r = 0; r < n; r++) {
    const o = r * classes;
    let max = -Infinity, arg = 0;
    for (let c = 0; c < classes; c++) if (logits[o + c] > max) { max = logits[o + c]; arg = c; }
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[o + c] - max);
    const label = y[r];
    loss += Math.log(sum) + max - logits[o + label];
    if (arg === label) correct++;
    if (dlogits) {
      for (let c = 0; c < classes; c++) {
        dlogits[o + c] = (Math.exp(logits[o + c] - max) / sum - (c === label ? 1 : 0)) / n;
      }
    }
  }
  return { loss: loss / n, correct };
}

/** Loss and the full flat gradient (same layout as params). */
export function mlpLossAndGrad(config: MlpConfig, params: Float32Array, batch: LabelledBatch): { loss: number; grad: Float32Array } {
  const { x, y, n } = batch;
  const acts = forward(config, params, x, n);
  const ls = layers(config, params);
  const grad = new Float32Array(params.length);
  const gls = layers(config, grad);
  let d = new Float32Array(n * config.classes);
  const { loss } = softmaxCrossEntropy(acts[acts.length - 1], y, n, config.classes, d);
  for (let k = ls.length - 1; k >= 0; k--) {
    const l = ls[k], g = gls[k], a = acts[k];
    // dW = aᵀ·d, db = Σ d, da = d·Wᵀ (masked by the ReLU that produced a)
    const gw = new Float64Array(l.fanIn * l.fanOut);
    const gb = new Float64Array(l.fanOut);
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < l.fanOut; j++) gb[j] += d[r * l.fanOut + j];
      for (let i = 0; i < l.fanIn; i++) {
        const ai = a[r * l.fanIn + i];
        if (ai === 0) continue;
        const row = i * l.fanOut;
        for (let j = 0; j < l.fanOut; j++) gw[row + j] += ai * d[r * l.fanOut + j];
      }
    }
    g.w.set(gw);
    g.b.set(gb);
    if (k === 0) break;
    const da = new Float32Array(n * l.fanIn);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < l.fanIn; i++) {
        if (a[r * l.fanIn + i] <= 0) continue;
        let s = 0;
        const row = i * l.fanOut;
        for (let j = 0; j < l.fanOut; j++) s += l.w[row + j] * d[r * l.fanOut + j];
        da[r * l.fanIn + i] = s;
      }
    }
    d = da;
  }
  return { loss, grad };
}

/** Held-out loss and accuracy, in chunks so memory stays small. */
export function mlpEvaluate(config: MlpConfig, params: Float32Array, data: LabelledBatch, chunk = 512): { loss: number; accuracy: number } {
  let loss = 0, correct = 0;
  for (let s = 0; s < data.n; s += chunk) {
    const n = Math.min(chunk, data.n - s);
    const x = data.x.subarray(s * config.inputs, (s + n) * config.inputs);
    const y = Array.from({ length: n }, (_, i) => data.y[s + i]);
    const r = softmaxCrossEntropy(mlpLogits(config, params, x, n), y, n, config.classes);
    loss += r.loss * n;
    correct += r.correct;
  }
  return { loss: loss / data.n, accuracy: correct / data.n };
}
