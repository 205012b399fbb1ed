// The decoder-only GPT (pre-norm blocks, fused qkv, causal attention, GELU MLP, untied head) as explicit
// forward and backward dispatches. Every activation backward needs has its own buffer; the backward
// pass reuses one gradient stream `dx` through the residual blocks (LN backward adds the skip path).
// Attention keeps only a log-sum-exp per row (flash-attention.ts); the head runs over chunks of rows
// (logits, loss, dW summed, dx), so neither T×T scores nor batch × context × vocabulary logits exist.
// The token embedding and the head may each be held in row ranges across buffers (param-segments.ts):
// the gather and scatter run per range, and the head [width, vocab] per range of its width rows: the
// logits sum one partial product per range (accumulate epilogue), dW and dx are written range by range,
// with strides reaching the matching columns of the normed activations and of dx.
// memory-plan.ts lists these same buffers.
import type { GptConfig } from '../../models/config.ts';
import type { Dispatch, Gpu } from '../device.ts';
import { flashAttention, flashAttentionBack, rowStatFloats } from '../kernels/flash-attention.ts';
import { embed, embedBack, tokenCsr } from '../kernels/embedding.ts';
import { layerNorm, layerNormBack } from '../kernels/layernorm.ts';
import { at, Epi, matmul } from '../kernels/matmul.ts';
import { colsum } from '../kernels/reduce.ts';
import { softmaxCe } from '../kernels/softmax-ce.ts';
import { logitChunkRows } from '../memory-plan.ts';
import type { Plan, PlanBuffers } from './plan.ts';

export async function buildGptPlan(gpu: Gpu, config: GptConfig, n: number, b: PlanBuffers): Promise<Plan> {
  const { vocab: V, context: T, layers: L, heads: H, width: w } = config;
  if (w % H !== 0) throw new Error(`gpt: width ${w} must be a multiple of heads ${H}`);
  const R = n * T;
  const dims = { batch: n, heads: H, context: T, width: w };
  const stats = rowStatFloats(dims);
  const chunk = logitChunkRows(R, V, b.logitChunkRows);
  const buf = (floats: number, label: string) => gpu.buffer(floats, `gpt.${label}`);
  // ints: input ids [R] | targets [R] | CSR start [V+1] | CSR positions [R]
  const ints = buf(3 * R + V + 1, 'ints');
  const oTargets = R, oStart = 2 * R, oPos = 2 * R + V + 1;

  const xs = [buf(R * w, 'x0')];
  const blk = Array.from({ length: L }, (_, l) => ({
    ln1: buf(R * w, `h${l}.ln1`), s1: buf(2 * R, `h${l}.s1`), qkv: buf(R * 3 * w, `h${l}.qkv`), lse: buf(stats, `h${l}.lse`),
    att: buf(R * w, `h${l}.att`), xa: buf(R * w, `h${l}.xa`), ln2: buf(R * w, `h${l}.ln2`), s2: buf(2 * R, `h${l}.s2`),
    hpre: buf(R * 4 * w, `h${l}.hpre`), h: buf(R * 4 * w, `h${l}.h`),
  }));
  for (let l = 0; l < L; l++) xs.push(buf(R * w, `x${l + 1}`));
  const lnf = buf(R * w, 'lnf'), sf = buf(2 * R, 'sf'), logits = buf(chunk * V, 'logits');
  const th = b.theta, g = b.grad;

  const forward: Dispatch[] = await embed(gpu, { ids: at(ints), wte: th.rows('wte'), wpe: th.ref('wpe'), x: xs[0], rows: R, width: w, context: T });
  for (let l = 0; l < L; l++) {
    const k = blk[l], p = (s: string) => th.ref(`h${l}.${s}`);
    forward.push(
      await layerNorm(gpu, { x: xs[l], g: p('ln1.g'), b: p('ln1.b'), y: k.ln1, stats: k.s1, rows: R, width: w }, `h${l}.ln1`),
      await matmul(gpu, { a: at(k.ln1), b: p('attn.wqkv'), c: at(k.qkv), M: R, N: 3 * w, K: w, bias: p('attn.bqkv') }, `h${l}.qkv`),
      await flashAttention(gpu, { ...dims, qkv: k.qkv, lse: k.lse, out: k.att }, `h${l}.attn`),
      await matmul(gpu, { a: at(k.att), b: p('attn.wo'), c: at(k.xa), M: R, N: w, K: w, bias: p('attn.bo'), epi: Epi.residual, aux: at(xs[l]) }, `h${l}.proj`),
      await layerNorm(gpu, { x: k.xa, g: p('ln2.g'), b: p('ln2.b'), y: k.ln2, stats: k.s2, rows: R, width: w }, `h${l}.ln2`),
      await matmul(gpu, { a: at(k.ln2), b: p('mlp.w1'), c: at(k.h), M: R, N: 4 * w, K: w, bias: p('mlp.b1'), epi: Epi.gelu, aux: at(k.hpre) }, `h${l}.fc`),
      await matmul(gpu, { a: at(k.h), b: p('mlp.w2'), c: at(xs[l + 1]), M: R, N: w, K: 4 * w, bias: p('mlp.b2'), epi: Epi.residual, aux: at(k.xa) }, `h${l}.fc2`),
    );
  }
  forward.push(await layerNorm(gpu, { x: xs[L], g: th.ref('lnf.g'), b: th.ref('lnf.b'), y: lnf, stats: sf, rows: R, width: w }, 'lnf'));

  // Backward scratch, shared by all blocks.
  const dx = buf(R * w, 'dx'), dxa = buf(R * w, 'dxa'), dln = buf(R * w, 'dln'), dh = buf(R * 4 * w, 'dh');
  const datt = buf(R * w, 'datt'), dqkv = buf(R * 3 * w, 'dqkv'), rowDot = buf(stats, 'rowDot');
  const rowLoss = gpu.buffer(R, 'rowLoss');

  // The head, one chunk of rows at a time: logits, loss and dlogits, dW (summed over chunks), dx. Each
  // range [i0, i0 + k) of head.w's width rows (one range unless it is split) meets columns i0.. of lnf
  // (stride w) for the logits and dW, and writes columns i0.. of dx.
  const head = th.rows('head.w'), dhead = g.rows('head.w');
  const chunks: Plan['chunks'] = [];
  for (let r0 = 0; r0 < R; r0 += chunk) {
    const rows = Math.min(chunk, R - r0), c = `head.${r0}`, many = head.length > 1;
    const logitsOf: Dispatch[] = [], dW: Dispatch[] = [], dX: Dispatch[] = [];
    for (const [j, part] of head.entries()) {
      const i0 = part.row0, k = part.rows, name = many ? `${c}.${j}` : c;
      logitsOf.push(await matmul(gpu, { a: at(lnf, r0 * w + i0), lda: w, b: part.ref, c: at(logits), M: rows, N: V, K: k, epi: j === 0 ? Epi.none : Epi.accumulate }, name));
      dW.push(await matmul(gpu, { a: at(lnf, r0 * w + i0), lda: w, b: at(logits), c: dhead[j].ref, M: k, N: V, K: rows, transA: true, epi: r0 === 0 ? Epi.none : Epi.accumulate }, `${name}.dw`));
      dX.push(await matmul(gpu, { a: at(logits), b: part.ref, c: at(dln, r0 * w + i0), ldc: w, M: rows, N: k, K: V, transB: true }, `${name}.dx`));
    }
    chunks.push({
      start: r0,
      rows,
      logits: logitsOf,
      loss: [await softmaxCe(gpu, logits, at(ints, oTargets + r0), rowLoss, rows, V, { offLoss: r0, scaleRows: R }, `${c}.ce`), ...dW, ...dX],
    });
  }
  const backward: Dispatch[] = [
    ...(await layerNormBack(gpu, { x: xs[L], g: th.ref('lnf.g'), b: th.ref('lnf.b'), dy: dln, stats: sf, dx, dg: g.ref('lnf.g'), db: g.ref('lnf.b'), rows: R, width: w }, 'lnf.back')),
  ];
  for (let l = L - 1; l >= 0; l--) {
    const k = blk[l], p = (s: string) => th.ref(`h${l}.${s}`), q = (s: string) => g.ref(`h${l}.${s}`);
    backward.push(
      // MLP branch: dx is the gradient w.r.t. x_{l+1} = xa + fc2(gelu(fc(ln2(xa)))).
      await matmul(gpu, { a: at(k.h), b: at(dx), c: q('mlp.w2'), M: 4 * w, N: w, K: R, transA: true }, `h${l}.fc2.dw`),
      await colsum(gpu, at(dx), R, w, q('mlp.b2'), `h${l}.fc2.db`),
      await matmul(gpu, { a: at(dx), b: p('mlp.w2'), c: at(dh), M: R, N: 4 * w, K: w, transB: true, epi: Epi.geluGrad, aux: at(k.hpre) }, `h${l}.fc2.dx`),
      await matmul(gpu, { a: at(k.ln2), b: at(dh), c: q('mlp.w1'), M: w, N: 4 * w, K: R, transA: true }, `h${l}.fc.dw`),
      await colsum(gpu, at(dh), R, 4 * w, q('mlp.b1'), `h${l}.fc.db`),
      await matmul(gpu, { a: at(dh), b: p('mlp.w1'), c: at(dln), M: R, N: w, K: 4 * w, transB: true }, `h${l}.fc.dx`),
      ...(await layerNormBack(gpu, { x: k.xa, g: p('ln2.g'), b: p('ln2.b'), dy: dln, stats: k.s2, resid: dx, dx: dxa, dg: q('ln2.g'), db: q('ln2.b'), rows: R, width: w }, `h${l}.ln2.back`)),
      // Attention branch: dxa is the gradient w.r.t. xa = x_l + proj(attn(ln1(x_l))).
      await matmul(gpu, { a: at(k.att), b: at(dxa), c: q('attn.wo'), M: w, N: w, K: R, transA: true }, `h${l}.proj.dw`),
      await colsum(gpu, at(dxa), R, w, q('attn.bo'), `h${l}.proj.db`),
      await matmul(gpu, { a: at(dxa), b: p('attn.wo'), c: at(datt), M: R, N: w, K: w, transB: true }, `h${l}.proj.dx`),
      ...(await flashAttentionBack(gpu, { ...dims, qkv: k.qkv, out: k.att, lse: k.lse, dout: datt, rowDot, dqkv }, `h${l}.attn.back`)),
      await matmul(gpu, { a: at(k.ln1), b: at(dqkv), c: q('attn.wqkv'), M: w, N: 3 * w, K: R, transA: true }, `h${l}.qkv.dw`),
      await colsum(gpu, at(dqkv), R, 3 * w, q('attn.bqkv'), `h${l}.qkv.db`),
      await matmul(gpu, { a: at(dqkv), b: p('attn.wqkv'), c: at(dln), M: R, N: w, K: 3 * w, transB: true }, `h${l}.qkv.dx`),
      ...(await layerNormBack(gpu, { x: xs[l], g: p('ln1.g'), b: p('ln1.b'), dy: dln, stats: k.s1, resid: dxa, dx, dg: q('ln1.g'), db: q('ln1.b'), rows: R, width: w }, `h${l}.ln1.back`)),
    );
  }
  backward.push(...await embedBack(gpu, {
    ints, offCsrStart: oStart, offCsrPos: oPos, dx, dwte: g.rows('wte'), dwpe: g.ref('wpe'), width: w, context: T, batch: n,
  }));

  const staging = new Uint32Array(3 * R + V + 1);
  return {
    rows: R,
    classes: V,
    logits,
    rowLoss,
    forward,
    chunks,
    backward,
    write(batch) {
      if (batch.kind !== 'tokens') throw new Error(`the gpt needs a token batch, got kind=${batch.kind}`);
      if (batch.tokens.length !== n * (T + 1)) {
        throw new Error(`batch.tokens has ${batch.tokens.length} ids; expected n·(context+1) = ${n}·${T + 1}`);
      }
      for (let s = 0; s < n; s++) {
        for (let t = 0; t < T; t++) {
          staging[s * T + t] = batch.tokens[s * (T + 1) + t];
          staging[oTargets + s * T + t] = batch.tokens[s * (T + 1) + t + 1];
        }
      }
      for (let i = 0; i < batch.tokens.length; i++) {
        const v = batch.tokens[i];
        if (!(v >= 0 && v < V)) throw new Error(`batch.tokens[${i}] = ${v} is not a token id in [0, ${V})`);
      }
      const csr = tokenCsr(staging.subarray(0, R), V);
      staging.set(csr.start, oStart);
      staging.set(csr.pos, oPos);
      gpu.device.queue.writeBuffer(ints, 0, staging);
    },
  };
}
