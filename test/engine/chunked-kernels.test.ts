// The kernels that keep a large model's activations small, against float64 oracles and finite
// differences: fused causal attention with online softmax (no T×T scores kept), cross-entropy over a
// chunk of rows, and the matmul epilogue that sums a weight gradient over row chunks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { acquireDevice, Gpu, readChunkBytes } from '../../shared/engine/device.ts';
import { attention, attentionBack } from '../../shared/engine/kernels/attention.ts';
import { flashAttention, flashAttentionBack, maxHeadSize, rowStatFloats } from '../../shared/engine/kernels/flash-attention.ts';
import { at, Epi, matmul } from '../../shared/engine/kernels/matmul.ts';
import { softmaxCe } from '../../shared/engine/kernels/softmax-ce.ts';
import { rng } from '../../shared/util/rng.ts';
import { attention64, closeness, dot64, matmul64, numericGrad, randn, softmaxCe64 } from './oracle.ts';

let gpu: Gpu;
beforeAll(async () => { gpu = new Gpu(await acquireDevice(await nodeGpu())); });
afterAll(() => { gpu?.releaseAll(); gpu?.device.destroy(); });
const read = (b: GPUBuffer, n: number, off = 0) => gpu.read(b, off, n);

describe('fused causal attention (online softmax, recomputed in backward)', () => {
  for (const [batch, heads, T, w] of [[2, 3, 7, 12], [1, 2, 13, 10]] as const) {
    it(`forward matches float64, backward matches finite differences (batch ${batch}, heads ${heads}, T ${T}, width ${w})`, async () => {
      const qkv = randn(batch * T * 3 * w, 31 + T), dout = randn(batch * T * w, 32 + T);
      const dims = { batch, heads, context: T, width: w };
      const qb = gpu.upload(qkv, 'qkv'), db = gpu.upload(dout, 'dout');
      const lse = gpu.buffer(rowStatFloats(dims), 'lse'), rowDot = gpu.buffer(rowStatFloats(dims), 'rowDot');
      const out = gpu.buffer(batch * T * w, 'out'), dqkv = gpu.buffer(qkv.length, 'dqkv');
      gpu.run([await flashAttention(gpu, { ...dims, qkv: qb, lse, out }), ...(await flashAttentionBack(gpu, { ...dims, qkv: qb, out, lse, dout: db, rowDot, dqkv }))]);
      expect(closeness(await read(out, batch * T * w), attention64(qkv, batch, heads, T, w), 1e-5, 1e-4)).toBeLessThan(1);
      const want = numericGrad((q) => dot64(dout, attention64(q, batch, heads, T, w)), qkv);
      expect(closeness(await read(dqkv, qkv.length), want, 1e-4, 1e-3)).toBeLessThan(1);
    });
  }

  it('gives what the stored-scores kernels give (same layout, same gradient)', async () => {
    const batch = 2, heads = 2, T = 9, w = 8, dims = { batch, heads, context: T, width: w };
    const qkv = randn(batch * T * 3 * w, 41, 2), dout = randn(batch * T * w, 42);
    const qb = gpu.upload(qkv, 'qkv'), db = gpu.upload(dout, 'dout');
    const P = gpu.buffer(batch * heads * T * T, 'P'), dS = gpu.buffer(batch * heads * T * T, 'dS');
    const outA = gpu.buffer(batch * T * w, 'outA'), dA = gpu.buffer(qkv.length, 'dA');
    const lse = gpu.buffer(rowStatFloats(dims), 'lse'), rowDot = gpu.buffer(rowStatFloats(dims), 'rowDot');
    const outB = gpu.buffer(batch * T * w, 'outB'), dB = gpu.buffer(qkv.length, 'dB');
    gpu.run([
      await attention(gpu, { ...dims, qkv: qb, P, out: outA }), ...(await attentionBack(gpu, { ...dims, qkv: qb, P, dout: db, dS, dqkv: dA })),
      await flashAttention(gpu, { ...dims, qkv: qb, lse, out: outB }), ...(await flashAttentionBack(gpu, { ...dims, qkv: qb, out: outB, lse, dout: db, rowDot, dqkv: dB })),
    ]);
    expect(closeness(await read(outB, batch * T * w), await read(outA, batch * T * w), 1e-6, 1e-5)).toBeLessThan(1);
    expect(closeness(await read(dB, qkv.length), await read(dA, qkv.length), 1e-6, 1e-4)).toBeLessThan(1);
  });

  it('refuses a head size over what a thread holds, naming it', async () => {
    const b = gpu.buffer(4, 'x');
    await expect(flashAttention(gpu, { batch: 1, heads: 1, context: 2, width: 2 * maxHeadSize, qkv: b, lse: b, out: b })).rejects.toThrow(/head size width\/heads = 512/);
  });
});

describe('cross-entropy over row chunks', () => {
  it('chunks give the whole batch loss, and a gradient scaled by the whole batch (finite differences)', async () => {
    const rows = 11, classes = 37, chunk = 4;
    const r = rng(51);
    const logits = randn(rows * classes, 52, 3), targets = Uint32Array.from({ length: rows }, () => r.int(classes));
    const tb = gpu.upload(new Uint32Array([9, 9, ...targets]), 'targets');
    const rowLoss = gpu.buffer(rows, 'rowLoss');
    const grads = new Float32Array(rows * classes);
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0);
      const lb = gpu.upload(logits.slice(r0 * classes, (r0 + n) * classes), 'chunk');
      gpu.run([await softmaxCe(gpu, lb, at(tb, 2 + r0), rowLoss, n, classes, { offLoss: r0, scaleRows: rows })]);
      grads.set(await read(lb, n * classes), r0 * classes);
    }
    const losses = await read(rowLoss, rows);
    expect(losses.reduce((a, b) => a + b, 0) / rows).toBeCloseTo(softmaxCe64(logits, targets, rows, classes), 5);
    const want = numericGrad((x) => softmaxCe64(x, targets, rows, classes), logits);
    expect(closeness(grads, want, 1e-6, 1e-3)).toBeLessThan(1);
  });
});

describe('matmul accumulate epilogue', () => {
  for (const matmulKind of ['register', 'shared'] as const) {
    it(`Aᵀ·B summed over row chunks equals the whole product (${matmulKind} kernel)`, async () => {
      const g = gpu.child({ matmul: matmulKind });
      const K = 23, M = 9, N = 14, chunk = 8;
      const a = randn(K * M, 61), b = randn(K * N, 62);
      const ab = g.upload(a, 'a'), bb = g.upload(b, 'b'), c = g.buffer(3 + M * N, 'c');
      const runs = [];
      for (let k0 = 0; k0 < K; k0 += chunk) {
        const n = Math.min(chunk, K - k0);
        runs.push(await matmul(g, { a: at(ab, k0 * M), b: at(bb, k0 * N), c: at(c, 3), M, N, K: n, transA: true, epi: k0 === 0 ? Epi.none : Epi.accumulate }));
      }
      g.run(runs);
      expect(closeness(await g.read(c, 3, M * N), matmul64(a, b, M, N, K, true), 1e-4, 1e-4)).toBeLessThan(1);
      g.releaseAll();
    });
  }
});

describe('readback in pieces', () => {
  it('reads a buffer over the staging size, from an offset, exactly', async () => {
    const floats = readChunkBytes / 4 + 1001;
    const data = Float32Array.from({ length: floats }, (_, i) => i * 0.5);
    const b = gpu.upload(data, 'big');
    const got = await read(b, floats - 7, 7);
    expect(got.length).toBe(floats - 7);
    expect(got[0]).toBe(3.5);
    expect(got[readChunkBytes / 4 - 1]).toBe(data[readChunkBytes / 4 + 6]);
    expect(got[floats - 8]).toBe(data[floats - 1]);
    expect(got.every((v, i) => v === data[i + 7])).toBe(true);
    gpu.release(b);
  });
});
