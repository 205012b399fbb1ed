// Every WGSL kernel, forward and backward, against float64 CPU oracles (and float64 finite differences
// for the backward passes), in Node through Dawn + SwiftShader. Shapes avoid tile multiples on purpose.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { acquireDevice, foldGrid, Gpu, maxGroupsPerDim } from '../../shared/engine/device.ts';
import { attention, attentionBack } from '../../shared/engine/kernels/attention.ts';
import { adamw, delta, packAdamwParams, packStep } from '../../shared/engine/kernels/elementwise.ts';
import { embed, embedBack, tokenCsr } from '../../shared/engine/kernels/embedding.ts';
import { layerNorm, layerNormBack } from '../../shared/engine/kernels/layernorm.ts';
import { at, Epi, matmul, packMatmulParams, tileM, tileN } from '../../shared/engine/kernels/matmul.ts';
import { colsum, globalNorm, meanLoss, sumsqPartials } from '../../shared/engine/kernels/reduce.ts';
import { softmaxCe } from '../../shared/engine/kernels/softmax-ce.ts';
import { adamwState, adamwStep, clipGradNorm, type AdamWOptions } from '../../shared/reference/adamw.ts';
import { rng } from '../../shared/util/rng.ts';
import {
  attention64, closeness, dot64, gelu64, layerNorm64, matmul64, numericGrad, randn, softmaxCe64,
} from './oracle.ts';

let gpu: Gpu;
beforeAll(async () => { gpu = new Gpu(await acquireDevice(await nodeGpu())); });
afterAll(() => { gpu?.releaseAll(); gpu?.device.destroy(); });

const read = (b: GPUBuffer, n: number, off = 0) => gpu.read(b, off, n);
/** A buffer with `pad` junk floats before the data, so kernels are tested at non-zero offsets. */
function padded(data: Float32Array, pad: number, label: string): GPUBuffer {
  const all = new Float32Array(pad + data.length).fill(123.5);
  all.set(data, pad);
  return gpu.upload(all, label);
}

describe('matmul kernel', () => {
  // [M, N, K, offset of A, offset of B]: odd offsets force the scalar paths, multiples of 4 the vec4 ones.
  const cases: [number, number, number, number, number][] = [
    [37, 45, 29, 5, 8], [70, 48, 33, 5, 8], [1, 10, 784, 4, 8], [tileM + 3, tileN + 5, 17, 5, 7], [tileM + 5, tileN + 4, 36, 4, 8], [9, 11, 12, 8, 4],
  ];
  for (const [M, N, K, offA, offB] of cases) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true]] as const) {
      it(`matches float64 for ${M}×${K}·${K}×${N}${transA ? ' with Aᵀ' : ''}${transB ? ' with Bᵀ' : ''}, bias, offsets ${offA}/${offB}`, async () => {
        const a = randn(M * K, 1), b = randn(K * N, 2), bias = randn(N, 3);
        const ab = padded(a, offA, 'a'), bb = padded(b, offB, 'b'), biasb = padded(bias, 3, 'bias'), c = gpu.buffer(4 + M * N, 'c');
        gpu.run([await matmul(gpu, { a: at(ab, offA), b: at(bb, offB), c: at(c, 4), bias: at(biasb, 3), M, N, K, transA, transB })]);
        const want = matmul64(a, b, M, N, K, transA, transB).map((v, i) => v + bias[i % N]);
        expect(closeness(await read(c, M * N, 4), want, 1e-4, 1e-4)).toBeLessThan(1);
      });
    }
  }

  it('fuses ReLU, GELU (saving its input), residual and the ReLU/GELU gradient epilogues', async () => {
    const M = 19, N = 24, K = 13;
    const a = randn(M * K, 4), b = randn(K * N, 5), aux = randn(M * N, 6);
    const ab = gpu.upload(a, 'a'), bb = gpu.upload(b, 'b'), auxb = gpu.upload(aux, 'aux');
    const acc = matmul64(a, b, M, N, K);
    const GC = Math.sqrt(2 / Math.PI);
    const geluGrad = (x: number) => {
      const t = Math.tanh(GC * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GC * (1 + 3 * 0.044715 * x * x);
    };
    // The closed-form GELU derivative the kernel uses is itself checked against finite differences.
    expect(closeness([geluGrad(0.7), geluGrad(-1.3)], numericGrad((x) => gelu64(x[0]) + gelu64(x[1]), [0.7, -1.3]), 1e-7, 1e-6)).toBeLessThan(1);
    const expectations: [Epi, (v: number, i: number) => number][] = [
      [Epi.relu, (v) => Math.max(v, 0)],
      [Epi.gelu, (v) => gelu64(v)],
      [Epi.residual, (v, i) => v + aux[i]],
      [Epi.reluGrad, (v, i) => (aux[i] > 0 ? v : 0)],
      [Epi.geluGrad, (v, i) => v * geluGrad(aux[i])],
    ];
    for (const [epi, f] of expectations) {
      const c = gpu.buffer(M * N, 'c');
      const pre = gpu.buffer(M * N, 'pre');
      gpu.run([await matmul(gpu, { a: at(ab), b: at(bb), c: at(c), M, N, K, epi, aux: at(epi === Epi.gelu ? pre : auxb) })]);
      expect(closeness(await read(c, M * N), acc.map(f), 1e-4, 1e-4), `epilogue ${epi}`).toBeLessThan(1);
      if (epi === Epi.gelu) expect(closeness(await read(pre, M * N), acc, 1e-4, 1e-4)).toBeLessThan(1);
    }
  });

  it('packs its params struct in WGSL field order (12 u32 = 48 bytes)', () => {
    const buf = {} as GPUBuffer;
    const packed = new Uint32Array(packMatmulParams({ a: at(buf, 1), b: at(buf, 2), c: at(buf, 3), bias: at(buf, 4), aux: at(buf, 5), M: 6, N: 7, K: 8 }));
    expect(packed.byteLength).toBe(48);
    // the last three are the packed row strides of A [M,K], B [K,N] and C [M,N]
    expect([...packed]).toEqual([6, 7, 8, 1, 2, 3, 4, 5, 1, 8, 7, 7]);
  });
});

describe('reductions', () => {
  it('column sums (bias gradient) match float64', async () => {
    const rows = 301, cols = 67, x = randn(rows * cols, 7);
    const out = gpu.buffer(2 + cols, 'out');
    gpu.run([await colsum(gpu, at(gpu.upload(x, 'x')), rows, cols, at(out, 2))]);
    const want = Array.from({ length: cols }, (_, j) => { let s = 0; for (let r = 0; r < rows; r++) s += x[r * cols + j]; return s; });
    expect(closeness(await read(out, cols, 2), want, 1e-4, 1e-5)).toBeLessThan(1);
  });

  it('global norm and mean loss match float64, deterministically', async () => {
    const n = 100_003, x = randn(n, 8);
    const xb = gpu.upload(x, 'x'), partial = gpu.buffer(sumsqPartials, 'partial'), norm = gpu.buffer(4, 'norm');
    const step = gpu.uniform(packStep(3, 1, { lr: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }), 'step');
    gpu.run(await globalNorm(gpu, [{ buf: xb, n }], partial, step, norm));
    const first = (await read(norm, 1))[0];
    expect(first).toBeCloseTo(Math.sqrt(dot64(x, x)), 2);
    gpu.run(await globalNorm(gpu, [{ buf: xb, n }], partial, step, norm));
    expect((await read(norm, 1))[0]).toBe(first);
    const losses = gpu.buffer(8, 'losses');
    gpu.run([await meanLoss(gpu, xb, 1000, step, losses)]);
    expect((await read(losses, 1, 3))[0]).toBeCloseTo(x.subarray(0, 1000).reduce((a, b) => a + b, 0) / 1000, 5);
  });
});

describe('softmax cross-entropy kernel', () => {
  it('gives the float64 loss and its gradient (finite differences), stable for large logits', async () => {
    const rows = 70, classes = 13;
    const logits = randn(rows * classes, 9, 3);
    logits[5] = 80; logits[20] = -60; // would overflow exp() without the max shift
    const targets = Uint32Array.from({ length: rows }, (_, i) => (i * 7) % classes);
    const lb = gpu.upload(logits, 'logits'), tb = gpu.upload(new Uint32Array([9, 9, ...targets]), 'targets');
    const rowLoss = gpu.buffer(rows, 'rowLoss'), losses = gpu.buffer(4, 'losses');
    const step = gpu.uniform(packStep(0, 1, { lr: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }), 'step');
    gpu.run([await softmaxCe(gpu, lb, at(tb, 2), rowLoss, rows, classes), await meanLoss(gpu, rowLoss, rows, step, losses)]);
    expect((await read(losses, 1))[0]).toBeCloseTo(softmaxCe64(logits, targets, rows, classes), 4);
    const want = numericGrad((l) => softmaxCe64(l, targets, rows, classes), logits);
    expect(closeness(await read(lb, rows * classes), want, 1e-5, 1e-3)).toBeLessThan(1);
  });
});

describe('layer norm kernels', () => {
  const rows = 23, w = 19;
  it('forward matches float64, backward matches finite differences (x, γ, β, plus the skip gradient)', async () => {
    const x = randn(rows * w, 10, 2), g = randn(w, 11), b = randn(w, 12), dy = randn(rows * w, 13), resid = randn(rows * w, 14);
    const params = padded(new Float32Array([...g, ...b]), 7, 'params');
    const xb = gpu.upload(x, 'x'), y = gpu.buffer(rows * w, 'y'), stats = gpu.buffer(2 * rows, 'stats');
    const dyb = gpu.upload(dy, 'dy'), rb = gpu.upload(resid, 'resid'), dx = gpu.buffer(rows * w, 'dx'), grad = gpu.buffer(7 + 2 * w, 'grad');
    const common = { x: xb, g: at(params, 7), b: at(params, 7 + w), stats, rows, width: w };
    gpu.run([
      await layerNorm(gpu, { ...common, y }),
      ...(await layerNormBack(gpu, { ...common, dy: dyb, resid: rb, dx, dg: at(grad, 7), db: at(grad, 7 + w) })),
    ]);
    expect(closeness(await read(y, rows * w), layerNorm64(x, g, b, rows, w), 1e-5, 1e-4)).toBeLessThan(1);
    const wantDx = numericGrad((xx) => dot64(dy, layerNorm64(xx, g, b, rows, w)), x).map((v, i) => v + resid[i]);
    const wantDg = numericGrad((gg) => dot64(dy, layerNorm64(x, gg, b, rows, w)), g);
    const wantDb = numericGrad((bb) => dot64(dy, layerNorm64(x, g, bb, rows, w)), b);
    expect(closeness(await read(dx, rows * w), wantDx, 1e-4, 1e-3)).toBeLessThan(1);
    expect(closeness(await read(grad, w, 7), wantDg, 1e-4, 1e-3)).toBeLessThan(1);
    expect(closeness(await read(grad, w, 7 + w), wantDb, 1e-4, 1e-3)).toBeLessThan(1);
  });
});

describe('causal self-attention kernels', () => {
  it('forward matches float64, backward matches finite differences', async () => {
    const batch = 2, heads = 3, T = 7, w = 12;
    const qkv = randn(batch * T * 3 * w, 15), dout = randn(batch * T * w, 16);
    const qb = gpu.upload(qkv, 'qkv'), P = gpu.buffer(batch * heads * T * T, 'P'), out = gpu.buffer(batch * T * w, 'out');
    const db = gpu.upload(dout, 'dout'), dS = gpu.buffer(batch * heads * T * T, 'dS'), dqkv = gpu.buffer(qkv.length, 'dqkv');
    const dims = { batch, heads, context: T, width: w };
    gpu.run([await attention(gpu, { ...dims, qkv: qb, P, out }), ...(await attentionBack(gpu, { ...dims, qkv: qb, P, dout: db, dS, dqkv }))]);
    expect(closeness(await read(out, batch * T * w), attention64(qkv, batch, heads, T, w), 1e-5, 1e-4)).toBeLessThan(1);
    const want = numericGrad((q) => dot64(dout, attention64(q, batch, heads, T, w)), qkv);
    expect(closeness(await read(dqkv, qkv.length), want, 1e-4, 1e-3)).toBeLessThan(1);
  });

  it('refuses a width that heads do not divide, naming both', async () => {
    const b = gpu.buffer(4, 'x');
    await expect(attention(gpu, { batch: 1, heads: 5, context: 2, width: 12, qkv: b, P: b, out: b })).rejects.toThrow(/width 12 .* heads 5/);
  });
});

describe('embedding kernels', () => {
  it('gathers token + position rows and scatter-adds the gradient back deterministically', async () => {
    const V = 9, T = 5, w = 6, batch = 4, R = batch * T;
    const r = rng(17);
    const ids = Uint32Array.from({ length: R }, () => r.int(V));
    ids[3] = ids[4] = ids[11] = 2; // repeated tokens must sum
    const wte = randn(V * w, 18), wpe = randn(T * w, 19), dx = randn(R * w, 20);
    const params = padded(new Float32Array([...wte, ...wpe]), 4, 'params');
    const csr = tokenCsr(ids, V);
    const ints = gpu.upload(new Uint32Array([...ids, ...csr.start, ...csr.pos]), 'ints');
    const x = gpu.buffer(R * w, 'x'), grad = gpu.buffer(4 + (V + T) * w, 'grad');
    gpu.run([
      ...(await embed(gpu, { ids: at(ints), wte: [{ ref: at(params, 4), row0: 0, rows: V }], wpe: at(params, 4 + V * w), x, rows: R, width: w, context: T })),
      ...(await embedBack(gpu, {
        ints, offCsrStart: R, offCsrPos: R + V + 1, dx: gpu.upload(dx, 'dx'), dwte: [{ ref: at(grad, 4), row0: 0, rows: V }], dwpe: at(grad, 4 + V * w), width: w, context: T, batch,
      })),
    ]);
    const wantX = Array.from({ length: R * w }, (_, i) => wte[ids[Math.floor(i / w)] * w + (i % w)] + wpe[(Math.floor(i / w) % T) * w + (i % w)]);
    expect(closeness(await read(x, R * w), wantX, 1e-6, 1e-6)).toBeLessThan(1);
    const wantTe = new Float64Array(V * w), wantPe = new Float64Array(T * w);
    for (let i = 0; i < R; i++) for (let j = 0; j < w; j++) {
      wantTe[ids[i] * w + j] += dx[i * w + j];
      wantPe[(i % T) * w + j] += dx[i * w + j];
    }
    expect(closeness(await read(grad, V * w, 4), wantTe, 1e-5, 1e-5)).toBeLessThan(1);
    expect(closeness(await read(grad, T * w, 4 + V * w), wantPe, 1e-5, 1e-5)).toBeLessThan(1);
  });
});

describe('optimizer and pseudo-gradient kernels', () => {
  const o: AdamWOptions = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
  for (const clip of [0, 0.5]) {
    it(`AdamW in place matches the CPU reference over 3 steps (clipNorm ${clip})`, async () => {
      const n = 1001;
      const theta0 = randn(n, 21), grads = [randn(n, 22, 0.1), randn(n, 23, 0.1), randn(n, 24, 0.1)];
      const theta = gpu.upload(theta0, 'theta'), grad = gpu.buffer(n, 'grad');
      const m = gpu.upload(new Float32Array(n), 'm'), v = gpu.upload(new Float32Array(n), 'v');
      const norm = gpu.buffer(4, 'norm'), partial = gpu.buffer(sumsqPartials, 'partial');
      const params = gpu.uniform(packAdamwParams(n, o, clip), 'adamw'), step = gpu.uniform(packStep(0, 1, o), 'step');
      const run = [...(clip > 0 ? await globalNorm(gpu, [{ buf: grad, n }], partial, step, norm) : []), await adamw(gpu, n, { params, step, theta, grad, m, v, norm })];
      const cpu = Float32Array.from(theta0), state = adamwState(n);
      for (let t = 1; t <= 3; t++) {
        gpu.device.queue.writeBuffer(grad, 0, grads[t - 1].buffer);
        gpu.device.queue.writeBuffer(step, 0, packStep(0, t, o));
        gpu.run(run);
        const g = Float32Array.from(grads[t - 1]);
        if (clip > 0) clipGradNorm(g, clip);
        adamwStep(cpu, g, state, o);
      }
      expect(closeness(await read(theta, n), cpu, 1e-6, 1e-5)).toBeLessThan(1);
    });
  }

  it(`computes Δ = base − θ in one dispatch above ${maxGroupsPerDim} workgroups (folded into y)`, async () => {
    const n = 64 * (maxGroupsPerDim + 1000) + 7;
    expect(foldGrid(Math.ceil(n / 64))[1]).toBeGreaterThan(1);
    const base = Float32Array.from({ length: n }, (_, i) => i % 1000);
    const theta = Float32Array.from({ length: n }, (_, i) => (i % 7) * 0.5);
    const out = gpu.buffer(n, 'delta');
    const d = await delta(gpu, n, gpu.upload(base, 'base'), gpu.upload(theta, 'theta'), out);
    expect(d.grid[1]).toBeGreaterThan(1);
    gpu.run([d]);
    const got = await read(out, n);
    for (const i of [0, 1, 64 * maxGroupsPerDim - 1, 64 * maxGroupsPerDim, n - 1]) expect(got[i]).toBe(base[i] - theta[i]);
    let bad = 0;
    for (let i = 0; i < n; i++) if (got[i] !== base[i] - theta[i]) bad++;
    expect(bad).toBe(0);
  });
});
