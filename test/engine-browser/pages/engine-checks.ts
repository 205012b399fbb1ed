// Engine checks run inside the page (or a worker): they build the case from its seed, run it on
// WebGPU and return plain arrays for Node to compare with the CPU reference.
import { acquireDevice, Gpu } from '../../../shared/engine/device.ts';
import { delta } from '../../../shared/engine/kernels/elementwise.ts';
import { at, matmul } from '../../../shared/engine/kernels/matmul.ts';
import { createWebGpuTrainer } from '../../../shared/engine/trainer.ts';
import { caseBatches, caseParams, matmulOperands, trainCases, type MatmulCase } from './cases.ts';

/** initial: loss and gradient at the starting params (before any step), when asked for. */
export type TrainResult = { losses: number[]; delta: number[]; adapter: string; initial?: { loss: number; grad: number[] } };

export async function trainCase(name: string, withGrad = false): Promise<TrainResult> {
  const c = trainCases[name];
  if (!c) throw new Error(`no train case named ${name}`);
  const gpuApi = (globalThis as { navigator?: Navigator }).navigator?.gpu;
  const tr = await createWebGpuTrainer(gpuApi, c.model, c.opts);
  try {
    await tr.load(caseParams(c));
    const batches = caseBatches(c);
    let initial: TrainResult['initial'];
    if (withGrad) {
      const g = await tr.lossAndGrad(batches[0]);
      initial = { loss: g.loss, grad: Array.from(g.grad) };
    }
    for (const b of batches) await tr.step(b);
    return { losses: await tr.losses(), delta: Array.from(await tr.delta()), adapter: tr.adapterInfo.description || tr.adapterInfo.vendor, initial };
  } finally {
    tr.destroy();
  }
}

/** A training case's memory plan against the bytes its trainer allocated (no steps needed). */
export async function memoryCase(name: string): Promise<{ planned: number; allocated: number; maxBinding: number }> {
  const c = trainCases[name];
  if (!c) throw new Error(`no train case named ${name}`);
  const tr = await createWebGpuTrainer(navigator.gpu, c.model, c.opts);
  try {
    const adapter = await navigator.gpu.requestAdapter();
    return { planned: tr.memoryPlan.total, allocated: tr.allocatedBytes, maxBinding: adapter?.limits.maxStorageBufferBindingSize ?? 0 };
  } finally {
    tr.destroy();
  }
}

export async function matmulCase(c: MatmulCase): Promise<number[]> {
  const gpu = new Gpu(await acquireDevice(navigator.gpu));
  try {
    const { a, b } = matmulOperands(c);
    const A = gpu.upload(a, 'A'), B = gpu.upload(b, 'B'), C = gpu.buffer(c.M * c.N, 'C');
    gpu.run([await matmul(gpu, { a: at(A), b: at(B), c: at(C), M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB })]);
    return Array.from(await gpu.read(C, 0, c.M * c.N));
  } finally {
    gpu.releaseAll();
    gpu.device.destroy();
  }
}

/** The same training case inside a module Web Worker (how the volunteer page runs it). */
export function trainCaseInWorker(name: string): Promise<TrainResult> {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  return new Promise<TrainResult>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<{ ok: true; result: TrainResult } | { ok: false; error: string }>) => {
      worker.terminate();
      if (e.data.ok) resolve(e.data.result);
      else reject(new Error(`worker: ${e.data.error}`));
    };
    worker.onerror = (e) => { worker.terminate(); reject(new Error(`worker failed to start: ${e.message}`)); };
    worker.postMessage({ name });
  });
}

/**
 * The pseudo-gradient kernel over more than 65,535 × 64 elements, so its grid folds into two
 * dimensions. Returns how many elements are wrong and the grid it used.
 */
export async function bigDeltaCase(n: number): Promise<{ wrong: number; grid: [number, number] }> {
  const gpu = new Gpu(await acquireDevice(navigator.gpu, { storageBytes: n * 4 }));
  try {
    const base = new Float32Array(n), theta = new Float32Array(n);
    for (let i = 0; i < n; i++) { base[i] = i % 1009; theta[i] = i % 997; }
    const B = gpu.upload(base, 'base'), T = gpu.upload(theta, 'theta'), out = gpu.buffer(n, 'delta');
    const d = await delta(gpu, n, B, T, out);
    gpu.run([d]);
    const got = await gpu.read(out, 0, n);
    let wrong = 0;
    for (let i = 0; i < n; i++) if (got[i] !== base[i] - theta[i]) wrong++;
    return { wrong, grid: d.grid };
  } finally {
    gpu.releaseAll();
    gpu.device.destroy();
  }
}
