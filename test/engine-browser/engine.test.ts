// The key engine tests again, in headless Chromium (WebGPU on SwiftShader), in a page and in a worker:
// the page builds each case from its seed, runs it on the engine, and Node compares with the CPU reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.ts';
import { startPageServer, type PageServer } from '../helpers/vite.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { gptLossAndGrad } from '../../shared/reference/gpt.ts';
import { caseBatches, caseParams, matmulOperands, matmulReference, trainCases, type MatmulCase, type TrainCase } from './pages/cases.ts';

import type { TrainResult } from './pages/engine-checks.ts';

async function cpuRun(c: TrainCase): Promise<{ losses: number[]; delta: Float32Array }> {
  const tr = createCpuTrainer(c.model, c.opts);
  await tr.load(caseParams(c));
  for (const b of caseBatches(c)) await tr.step(b);
  return { losses: await tr.losses(), delta: await tr.delta() };
}

/** ‖a − b‖ / ‖b‖ */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
  return Math.sqrt(d / n);
}

function expectTracks(gpu: TrainResult, cpu: { losses: number[]; delta: Float32Array }, lossTol: number): void {
  expect(gpu.losses.length).toBe(cpu.losses.length);
  gpu.losses.forEach((l, i) => expect(Math.abs(l - cpu.losses[i]), `loss of step ${i + 1}`).toBeLessThan(lossTol));
  // AdamW amplifies fp32 noise where gradients are near zero, so Δ is compared as a whole.
  expect(relErr(gpu.delta, cpu.delta)).toBeLessThan(1e-2);
}

describe('WebGPU engine in headless Chromium (SwiftShader)', () => {
  let server: PageServer, browser: Browser, page: Page;
  const run = <T>(check: string, arg?: unknown) => page.evaluate(([c, a]) => window.tabtrain.run(c, a), [check, arg] as const) as Promise<T>;
  beforeAll(async () => {
    server = await startPageServer();
    browser = await launchBrowser();
    page = await browser.newPage();
    await page.goto(`${server.url}/test/engine-browser/pages/harness.html`);
    await page.waitForFunction(() => window.tabtrain?.ready === true);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('matmul forward and its transposed variants match float64, on shapes off the tile size', async () => {
    const cases: MatmulCase[] = [
      { M: 70, N: 33, K: 45, transA: false, transB: false, seed: 1 },
      { M: 65, N: 130, K: 17, transA: true, transB: false, seed: 2 },
      { M: 3, N: 77, K: 129, transA: false, transB: true, seed: 3 },
    ];
    for (const c of cases) {
      const out = await run<number[]>('matmul', c);
      const { a, b } = matmulOperands(c);
      const ref = matmulReference(c, a, b);
      let worst = 0;
      for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(out[i] - ref[i]));
      expect(worst, JSON.stringify(c)).toBeLessThan(1e-4);
    }
  });

  it('the memory plan is what the engine allocates in the browser too (MLP and GPT, within 5 %)', async () => {
    for (const name of ['mlp20', 'gpt5']) {
      const r = await run<{ planned: number; allocated: number; maxBinding: number }>('memory', name);
      expect(r.allocated, name).toBeGreaterThan(0);
      expect(Math.abs(r.allocated - r.planned) / r.planned, name).toBeLessThan(0.05);
      expect(r.maxBinding).toBeGreaterThanOrEqual(128 * 2 ** 20);
    }
  });

  it('a 1-D kernel over more than 65,535 workgroups folds its grid and covers every element', async () => {
    const n = 65_535 * 64 + 12_345;
    const r = await run<{ wrong: number; grid: [number, number] }>('bigDelta', n);
    expect(r.grid[1]).toBeGreaterThan(1);
    expect(r.wrong).toBe(0);
  });

  it('MLP: 20 AdamW steps on the GPU track the CPU reference (losses within 1e-3, Δ within 1 %)', async () => {
    const c = trainCases.mlp20;
    const gpu = await run<TrainResult>('train', c.name);
    expectTracks(gpu, await cpuRun(c), 1e-3);
    expect(gpu.losses[c.steps - 1]).toBeLessThan(gpu.losses[0]);
  });

  it('GPT: the gradient matches the CPU reference, and 5 AdamW steps track it (losses within 1e-3)', async () => {
    const c = trainCases.gpt5;
    if (c.model.kind !== 'gpt') throw new Error('gpt5 must be a gpt case');
    const gpu = await run<TrainResult>('trainWithGrad', c.name);
    const batch = caseBatches(c)[0];
    if (batch.kind !== 'tokens' || !gpu.initial) throw new Error('gpt5 must give token batches and an initial gradient');
    const ref = gptLossAndGrad(c.model, caseParams(c), batch.tokens, batch.n);
    expect(Math.abs(gpu.initial.loss - ref.loss)).toBeLessThan(1e-4);
    // Gradient: max error under 1e-3 of the largest entry.
    let worst = 0, scale = 0;
    for (let i = 0; i < ref.grad.length; i++) {
      worst = Math.max(worst, Math.abs(gpu.initial.grad[i] - ref.grad[i]));
      scale = Math.max(scale, Math.abs(ref.grad[i]));
    }
    expect(worst / scale).toBeLessThan(1e-3);
    expectTracks(gpu, await cpuRun(c), 1e-3);
  });

  it('MLP trains the same inside a module Web Worker', async () => {
    const c = trainCases.mlp20;
    expectTracks(await run<TrainResult>('trainInWorker', c.name), await cpuRun(c), 1e-3);
  });
});
