// CPU reference of the GPT (decoder-only transformer, GPT-2 layout of shared/models/config.ts):
// forward, explicit backward, logits. float32 parameters, float64 activations and accumulation.
// The WebGPU engine's tests and the ONNX export check compare against this file.
import { paramLayout, type GptConfig } from '../models/config.ts';

const lnEps = 1e-5;
const geluC = Math.sqrt(2 / Math.PI);

type Block = {
  ln1g: Float32Array; ln1b: Float32Array; wqkv: Float32Array; bqkv: Float32Array; wo: Float32Array; bo: Float32Array;
  ln2g: Float32Array; ln2b: Float32Array; w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array;
};
type Weights = { wte: Float32Array; wpe: Float32Array; blocks: Block[]; lnfg: Float32Array; lnfb: Float32Array; head: Float32Array };
/** Gradient views into one float64 flat buffer, same names as Weights. */
type Grads = { [K in keyof Weights]: K extends 'blocks' ? { [B in keyof Block]: Float64Array }[] : Float64Array };

/** Named views of a flat buffer in the paramLayout order. */
function named<T extends Float32Array | Float64Array>(config: GptConfig, flat: T): Record<string, T> {
  const out: Record<string, T> = {};
  for (const p of paramLayout(config)) out[p.name] = flat.subarray(p.offset, p.offset + p.size) as T;
  return out;
}

function structured<T extends Float32Array | Float64Array>(config: GptConfig, flat: T) {
  const v = named(config, flat);
  const blocks = Array.from({ length: config.layers }, (_, l) => {
    const b = (k: string) => v[`h${l}.${k}`];
    return {
      ln1g: b('ln1.g'), ln1b: b('ln1.b'), wqkv: b('attn.wqkv'), bqkv: b('attn.bqkv'), wo: b('attn.wo'), bo: b('attn.bo'),
      ln2g: b('ln2.g'), ln2b: b('ln2.b'), w1: b('mlp.w1'), b1: b('mlp.b1'), w2: b('mlp.w2'), b2: b('mlp.b2'),
    };
  });
  return { wte: v['wte'], wpe: v['wpe'], blocks, lnfg: v['lnf.g'], lnfb: v['lnf.b'], head: v['head.w'] };
}

// ---- primitives (rows × features, row-major) -------------------------------------------------

/** y[R, N] = x[R, K] · W[K, N] (+ b) */
function affine(x: Float64Array, rows: number, k: number, w: Float32Array, n: number, b?: Float32Array): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const yo = r * n;
    if (b) for (let j = 0; j < n; j++) y[yo + j] = b[j];
    for (let i = 0; i < k; i++) {
      const xi = x[r * k + i];
      if (xi === 0) continue;
      const wo = i * n;
      for (let j = 0; j < n; j++) y[yo + j] += xi * w[wo + j];
    }
  }
  return y;
}

/** Backward of affine: gw += xᵀ·dy, gb += Σ dy; returns dx = dy·Wᵀ. */
function affineBack(
  x: Float64Array, dy: Float64Array, rows: number, k: number, w: Float32Array, n: number, gw: Float64Array, gb?: Float64Array,
): Float64Array {
  const dx = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const dyo = r * n;
    if (gb) for (let j = 0; j < n; j++) gb[j] += dy[dyo + j];
    for (let i = 0; i < k; i++) {
      const xi = x[r * k + i], wo = i * n;
      let s = 0;
      for (let j = 0; j < n; j++) {
        const d = dy[dyo + j];
        gw[wo + j] += xi * d;
        s += w[wo + j] * d;
      }
      dx[r * k + i] = s;
    }
  }
  return dx;
}

type LnCache = { xhat: Float64Array; rstd: Float64Array };

/** LayerNorm over the last dim (biased variance, eps 1e-5). */
function layerNorm(x: Float64Array, rows: number, w: number, g: Float32Array, b: Float32Array): { y: Float64Array } & LnCache {
  const y = new Float64Array(rows * w), xhat = new Float64Array(rows * w), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * w;
    let mean = 0;
    for (let i = 0; i < w; i++) mean += x[o + i];
    mean /= w;
    let v = 0;
    for (let i = 0; i < w; i++) v += (x[o + i] - mean) ** 2;
    const rs = 1 / Math.sqrt(v / w + lnEps);
    rstd[r] = rs;
    for (let i = 0; i < w; i++) {
      const h = (x[o + i] - mean) * rs;
      xhat[o + i] = h;
      y[o + i] = h * g[i] + b[i];
    }
  }
  return { y, xhat, rstd };
}

function layerNormBack(dy: Float64Array, c: LnCache, rows: number, w: number, g: Float32Array, gg: Float64Array, gb: Float64Array): Float64Array {
  const dx = new Float64Array(rows * w);
  for (let r = 0; r < rows; r++) {
    const o = r * w;
    let m1 = 0, m2 = 0;
    for (let i = 0; i < w; i++) {
      const d = dy[o + i], h = c.xhat[o + i];
      gg[i] += d * h;
      gb[i] += d;
      const dh = d * g[i];
      m1 += dh;
      m2 += dh * h;
    }
    m1 /= w; m2 /= w;
    for (let i = 0; i < w; i++) dx[o + i] = c.rstd[r] * (dy[o + i] * g[i] - m1 - c.xhat[o + i] * m2);
  }
  return dx;
}

function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(geluC * (x + 0.044715 * x * x * x)));
}

function geluGrad(x: number): number {
  const t = Math.tanh(geluC * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * geluC * (1 + 3 * 0.044715 * x * x);
}

/** Causal multi-head attention on qkv [n·T, 3w] (q | k | v, heads contiguous); keeps the softmax p [n, heads, T, T]. */
function attention(qkv: Float64Array, n: number, T: number, w: number, heads: number): { out: Float64Array; p: Float64Array } {
  const hd = w / heads, scale = 1 / Math.sqrt(hd), w3 = 3 * w;
  const out = new Float64Array(n * T * w), p = new Float64Array(n * heads * T * T);
  for (let s = 0; s < n; s++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < T; i++) {
        const qo = (s * T + i) * w3 + h * hd, po = ((s * heads + h) * T + i) * T;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const ko = (s * T + j) * w3 + w + h * hd;
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += qkv[qo + d] * qkv[ko + d];
          p[po + j] = dot * scale;
          if (p[po + j] > max) max = p[po + j];
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += (p[po + j] = Math.exp(p[po + j] - max));
        const oo = (s * T + i) * w + h * hd;
        for (let j = 0; j <= i; j++) {
          const pj = (p[po + j] /= sum), vo = (s * T + j) * w3 + 2 * w + h * hd;
          for (let d = 0; d < hd; d++) out[oo + d] += pj * qkv[vo + d];
        }
      }
    }
  }
  return { out, p };
}

function attentionBack(dout: Float64Array, qkv: Float64Array, p: Float64Array, n: number, T: number, w: number, heads: number): Float64Array {
  const hd = w / heads, scale = 1 / Math.sqrt(hd), w3 = 3 * w;
  const dqkv = new Float64Array(n * T * w3), dp = new Float64Array(T);
  for (let s = 0; s < n; s++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < T; i++) {
        const po = ((s * heads + h) * T + i) * T, oo = (s * T + i) * w + h * hd, qo = (s * T + i) * w3 + h * hd;
        // dp_j = dout_i·v_j, dv_j += p_ij·dout_i; then softmax backward ds_j = p_j (dp_j − Σ p·dp).
        let pdp = 0;
        for (let j = 0; j <= i; j++) {
          const vo = (s * T + j) * w3 + 2 * w + h * hd;
          let dot = 0;
          for (let d = 0; d < hd; d++) {
            dot += dout[oo + d] * qkv[vo + d];
            dqkv[vo + d] += p[po + j] * dout[oo + d];
          }
          dp[j] = dot;
          pdp += p[po + j] * dot;
        }
        for (let j = 0; j <= i; j++) {
          const ds = p[po + j] * (dp[j] - pdp) * scale, ko = (s * T + j) * w3 + w + h * hd;
          for (let d = 0; d < hd; d++) {
            dqkv[qo + d] += ds * qkv[ko + d];
            dqkv[ko + d] += ds * qkv[qo + d];
          }
        }
      }
    }
  }
  return dqkv;
}

// ---- the model ------------------------------------------------------------------------------

type BlockCache = {
  xIn: Float64Array; ln1: { y: Float64Array } & LnCache; qkv: Float64Array; att: { out: Float64Array; p: Float64Array };
  x1: Float64Array; ln2: { y: Float64Array } & LnCache; hpre: Float64Array; hact: Float64Array;
};

function checkConfig(config: GptConfig): void {
  for (const k of ['vocab', 'context', 'layers', 'heads', 'width'] as const) {
    if (!Number.isInteger(config[k]) || config[k] < 1) throw new Error(`gpt config: ${k} must be a positive integer, got ${config[k]}`);
  }
  if (config.width % config.heads !== 0) {
    throw new Error(`gpt config: width (${config.width}) must be a multiple of heads (${config.heads})`);
  }
}

function checkParams(config: GptConfig, params: Float32Array): Weights {
  const expected = paramLayout(config).reduce((a, p) => a + p.size, 0);
  if (params.length !== expected) throw new Error(`params: got ${params.length} values, the gpt config needs ${expected}`);
  return structured(config, params);
}

/**
 * Forward over inputs [n, T]; returns logits [n·T, vocab] and, when `keep`, what backward needs. Without
 * it each layer's activations (and its n·heads·T² softmax) are dropped once the next layer has them, so
 * an evaluation at context 1024 holds one layer at a time, not all of them.
 */
function forward(config: GptConfig, W: Weights, inputs: ArrayLike<number>, n: number, T: number, keep = true) {
  const { vocab, width: w, heads } = config, R = n * T;
  let x = new Float64Array(R * w);
  for (let s = 0; s < n; s++) {
    for (let t = 0; t < T; t++) {
      const tok = inputs[s * T + t], r = s * T + t;
      for (let i = 0; i < w; i++) x[r * w + i] = W.wte[tok * w + i] + W.wpe[t * w + i];
    }
  }
  const caches: BlockCache[] = [];
  for (const b of W.blocks) {
    const ln1 = layerNorm(x, R, w, b.ln1g, b.ln1b);
    const qkv = affine(ln1.y, R, w, b.wqkv, 3 * w, b.bqkv);
    const att = attention(qkv, n, T, w, heads);
    const proj = affine(att.out, R, w, b.wo, w, b.bo);
    const x1 = new Float64Array(R * w);
    for (let i = 0; i < x1.length; i++) x1[i] = x[i] + proj[i];
    const ln2 = layerNorm(x1, R, w, b.ln2g, b.ln2b);
    const hpre = affine(ln2.y, R, w, b.w1, 4 * w, b.b1);
    const hact = hpre.map(gelu);
    const m = affine(hact, R, 4 * w, b.w2, w, b.b2);
    const x2 = new Float64Array(R * w);
    for (let i = 0; i < x2.length; i++) x2[i] = x1[i] + m[i];
    if (keep) caches.push({ xIn: x, ln1, qkv, att, x1, ln2, hpre, hact });
    x = x2;
  }
  const lnf = layerNorm(x, R, w, W.lnfg, W.lnfb);
  const logits = affine(lnf.y, R, w, W.head, vocab);
  return { logits, caches, lnf };
}

function checkTokens(config: GptConfig, tokens: Int32Array, n: number, perSeq: number, what: string): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`n must be a positive integer (number of sequences), got ${n}`);
  if (tokens.length !== n * perSeq) {
    throw new Error(`tokens: got ${tokens.length} ids, expected n·${what} = ${n}·${perSeq} = ${n * perSeq}`);
  }
  for (let i = 0; i < tokens.length; i++) {
    if (!(tokens[i] >= 0 && tokens[i] < config.vocab)) throw new Error(`tokens[${i}] = ${tokens[i]} is outside the vocab [0, ${config.vocab})`);
  }
}

/**
 * Logits for n sequences of seqLen ids each (1 ≤ seqLen ≤ context), positions 0..seqLen−1:
 * a Float32Array [n, seqLen, vocab]. Causal, so a prefix gives the same logits as the full sequence.
 */
export function gptLogits(config: GptConfig, params: Float32Array, tokens: Int32Array, n: number, seqLen = config.context): Float32Array {
  checkConfig(config);
  if (!Number.isInteger(seqLen) || seqLen < 1 || seqLen > config.context) {
    throw new Error(`seqLen must be an integer in [1, context=${config.context}], got ${seqLen}`);
  }
  checkTokens(config, tokens, n, seqLen, 'seqLen');
  const W = checkParams(config, params);
  return Float32Array.from(forward(config, W, tokens, n, seqLen, false).logits);
}

/**
 * Mean next-token cross-entropy (the loss gptLossAndGrad reports) and next-token accuracy over n sequences
 * of length+1 ids (length ≤ context; a shorter window keeps an evaluation within a budget), forward only:
 * held-out evaluation and the relay's usefulness score.
 */
export function gptEvaluate(config: GptConfig, params: Float32Array, tokens: Int32Array, n: number, length = config.context): { loss: number; accuracy: number } {
  const T = length, V = config.vocab;
  checkTokens(config, tokens, n, T + 1, '(length+1)');
  const inputs = new Int32Array(n * T);
  for (let s = 0; s < n; s++) inputs.set(tokens.subarray(s * (T + 1), s * (T + 1) + T), s * T);
  const logits = gptLogits(config, params, inputs, n, T);
  let loss = 0, right = 0;
  for (let s = 0; s < n; s++) {
    for (let t = 0; t < T; t++) {
      const o = (s * T + t) * V, target = tokens[s * (T + 1) + t + 1];
      let max = -Infinity, arg = 0;
      for (let c = 0; c < V; c++) if (logits[o + c] > max) { max = logits[o + c]; arg = c; }
      let sum = 0;
      for (let c = 0; c < V; c++) sum += Math.exp(logits[o + c] - max);
      loss += Math.log(sum) + max - logits[o + target];
      if (arg === target) right++;
    }
  }
  return { loss: loss / (n * T), accuracy: right / (n * T) };
}

/**
 * Mean next-token cross-entropy over n sequences of context+1 ids (inputs = first context ids,
 * targets = the next ones), and its full flat gradient in the paramLayout order.
 */
export function gptLossAndGrad(config: GptConfig, params: Float32Array, tokens: Int32Array, n: number): { loss: number; grad: Float32Array } {
  checkConfig(config);
  checkTokens(config, tokens, n, config.context + 1, '(context+1)');
  const W = checkParams(config, params);
  const { vocab, context: T, width: w, heads } = config, R = n * T;
  const inputs = new Int32Array(R), targets = new Int32Array(R);
  for (let s = 0; s < n; s++) {
    for (let t = 0; t < T; t++) {
      inputs[s * T + t] = tokens[s * (T + 1) + t];
      targets[s * T + t] = tokens[s * (T + 1) + t + 1];
    }
  }
  const { logits, caches, lnf } = forward(config, W, inputs, n, T);

  // Softmax cross-entropy, mean over all R positions; dlogits = (softmax − onehot) / R.
  let loss = 0;
  const dlogits = new Float64Array(R * vocab);
  for (let r = 0; r < R; r++) {
    const o = r * vocab;
    let max = -Infinity;
    for (let c = 0; c < vocab; c++) if (logits[o + c] > max) max = logits[o + c];
    let sum = 0;
    for (let c = 0; c < vocab; c++) sum += Math.exp(logits[o + c] - max);
    loss += Math.log(sum) + max - logits[o + targets[r]];
    for (let c = 0; c < vocab; c++) dlogits[o + c] = Math.exp(logits[o + c] - max) / sum / R;
    dlogits[o + targets[r]] -= 1 / R;
  }

  const flat = new Float64Array(params.length);
  const G = structured(config, flat) as unknown as Grads;
  let dx = affineBack(lnf.y, dlogits, R, w, W.head, vocab, G.head);
  dx = layerNormBack(dx, lnf, R, w, W.lnfg, G.lnfg, G.lnfb);
  for (let l = config.layers - 1; l >= 0; l--) {
    const b = W.blocks[l], g = G.blocks[l], c = caches[l];
    // x2 = x1 + MLP(LN2(x1))
    const dhact = affineBack(c.hact, dx, R, 4 * w, b.w2, w, g.w2, g.b2);
    for (let i = 0; i < dhact.length; i++) dhact[i] *= geluGrad(c.hpre[i]);
    const dln2 = affineBack(c.ln2.y, dhact, R, w, b.w1, 4 * w, g.w1, g.b1);
    const dx1 = layerNormBack(dln2, c.ln2, R, w, b.ln2g, g.ln2g, g.ln2b);
    for (let i = 0; i < dx1.length; i++) dx1[i] += dx[i];
    // x1 = x + attn(LN1(x))
    const datt = affineBack(c.att.out, dx1, R, w, b.wo, w, g.wo, g.bo);
    const dqkv = attentionBack(datt, c.qkv, c.att.p, n, T, w, heads);
    const dln1 = affineBack(c.ln1.y, dqkv, R, w, b.wqkv, 3 * w, g.wqkv, g.bqkv);
    const dxIn = layerNormBack(dln1, c.ln1, R, w, b.ln1g, g.ln1g, g.ln1b);
    for (let i = 0; i < dxIn.length; i++) dxIn[i] += dx1[i];
    dx = dxIn;
  }
  // Embeddings: scatter-add into the token rows and the position rows.
  for (let r = 0; r < R; r++) {
    const tok = inputs[r], t = r % T;
    for (let i = 0; i < w; i++) {
      G.wte[tok * w + i] += dx[r * w + i];
      G.wpe[t * w + i] += dx[r * w + i];
    }
  }
  return { loss: loss / R, grad: Float32Array.from(flat) };
}
