// The per-adapter kernel choice (policy.ts) and the variants it chooses between: the shared-memory
// matmul forced onto SwiftShader at shapes that are not tile multiples (all three transposes and every
// epilogue, against float64), the subgroup sum of squares against the fp32 fallback, and a small MLP
// trained with the shared-memory policy tracking the CPU trainer. Small tiles keep compiles short.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { acquireDevice, Gpu, type Device } from '../../shared/engine/device.ts';
import { packStep } from '../../shared/engine/kernels/elementwise.ts';
import { matmulShared, type SharedTile } from '../../shared/engine/kernels/matmul-shared.ts';
import { at, Epi, matmul } from '../../shared/engine/kernels/matmul.ts';
import { globalNorm, sumsqPartials } from '../../shared/engine/kernels/reduce.ts';
import { choosePolicy } from '../../shared/engine/policy.ts';
import { createWebGpuTrainer } from '../../shared/engine/trainer.ts';
import { initParams, type MlpConfig } from '../../shared/models/config.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import type { Batch, TrainOptions } from '../../shared/train/trainer.ts';
import { rng } from '../../shared/util/rng.ts';
import { closeness, dot64, gelu64, matmul64, randn } from './oracle.ts';

let gpuApi: GPU;
let gpu: Gpu;
beforeAll(async () => {
  gpuApi = await nodeGpu();
  gpu = new Gpu(await acquireDevice(gpuApi), undefined, { matmul: 'shared' });
});
afterAll(() => { gpu?.releaseAll(); gpu?.device.destroy(); });

const read = (b: GPUBuffer, n: number, off = 0) => gpu.read(b, off, n);
function padded(data: Float32Array, pad: number, label: string): GPUBuffer {
  const all = new Float32Array(pad + data.length).fill(123.5);
  all.set(data, pad);
  return gpu.upload(all, label);
}

describe('kernel-selection policy', () => {
  const fake = (architecture: string, isFallback: boolean, subgroups: boolean, description = ''): Pick<Device, 'adapterInfo' | 'isFallback' | 'features'> => ({
    adapterInfo: { vendor: 'x', architecture, device: '', description }, isFallback, features: { shaderF16: false, subgroups },
  });

  it('puts CPU adapters on the register-tiled matmul and real GPUs on the shared-memory one', () => {
    expect(choosePolicy(fake('swiftshader', false, true))).toEqual({ matmul: 'register', subgroups: true });
    expect(choosePolicy(fake('', true, false))).toEqual({ matmul: 'register', subgroups: false });
    expect(choosePolicy(fake('', false, false, 'llvmpipe (LLVM 15.0.6, 256 bits)')).matmul).toBe('register');
    expect(choosePolicy(fake('ampere', false, true))).toEqual({ matmul: 'shared', subgroups: true });
    expect(choosePolicy(fake('gen-12lp', false, false))).toEqual({ matmul: 'shared', subgroups: false });
  });

  it('honours overrides and refuses impossible ones, naming the field', () => {
    expect(choosePolicy(fake('swiftshader', true, true), { matmul: 'shared', subgroups: false })).toEqual({ matmul: 'shared', subgroups: false });
    expect(() => choosePolicy(fake('ampere', false, false), { subgroups: true })).toThrow(/policy.subgroups .* no 'subgroups' feature/);
    expect(() => choosePolicy(fake('ampere', false, false), { matmul: 'tensor' as never })).toThrow(/policy.matmul must be 'register' or 'shared'/);
  });

  it('picks the register-tiled matmul for this machine\'s SwiftShader adapter by default', () => {
    const dev = new Gpu(gpu.dev);
    expect(dev.dev.adapterInfo.architecture).toBe('swiftshader');
    expect(dev.policy.matmul).toBe('register');
    expect(gpu.policy.matmul).toBe('shared');
  });
});

describe('shared-memory matmul (forced on SwiftShader)', () => {
  // 4×4 threads → 16×16 output tiles and K tiles of 8: shapes below span several tiles with ragged edges.
  const small: SharedTile = { wgX: 4, wgY: 4, tileK: 8 };
  const M = 37, N = 21, K = 19;
  for (const [transA, transB] of [[false, false], [true, false], [false, true]] as const) {
    it(`matches float64 for ${M}×${K}·${K}×${N}${transA ? ' with Aᵀ' : ''}${transB ? ' with Bᵀ' : ''}, bias, odd offsets`, async () => {
      const a = randn(M * K, 31), b = randn(K * N, 32), bias = randn(N, 33);
      const c = gpu.buffer(3 + M * N, 'c');
      gpu.run([await matmulShared(gpu, { a: at(padded(a, 5, 'a'), 5), b: at(padded(b, 7, 'b'), 7), c: at(c, 3), bias: at(padded(bias, 1, 'bias'), 1), M, N, K, transA, transB }, 'mm', small)]);
      const want = matmul64(a, b, M, N, K, transA, transB).map((v, i) => v + bias[i % N]);
      expect(closeness(await read(c, M * N, 3), want, 1e-4, 1e-4)).toBeLessThan(1);
    });
  }

  it('fuses every epilogue like the register-tiled kernel (GELU also saves its input)', async () => {
    const m = 19, n = 13, k = 11;
    const a = randn(m * k, 34), b = randn(k * n, 35), aux = randn(m * n, 36);
    const ab = gpu.upload(a, 'a'), bb = gpu.upload(b, 'b'), auxb = gpu.upload(aux, 'aux');
    const acc = matmul64(a, b, m, n, k);
    const GC = Math.sqrt(2 / Math.PI);
    const geluGrad = (x: number) => {
      const t = Math.tanh(GC * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GC * (1 + 3 * 0.044715 * x * x);
    };
    const cases: [Epi, (v: number, i: number) => number][] = [
      [Epi.relu, (v) => Math.max(v, 0)], [Epi.gelu, (v) => gelu64(v)], [Epi.residual, (v, i) => v + aux[i]],
      [Epi.reluGrad, (v, i) => (aux[i] > 0 ? v : 0)], [Epi.geluGrad, (v, i) => v * geluGrad(aux[i])],
    ];
    for (const [epi, f] of cases) {
      const c = gpu.buffer(m * n, 'c'), pre = gpu.buffer(m * n, 'pre');
      gpu.run([await matmulShared(gpu, { a: at(ab), b: at(bb), c: at(c), M: m, N: n, K: k, epi, aux: at(epi === Epi.gelu ? pre : auxb) }, 'mm', small)]);
      expect(closeness(await read(c, m * n), acc.map(f), 1e-4, 1e-4), `epilogue ${epi}`).toBeLessThan(1);
      if (epi === Epi.gelu) expect(closeness(await read(pre, m * n), acc, 1e-4, 1e-4)).toBeLessThan(1);
    }
  });

  it('runs through matmul() under the shared policy with the default 64×64 tiles (ragged 70×66·66×45)', async () => {
    const m = 70, n = 45, k = 66;
    const a = randn(m * k, 37), b = randn(k * n, 38);
    const c = gpu.buffer(m * n, 'c');
    const d = await matmul(gpu, { a: at(gpu.upload(a, 'a')), b: at(gpu.upload(b, 'b')), c: at(c), M: m, N: n, K: k });
    expect(d.pipeline.label).toBe('matmulShared');
    expect(d.grid).toEqual([1, 2]);
    gpu.run([d]);
    expect(closeness(await read(c, m * n), matmul64(a, b, m, n, k), 1e-4, 1e-4)).toBeLessThan(1);
  });

  it('refuses a tile the device cannot run, saying what to change', async () => {
    const c = gpu.buffer(4, 'c');
    const args = { a: at(c), b: at(c), c: at(c), M: 1, N: 1, K: 1 };
    await expect(matmulShared(gpu, args, 'mm', { wgX: 64, wgY: 64, tileK: 8 })).rejects.toThrow(/exceeds this device's workgroup limits/);
    await expect(matmulShared(gpu, args, 'mm', { wgX: 16, wgY: 16, tileK: 4096 })).rejects.toThrow(/workgroup memory.*lower tileK/);
    await expect(matmulShared(gpu, args, 'mm', { wgX: 0, wgY: 4, tileK: 8 })).rejects.toThrow(/tile.wgX must be a positive integer/);
  });
});

describe('subgroup reduction', () => {
  it('the subgroupAdd sum of squares matches the fp32 fallback and float64, run after run', async () => {
    expect(gpu.dev.features.subgroups).toBe(true); // SwiftShader here has subgroups, so this path is exercised
    const n = 100_003, x = randn(n, 39);
    const xb = gpu.upload(x, 'x'), partial = gpu.buffer(sumsqPartials, 'partial'), norm = gpu.buffer(4, 'norm');
    const step = gpu.uniform(packStep(0, 1, { lr: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }), 'step');
    const normWith = async (subgroups: boolean) => {
      gpu.run(await globalNorm(gpu, [{ buf: xb, n }], partial, step, norm, subgroups));
      return (await read(norm, 1))[0];
    };
    const want = Math.sqrt(dot64(x, x));
    const viaSubgroups = await normWith(true), fallback = await normWith(false);
    expect(Math.abs(viaSubgroups - want) / want).toBeLessThan(1e-5);
    expect(Math.abs(fallback - want) / want).toBeLessThan(1e-5);
    expect(Math.abs(viaSubgroups - fallback) / want).toBeLessThan(1e-5);
    expect(await normWith(true)).toBe(viaSubgroups);
  });
});

describe('training with the shared-memory policy', () => {
  const mlp: MlpConfig = { kind: 'mlp', inputs: 70, hidden: [33], classes: 10 };
  const opts: TrainOptions = { batchSize: 9, adamw: { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, clipNorm: 1 };
  const batch = (seed: number): Batch => {
    const r = rng(seed);
    return { kind: 'labelled', x: randn(9 * mlp.inputs, seed), y: Int32Array.from({ length: 9 }, () => r.int(mlp.classes)), n: 9 };
  };

  it('an MLP tracks the CPU trainer for 5 AdamW steps (losses within 1e-3, Δ within 1e-4)', async () => {
    const params = initParams(mlp, 41);
    const tr = await createWebGpuTrainer(gpuApi, mlp, opts, { policy: { matmul: 'shared' } });
    expect(tr.policy.matmul).toBe('shared');
    const cpu = createCpuTrainer(mlp, opts);
    await tr.load(params);
    await cpu.load(params);
    for (let s = 0; s < 5; s++) {
      await tr.step(batch(200 + s));
      await cpu.step(batch(200 + s));
    }
    const [got, want] = [await tr.losses(), await cpu.losses()];
    expect(got).toHaveLength(5);
    for (let s = 0; s < 5; s++) expect(Math.abs(got[s] - want[s]), `step ${s}`).toBeLessThan(1e-3);
    expect(got[4]).toBeLessThan(got[0]);
    expect(closeness(await tr.delta(), await cpu.delta(), 1e-4, 1e-2)).toBeLessThan(1);
    tr.destroy();
  });
});
