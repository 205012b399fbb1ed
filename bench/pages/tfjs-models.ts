// The benchmark's TensorFlow.js side (WebGPU backend): the same MLP and GPT as shared/reference, written
// with tf ops, trained with tf.train.adam via optimizer.minimize (tf.variableGrads underneath).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { views, type GptConfig, type MlpConfig } from '../../shared/models/config.ts';
import type { AdamWOptions } from '../../shared/reference/adamw.ts';

export type TfTrainer = {
  /** One Adam step; returns the loss tensor (caller disposes it or reads it). */
  step(): tf.Scalar;
  dispose(): void;
};

export async function useTfWebgpu(): Promise<string> {
  const ok = await tf.setBackend('webgpu');
  if (!ok) throw new Error('tfjs could not initialise its webgpu backend');
  await tf.ready();
  return tf.getBackend();
}

function adam(o: AdamWOptions): tf.Optimizer {
  if (o.weightDecay !== 0) throw new Error('the tfjs side runs plain Adam: use weightDecay 0');
  return tf.train.adam(o.lr, o.beta1, o.beta2, o.eps);
}

export function tfMlp(config: MlpConfig, params: Float32Array, x: Float32Array, y: Int32Array, n: number, o: AdamWOptions): TfTrainer {
  const dims = [config.inputs, ...config.hidden, config.classes];
  const v = views(config, params);
  const ws = dims.slice(0, -1).map((d, i) => tf.variable(tf.tensor2d(v[`l${i}.w`].slice(), [d, dims[i + 1]]), true, `l${i}.w`));
  const bs = dims.slice(0, -1).map((_, i) => tf.variable(tf.tensor1d(v[`l${i}.b`].slice()), true, `l${i}.b`));
  const xs = tf.tensor2d(x, [n, config.inputs]);
  const labels = tf.oneHot(tf.tensor1d(y, 'int32'), config.classes);
  const opt = adam(o);
  return {
    step: () => opt.minimize(() => {
      let h: tf.Tensor = xs;
      ws.forEach((w, i) => {
        h = tf.add(tf.matMul(h as tf.Tensor2D, w as tf.Tensor2D), bs[i]);
        if (i < ws.length - 1) h = tf.relu(h);
      });
      return tf.losses.softmaxCrossEntropy(labels, h) as tf.Scalar;
    }, true) as tf.Scalar,
    dispose() { tf.dispose([...ws, ...bs, xs, labels]); opt.dispose(); },
  };
}

export function tfGpt(config: GptConfig, params: Float32Array, tokens: Int32Array, n: number, o: AdamWOptions): TfTrainer {
  const { vocab: V, context: T, layers, heads: H, width: w } = config, hd = w / H;
  const v = views(config, params);
  const P: Record<string, tf.Variable> = {};
  const shape = (name: string): number[] => {
    if (name === 'wte') return [V, w];
    if (name === 'wpe') return [T, w];
    if (name === 'head.w') return [w, V];
    if (name.endsWith('attn.wqkv')) return [w, 3 * w];
    if (name.endsWith('attn.wo')) return [w, w];
    if (name.endsWith('mlp.w1')) return [w, 4 * w];
    if (name.endsWith('mlp.w2')) return [4 * w, w];
    return [v[name].length];
  };
  for (const name of Object.keys(v)) P[name] = tf.variable(tf.tensor(v[name].slice(), shape(name)), true, name);
  const inp = new Int32Array(n * T), tgt = new Int32Array(n * T);
  for (let s = 0; s < n; s++) for (let t = 0; t < T; t++) { inp[s * T + t] = tokens[s * (T + 1) + t]; tgt[s * T + t] = tokens[s * (T + 1) + t + 1]; }
  const inputs = tf.tensor2d(inp, [n, T], 'int32');
  const targets = tf.oneHot(tf.tensor1d(tgt, 'int32'), V);
  const maskData = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = -1e9;
  const mask = tf.tensor2d(maskData, [T, T]);
  const c = Math.sqrt(2 / Math.PI);
  const ln = (x: tf.Tensor, g: string, b: string) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), P[g]), P[b]);
  };
  const gelu = (x: tf.Tensor) => tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(tf.mul(c, tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));
  const dense = (x: tf.Tensor2D, wn: string, bn?: string) => {
    const y = tf.matMul(x, P[wn] as tf.Tensor2D);
    return bn ? tf.add(y, P[bn]) : y;
  };
  const opt = adam(o);
  const forwardLoss = (): tf.Scalar => {
    let x: tf.Tensor2D = tf.reshape(tf.add(tf.gather(P['wte'], inputs), P['wpe']), [n * T, w]);
    for (let l = 0; l < layers; l++) {
      const h = `h${l}`;
      const qkv = dense(ln(x, `${h}.ln1.g`, `${h}.ln1.b`) as tf.Tensor2D, `${h}.attn.wqkv`, `${h}.attn.bqkv`);
      const [q, k, val] = tf.split(tf.reshape(qkv, [n, T, 3 * w]), 3, 2).map((t) => tf.transpose(tf.reshape(t, [n, T, H, hd]), [0, 2, 1, 3]));
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), mask);
      const att = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), val), [0, 2, 1, 3]), [n * T, w]) as tf.Tensor2D;
      x = tf.add(x, dense(att, `${h}.attn.wo`, `${h}.attn.bo`));
      const hid = gelu(dense(ln(x, `${h}.ln2.g`, `${h}.ln2.b`) as tf.Tensor2D, `${h}.mlp.w1`, `${h}.mlp.b1`)) as tf.Tensor2D;
      x = tf.add(x, dense(hid, `${h}.mlp.w2`, `${h}.mlp.b2`));
    }
    const logits = dense(ln(x, 'lnf.g', 'lnf.b') as tf.Tensor2D, 'head.w');
    return tf.losses.softmaxCrossEntropy(targets, logits) as tf.Scalar;
  };
  return {
    step: () => opt.minimize(forwardLoss, true) as tf.Scalar,
    dispose() { tf.dispose([...Object.values(P), inputs, targets, mask]); opt.dispose(); },
  };
}

/** Runs warm-up steps, then times `steps` steps, syncing on the last loss (one readback). */
export async function timeTf(t: TfTrainer, warmup: number, steps: number): Promise<{ msPerStep: number; firstLoss: number; lastLoss: number }> {
  let firstLoss = NaN;
  for (let i = 0; i < warmup; i++) {
    const loss = t.step();
    const val = (await loss.data())[0];
    if (i === 0) firstLoss = val;
    loss.dispose();
  }
  const t0 = performance.now();
  let last: tf.Scalar | undefined;
  for (let i = 0; i < steps; i++) {
    last?.dispose();
    last = t.step();
  }
  const lastLoss = last ? (await last.data())[0] : NaN;
  const ms = (performance.now() - t0) / Math.max(1, steps);
  last?.dispose();
  return { msPerStep: ms, firstLoss, lastLoss };
}

/** ms per C = A·B of two size×size fp32 matrices on tfjs-webgpu, synced by reading C back. */
export async function tfMatmulMs(size: number, reps: number): Promise<number> {
  const a = tf.randomUniform([size, size], -0.5, 0.5, 'float32', 1) as tf.Tensor2D;
  const run = async (k: number) => {
    const t0 = performance.now();
    let c: tf.Tensor | undefined;
    for (let i = 0; i < k; i++) { c?.dispose(); c = tf.matMul(a, a); }
    await c!.data();
    c!.dispose();
    return (performance.now() - t0) / k;
  };
  await run(1); // warm-up: shader compile
  const ms = await run(reps);
  a.dispose();
  return ms;
}
