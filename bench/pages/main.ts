// Benchmark page: Node (bench/engine.ts) calls window.bench.* one at a time with page.evaluate.
import { benchAdam, benchGpt, benchMlp, gptBenchData, mlpBenchData, type StepTiming } from './spec.ts';
import { tfGpt, tfMatmulMs, tfMlp, timeTf, useTfWebgpu } from './tfjs-models.ts';
import { matmulGflops, profileGptStep, timeEngine } from './engine-side.ts';

type Model = 'mlp' | 'gpt';
declare global {
  interface Window {
    bench: {
      ready: true;
      tfjs(model: Model, warmup: number, steps: number): Promise<StepTiming & { backend: string }>;
      engine(model: Model, warmup: number, steps: number): Promise<StepTiming>;
      matmul(sizes: number[]): Promise<{ size: number; gflops: number; ms: number }[]>;
      profileGpt(): Promise<{ kernel: string; ms: number; count: number }[]>;
      tfjsMatmul(size: number, reps: number): Promise<number>;
    };
  }
}

window.bench = {
  ready: true,
  async tfjs(model, warmup, steps) {
    const backend = await useTfWebgpu();
    let t;
    if (model === 'mlp') { const d = mlpBenchData(); t = tfMlp(benchMlp, d.params, d.x, d.y, d.n, benchAdam); }
    else { const d = gptBenchData(); t = tfGpt(benchGpt, d.params, d.tokens, d.n, benchAdam); }
    const r = await timeTf(t, warmup, steps);
    t.dispose();
    return { ...r, steps, backend };
  },
  async engine(model, warmup, steps) {
    if (model === 'mlp') {
      const d = mlpBenchData();
      return timeEngine(benchMlp, d.params, { kind: 'labelled', x: d.x, y: d.y, n: d.n }, warmup, steps);
    }
    const d = gptBenchData();
    return timeEngine(benchGpt, d.params, { kind: 'tokens', tokens: d.tokens, n: d.n }, warmup, steps);
  },
  matmul: (sizes) => matmulGflops(sizes),
  profileGpt: () => profileGptStep(gptBenchData().tokens),
  async tfjsMatmul(size, reps) { await useTfWebgpu(); return tfMatmulMs(size, reps); },
};
