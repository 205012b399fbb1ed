// Parameters larger than one buffer binding (GPT-2's 50,257 × 768 token embedding and head are 154 MB
// each, over WebGPU's default 128 MiB): the placement of θ in segments, each kernel that takes a tensor
// in row ranges against float64 oracles, and a whole GPT trained with a binding limit forced down to
// 64 KiB, so the split paths run at test sizes, against the CPU reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { acquireDevice, Gpu } from '../../shared/engine/device.ts';
import { embed, embedBack, tokenCsr } from '../../shared/engine/kernels/embedding.ts';
import { at, Epi, matmul } from '../../shared/engine/kernels/matmul.ts';
import { globalNorm, sumsqPartials } from '../../shared/engine/kernels/reduce.ts';
import { packStep } from '../../shared/engine/kernels/elementwise.ts';
import { planMemory, splitTensorsOf } from '../../shared/engine/memory-plan.ts';
import { largestUnit, placeSegments, segmentFloats } from '../../shared/engine/param-segments.ts';
import { createWebGpuTrainer } from '../../shared/engine/trainer.ts';
import { initParams, paramLayout, type GptConfig, type MlpConfig } from '../../shared/models/config.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import type { TrainOptions } from '../../shared/train/trainer.ts';
import { rng } from '../../shared/util/rng.ts';
import { expectGptMatchesReference, gptBatch } from './gpt-check.ts';
import { closeness, dot64, matmul64, randn } from './oracle.ts';

let gpu: Gpu;
let api: GPU;
beforeAll(async () => { api = await nodeGpu(); gpu = new Gpu(await acquireDevice(api)); });
afterAll(() => { gpu?.releaseAll(); gpu?.device.destroy(); });

// vocabulary ≫ width, so the embedding and the head are the only tensors over the limit
const gpt: GptConfig = { kind: 'gpt', vocab: 2503, context: 5, layers: 2, heads: 2, width: 8 };
// bytes per binding: 16,384 floats, above the trainer's loss slots (4,096 floats) and below the
// embedding's and the head's 20,024
const limit = 64 * 2 ** 10;
const opts: TrainOptions = { batchSize: 2, adamw: { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, clipNorm: 1 };

describe('placing θ in segments', () => {
  const layout = paramLayout(gpt);
  const place = placeSegments(layout, segmentFloats(limit), splitTensorsOf(gpt));

  it('keeps flat order, fits each segment, keeps modules whole and splits only the embedding and head by rows', () => {
    expect(place.segments.length).toBe(3);
    let at0 = 0;
    for (const s of place.segments) {
      expect(s.start).toBe(at0);
      expect(s.floats).toBeLessThanOrEqual(limit / 4);
      at0 += s.floats;
    }
    expect(at0).toBe(layout[layout.length - 1].offset + layout[layout.length - 1].size);
    for (const p of layout) {
      const t = place.tensors.get(p.name)!;
      let row = 0;
      for (const piece of t.pieces) {
        expect(piece.row0).toBe(row);
        // the piece holds exactly the tensor's rows at their flat position
        expect(place.segments[piece.seg].start + piece.off).toBe(p.offset + piece.row0 * t.rowFloats);
        expect(piece.off + piece.rows * t.rowFloats).toBeLessThanOrEqual(place.segments[piece.seg].floats);
        row += piece.rows;
      }
      expect(row * t.rowFloats).toBe(p.size);
      expect(t.pieces.length > 1, p.name).toBe(p.name === 'wte' || p.name === 'head.w');
    }
    // a layer norm's γ and β share a segment (one kernel binds them together)
    for (const m of ['h0.ln1', 'h1.ln2', 'lnf']) expect(place.tensors.get(`${m}.g`)!.pieces[0].seg).toBe(place.tensors.get(`${m}.b`)!.pieces[0].seg);
    expect(largestUnit(layout, splitTensorsOf(gpt))).toEqual({ name: 'head', floats: 2503 }); // one row of head.w
    expect(largestUnit(layout, new Set())).toEqual({ name: 'wte', floats: 2503 * 8 });
  });

  it('refuses a module over the limit that its kernels cannot split, naming it', () => {
    expect(() => placeSegments(layout, 256, splitTensorsOf(gpt))).toThrow(/parameters h0\.attn need one binding of 1152 bytes; the device allows 1024/);
    const mlp: MlpConfig = { kind: 'mlp', inputs: 70, hidden: [33], classes: 10 };
    expect(() => placeSegments(paramLayout(mlp), 1024, splitTensorsOf(mlp))).toThrow(/parameters l0 need one binding/);
  });

  it('the memory plan lists the segments and nothing over the limit; GPT-2 small fits a 128 MiB binding', () => {
    const plan = planMemory(gpt, 2, { logitChunkRows: 3, bindingBytes: limit });
    expect(plan.buffers.filter((b) => b.category === 'params').length).toBe(place.segments.length);
    for (const b of plan.buffers) expect(b.bytes, b.name).toBeLessThanOrEqual(limit);
    const gpt2small: GptConfig = { kind: 'gpt', vocab: 50_257, context: 1024, layers: 12, heads: 12, width: 768 };
    const big = planMemory(gpt2small, 1, { bindingBytes: 128 * 2 ** 20 });
    // the 154 MB embedding and head no longer have to fit one binding: the logits chunk is the largest
    expect(big.largestBuffer.name).toBe('gpt.logits');
    for (const b of big.buffers) expect(b.bytes, b.name).toBeLessThanOrEqual(128 * 2 ** 20);
    expect(big.buffers.filter((b) => b.category === 'params').length).toBeGreaterThan(3);
  });
});

describe('kernels taking a matrix in row ranges across buffers', () => {
  // B [K, N] stored as row ranges in separate buffers at odd offsets (what the head's pieces look like)
  const M = 13, N = 37, K = 11, cuts = [0, 4, 9, 11];
  for (const kind of ['register', 'shared'] as const) {
    it(`A·B, Aᵀ·D and D·Bᵀ per range of B's rows give the whole products (${kind} kernel, float64)`, async () => {
      const g = gpu.child({ matmul: kind });
      const a = randn(M * K, 71), b = randn(K * N, 72), d = randn(M * N, 73);
      const ab = g.upload(a, 'a'), db = g.upload(d, 'd');
      const ranges = cuts.slice(1).map((k1, j) => {
        const k0 = cuts[j], pad = 3 + j;
        const data = new Float32Array(pad + (k1 - k0) * N).fill(99);
        data.set(b.subarray(k0 * N, k1 * N), pad);
        return { k0, k: k1 - k0, b: at(g.upload(data, `b${j}`), pad), dw: at(g.buffer(pad + (k1 - k0) * N, `dw${j}`), pad) };
      });
      const c = g.buffer(M * N, 'c'), dx = g.buffer(2 + M * K, 'dx');
      const runs = [];
      for (const [j, r] of ranges.entries()) {
        // C = Σ_j A[:, k0:k1] · B_j (A's columns reached through its row stride)
        runs.push(await matmul(g, { a: at(ab, r.k0), lda: K, b: r.b, c: at(c), M, N, K: r.k, epi: j === 0 ? Epi.none : Epi.accumulate }));
        // dB_j = A[:, k0:k1]ᵀ · D
        runs.push(await matmul(g, { a: at(ab, r.k0), lda: K, b: at(db), c: r.dw, M: r.k, N, K: M, transA: true }));
        // dA[:, k0:k1] = D · B_jᵀ, written into columns k0.. of dA (its row stride K)
        runs.push(await matmul(g, { a: at(db), b: r.b, c: at(dx, 2 + r.k0), ldc: K, M, N: r.k, K: N, transB: true }));
      }
      g.run(runs);
      expect(closeness(await g.read(c, 0, M * N), matmul64(a, b, M, N, K), 1e-4, 1e-4)).toBeLessThan(1);
      const wantDb = matmul64(a, d, K, N, M, true);
      for (const r of ranges) {
        expect(closeness(await g.read(r.dw.buf, r.dw.off, r.k * N), wantDb.subarray(r.k0 * N, (r.k0 + r.k) * N), 1e-4, 1e-4)).toBeLessThan(1);
      }
      expect(closeness(await g.read(dx, 2, M * K), matmul64(d, b, M, K, N, false, true), 1e-4, 1e-4)).toBeLessThan(1);
      g.releaseAll();
    });
  }

  it('a strided A with the vec4 B path (N and offsets multiples of 4) matches float64', async () => {
    const M = 9, N = 24, K = 10, lda = 17;
    const a = randn(M * lda, 74), b = randn(K * N, 75);
    const ab = gpu.upload(a, 'a'), bb = gpu.upload(new Float32Array([0, 0, 0, 0, ...b]), 'b'), c = gpu.buffer(M * N, 'c');
    gpu.run([await matmul(gpu, { a: at(ab, 5), lda, b: at(bb, 4), c: at(c), M, N, K })]);
    const sub = Float32Array.from({ length: M * K }, (_, i) => a[5 + Math.floor(i / K) * lda + (i % K)]);
    expect(closeness(await gpu.read(c, 0, M * N), matmul64(sub, b, M, N, K), 1e-4, 1e-4)).toBeLessThan(1);
  });

  it('the embedding gather and scatter per range of token rows give the whole-table results (float64)', async () => {
    const V = 13, T = 4, w = 5, batch = 3, R = batch * T;
    const r = rng(76);
    const ids = Uint32Array.from({ length: R }, () => r.int(V));
    ids[0] = 0; ids[1] = V - 1; ids[2] = ids[7] = 6; // both ends and a repeat
    const wte = randn(V * w, 77), wpe = randn(T * w, 78), dx = randn(R * w, 79);
    // rows [0, 6) alone at offset 2; rows [6, 10) and [10, 13) in one buffer with wpe after them
    const bufA = new Float32Array(2 + 6 * w).fill(7); bufA.set(wte.subarray(0, 6 * w), 2);
    const bufB = new Float32Array(1 + 7 * w + T * w).fill(7); bufB.set(wte.subarray(6 * w), 1); bufB.set(wpe, 1 + 7 * w);
    const ta = gpu.upload(bufA, 'wteA'), tb = gpu.upload(bufB, 'wteB');
    const wteRanges = [{ ref: at(ta, 2), row0: 0, rows: 6 }, { ref: at(tb, 1), row0: 6, rows: 4 }, { ref: at(tb, 1 + 4 * w), row0: 10, rows: 3 }];
    const ga = gpu.buffer(2 + 6 * w, 'gA'), gb = gpu.buffer(1 + 7 * w + T * w, 'gB');
    const dRanges = [{ ref: at(ga, 2), row0: 0, rows: 6 }, { ref: at(gb, 1), row0: 6, rows: 4 }, { ref: at(gb, 1 + 4 * w), row0: 10, rows: 3 }];
    const csr = tokenCsr(ids, V);
    const ints = gpu.upload(new Uint32Array([...ids, ...csr.start, ...csr.pos]), 'ints');
    const x = gpu.buffer(R * w, 'x');
    const fwd = await embed(gpu, { ids: at(ints), wte: wteRanges, wpe: at(tb, 1 + 7 * w), x, rows: R, width: w, context: T });
    const back = await embedBack(gpu, { ints, offCsrStart: R, offCsrPos: R + V + 1, dx: gpu.upload(dx, 'dx'), dwte: dRanges, dwpe: at(gb, 1 + 7 * w), width: w, context: T, batch });
    expect(fwd).toHaveLength(3);
    expect(back).toHaveLength(4);
    gpu.run([...fwd, ...back]);
    const wantX = Array.from({ length: R * w }, (_, i) => wte[ids[Math.floor(i / w)] * w + (i % w)] + wpe[(Math.floor(i / w) % T) * w + (i % w)]);
    expect(closeness(await gpu.read(x, 0, R * w), wantX, 1e-6, 1e-6)).toBeLessThan(1);
    const wantTe = new Float64Array(V * w), wantPe = new Float64Array(T * w);
    for (let i = 0; i < R; i++) for (let j = 0; j < w; j++) {
      wantTe[ids[i] * w + j] += dx[i * w + j];
      wantPe[(i % T) * w + j] += dx[i * w + j];
    }
    const gotTe = new Float32Array(V * w);
    gotTe.set(await gpu.read(ga, 2, 6 * w), 0);
    gotTe.set(await gpu.read(gb, 1, 7 * w), 6 * w);
    expect(closeness(gotTe, wantTe, 1e-5, 1e-5)).toBeLessThan(1);
    expect(closeness(await gpu.read(gb, 1 + 7 * w, T * w), wantPe, 1e-5, 1e-5)).toBeLessThan(1);
  });

  for (const subgroups of [false, true]) {
    it(`the global norm over several buffers is the norm of their concatenation, run after run (subgroups ${subgroups})`, async () => {
      if (subgroups && !gpu.dev.features.subgroups) return;
      const sizes = [5003, 300, 2 * sumsqPartials + 1];
      const xs = sizes.map((n, k) => randn(n, 80 + k));
      const parts = xs.map((x, k) => ({ buf: gpu.upload(x, `x${k}`), n: x.length }));
      const partial = gpu.buffer(sumsqPartials * parts.length, 'partial'), norm = gpu.buffer(4, 'norm');
      const step = gpu.uniform(packStep(0, 1, { lr: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }), 'step');
      gpu.run(await globalNorm(gpu, parts, partial, step, norm, subgroups));
      const first = (await gpu.read(norm, 0, 1))[0];
      const want = Math.sqrt(xs.reduce((s, x) => s + dot64(x, x), 0));
      expect(Math.abs(first - want) / want).toBeLessThan(1e-5);
      gpu.run(await globalNorm(gpu, parts, partial, step, norm, subgroups));
      expect((await gpu.read(norm, 0, 1))[0]).toBe(first);
    });
  }
});

describe(`a GPT trained with a ${limit}-byte binding limit (θ, the embedding and the head split)`, () => {
  const engine = { maxBindingBytes: limit, logitChunkRows: 3 };

  it('allocates what the plan says, no buffer over the limit, and gives the CPU reference loss, gradient and logits', async () => {
    const params = initParams(gpt, 11);
    const tr = await createWebGpuTrainer(api, gpt, opts, engine);
    const plan = planMemory(gpt, 2, { logitChunkRows: 3, bindingBytes: limit });
    expect(tr.memoryPlan).toEqual(plan);
    expect(tr.allocatedBytes).toBe(plan.total);
    expect(plan.buffers.filter((b) => b.name.startsWith('theta.')).length).toBe(3);
    await tr.load(params);
    await expectGptMatchesReference(tr, gpt, params, gptBatch(gpt, 12, 2), 13);
    tr.destroy();
  });

  it('tracks the CPU trainer over 20 AdamW steps with clipping: losses within 1e-3 and Δ within 1e-4', async () => {
    const params = initParams(gpt, 14);
    const tr = await createWebGpuTrainer(api, gpt, opts, engine);
    const cpu = createCpuTrainer(gpt, opts);
    await tr.load(params);
    await cpu.load(params);
    for (let s = 0; s < 20; s++) {
      const batch = gptBatch(gpt, 200 + (s % 4), 2);
      await tr.step(batch);
      await cpu.step(batch);
    }
    const [got, want] = [await tr.losses(), await cpu.losses()];
    for (let s = 0; s < 20; s++) expect(Math.abs(got[s] - want[s]), `step ${s}`).toBeLessThan(1e-3);
    expect(got[19]).toBeLessThan(got[0]);
    expect(closeness(await tr.delta(), await cpu.delta(), 1e-4, 1e-2)).toBeLessThan(1);
    tr.destroy();
  });

  it('refuses, naming the module, a model whose unsplittable parameters exceed the limit', async () => {
    const mlp: MlpConfig = { kind: 'mlp', inputs: 70, hidden: [33], classes: 10 };
    await expect(createWebGpuTrainer(api, mlp, { ...opts, batchSize: 4 }, { maxBindingBytes: 4096 })).rejects.toThrow(/parameters l0 need one binding of 9372 bytes; the device allows 4096/);
  });
});
