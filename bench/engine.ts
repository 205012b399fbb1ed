// npm run bench:engine — our WebGPU engine vs TensorFlow.js (WebGPU backend) in ONE headless Chromium
// run, same models, batches and optimizer (bench/pages/spec.ts), plus our matmul GFLOP/s and a
// per-kernel profile of a GPT step, then the engine's memory in Node + Dawn (bench/engine-memory.ts: the
// memory plan vs bytes allocated, and a step at context 1024). Prints figures; the last line is the summary.
// On SwiftShader absolute numbers mean little: the ratios count.
// BENCH_WARMUP / BENCH_STEPS change the step counts (defaults 2 / 5).
import { launchBrowser } from '../test/helpers/browser.ts';
import { startPageServer } from '../test/helpers/vite.ts';
import { mlpLossAndGrad } from '../shared/reference/mlp.ts';
import { gptLossAndGrad } from '../shared/reference/gpt.ts';
import { benchGpt, benchMlp, gptBenchData, matmulSizes, mlpBenchData } from './pages/spec.ts';
import { benchEngineMemory } from './engine-memory.ts';

const warmup = Number(process.env.BENCH_WARMUP ?? 2);
const steps = Number(process.env.BENCH_STEPS ?? 5);
if (!(warmup >= 1 && steps >= 1)) throw new Error('BENCH_WARMUP and BENCH_STEPS must be at least 1');

// First-step loss of the CPU reference on the same params and batch: both sides must start there.
const m = mlpBenchData(), g = gptBenchData();
const refLoss = {
  mlp: mlpLossAndGrad(benchMlp, m.params, { x: m.x, y: m.y, n: m.n }).loss,
  gpt: gptLossAndGrad(benchGpt, g.params, g.tokens, g.n).loss,
};

// Node + Dawn first, so the browser's figures and the summary line come last.
const memory = await benchEngineMemory();

const server = await startPageServer({ prebundle: ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-webgpu'] });
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  page.on('console', (msg) => { if (msg.type() === 'error') console.error(`[page] ${msg.text()}`); });
  await page.goto(`${server.url}/bench/pages/engine.html`);
  await page.waitForFunction(() => window.bench?.ready === true, undefined, { timeout: 120_000 });
  const ratio: Record<string, number> = {};
  for (const model of ['mlp', 'gpt'] as const) {
    const tf = await page.evaluate(([mo, w, s]) => window.bench.tfjs(mo, w, s), [model, warmup, steps] as const);
    const ours = await page.evaluate(([mo, w, s]) => window.bench.engine(mo, w, s), [model, warmup, steps] as const);
    console.log(`${model}: reference first loss ${refLoss[model].toFixed(4)}`);
    console.log(`  tfjs-${tf.backend}: ${tf.msPerStep.toFixed(1)} ms/step (first loss ${tf.firstLoss.toFixed(4)}, after ${warmup + steps} steps ${tf.lastLoss.toFixed(4)})`);
    console.log(`  engine:      ${ours.msPerStep.toFixed(1)} ms/step (first loss ${ours.firstLoss.toFixed(4)}, after ${warmup + steps} steps ${ours.lastLoss.toFixed(4)})`);
    ratio[model] = tf.msPerStep / ours.msPerStep;
  }
  const profile = await page.evaluate(() => window.bench.profileGpt());
  const total = profile.reduce((a, p) => a + p.ms, 0);
  console.log(`gpt step profile (each kernel alone, summed over layers; total ${total.toFixed(1)} ms):`);
  for (const p of profile.slice(0, 12)) console.log(`  ${p.kernel.padEnd(18)} ${p.ms.toFixed(2).padStart(9)} ms  ${((100 * p.ms) / total).toFixed(1).padStart(5)} %  (${p.count}×)`);
  const mm = await page.evaluate((s) => window.bench.matmul(s), matmulSizes);
  for (const r of mm) console.log(`matmul ${r.size}×${r.size}: ${r.ms.toFixed(1)} ms, ${r.gflops.toFixed(2)} GFLOP/s`);
  const at1024 = mm.find((r) => r.size === 1024)?.gflops ?? NaN;
  const tfMs = await page.evaluate(() => window.bench.tfjsMatmul(1024, 1));
  console.log(`tfjs-webgpu matmul 1024×1024: ${tfMs.toFixed(1)} ms, ${((2 * 1024 ** 3) / (tfMs * 1e6)).toFixed(2)} GFLOP/s`);
  console.log(`engine: ${ratio.gpt.toFixed(2)}x tfjs-webgpu on gpt step, ${ratio.mlp.toFixed(2)}x on mlp step, matmul ${at1024.toFixed(2)} GFLOP/s at 1024; ${memory}`);
} finally {
  await browser.close();
  await server.close();
}
