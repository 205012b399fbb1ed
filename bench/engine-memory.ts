// The engine's memory, in Node through Dawn (SwiftShader here): for each GPT shape, the memory plan's
// bytes by category against what the device wrapper counts after the trainer is made, bytes per
// parameter, the old layout's estimate (7 full-size fp32 buffers, stored T×T scores, whole-batch
// logits), and the time of one training step, the readback of Δ and the process's peak RSS.
// Run alone (tsx bench/engine-memory.ts) or from npm run bench:engine. BENCH_MEMORY_SHAPES picks the
// shapes that train a step (comma-separated names below; default "ctx1024"); GPT-2-small's step takes
// an hour of CPU on SwiftShader, so it is planned always and trained only when named ("gpt2-small";
// "gpt2-small-ctx64" is the same model at context 64).
import { nodeGpu } from '../server/gpu/dawn.ts';
import { planMemory } from '../shared/engine/memory-plan.ts';
import { createWebGpuTrainer } from '../shared/engine/trainer.ts';
import { initParams, paramCount, type GptConfig } from '../shared/models/config.ts';
import { rng } from '../shared/util/rng.ts';

/** maxBindingBytes: the engine assumes no more per binding (WebGPU's default 128 MiB), so θ and the
 * BPE embedding and head are split across buffers as on an adapter that grants no more. */
type Shape = { name: string; model: GptConfig; batch: number; maxBindingBytes?: number };
const shapes: Shape[] = [
  { name: 'ctx1024', model: { kind: 'gpt', vocab: 50_257, context: 1024, layers: 2, heads: 4, width: 128 }, batch: 1 },
  { name: 'gpt2-small', model: { kind: 'gpt', vocab: 50_257, context: 1024, layers: 12, heads: 12, width: 768 }, batch: 1 },
  // GPT-2-small's layers and vocabulary at a short context: the same 163 M parameters, a step in minutes here.
  { name: 'gpt2-small-ctx64', model: { kind: 'gpt', vocab: 50_257, context: 64, layers: 12, heads: 12, width: 768 }, batch: 1 },
  // GPT-2's 50,257 × 768 embedding and head (154 MB each) on 128 MiB bindings: both split by rows
  { name: 'bpe768-split', model: { kind: 'gpt', vocab: 50_257, context: 16, layers: 1, heads: 12, width: 768 }, batch: 1, maxBindingBytes: 128 * 2 ** 20 },
];
const wanted = new Set((process.env.BENCH_MEMORY_SHAPES ?? 'ctx1024').split(',').map((s) => s.trim()).filter(Boolean));
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

/** What the engine allocated before the memory plan: 7 full-size buffers, P and dS per layer, all logits. */
function oldLayoutBytes(m: GptConfig, n: number): number {
  const plan = planMemory(m, n, { logitChunkRows: n * m.context });
  const stats = n * m.heads * m.context;
  const scores = n * m.heads * m.context * m.context;
  return plan.total + 3 * 4 * paramCount(m) - 4 * (m.layers + 1) * stats + 4 * (m.layers + 1) * scores;
}

export async function benchEngineMemory(): Promise<string> {
  const gpu = await nodeGpu();
  let summary = '';
  for (const s of shapes) {
    const count = paramCount(s.model);
    const plan = planMemory(s.model, s.batch, { bindingBytes: s.maxBindingBytes });
    const cats = Object.entries(plan.bytes).map(([k, b]) => `${k} ${mb(b)}`).join(', ');
    console.log(`${s.name}: ${count} parameters, context ${s.model.context}, batch ${s.batch}, vocab ${s.model.vocab}`);
    console.log(`  plan ${mb(plan.total)} (${cats}); largest buffer ${plan.largestBuffer.name} ${mb(plan.largestBuffer.bytes)}; logits ${plan.logitChunkRows} rows at a time`);
    console.log(`  bytes per parameter: state ${((plan.bytes.params + plan.bytes.grads + plan.bytes.optimizer) / count).toFixed(2)}, all ${(plan.total / count).toFixed(2)}; old layout ≈ ${mb(oldLayoutBytes(s.model, s.batch))} (${(oldLayoutBytes(s.model, s.batch) / count).toFixed(2)} per parameter)`);
    const at128 = planMemory(s.model, s.batch, { bindingBytes: 128 * 2 ** 20 });
    console.log(`  on 128 MiB bindings: θ in ${at128.buffers.filter((b) => b.category === 'params').length} buffers; largest unsplittable buffer ${at128.largestBuffer.name} ${mb(at128.largestBuffer.bytes)}`);
    if (!wanted.has(s.name)) continue;
    const t0 = performance.now();
    const tr = await createWebGpuTrainer(gpu, s.model, { batchSize: s.batch, adamw: { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 }, clipNorm: 1 }, { maxBindingBytes: s.maxBindingBytes });
    const created = performance.now();
    const measured = tr.allocatedBytes;
    console.log(`  measured ${measured} bytes vs plan ${plan.total} (${((100 * (measured - plan.total)) / plan.total).toFixed(2)} %), create ${((created - t0) / 1000).toFixed(1)} s`);
    await tr.load(initParams(s.model, 1));
    const r = rng(2);
    const tokens = Int32Array.from({ length: s.batch * (s.model.context + 1) }, () => r.int(s.model.vocab));
    const t1 = performance.now();
    await tr.step({ kind: 'tokens', tokens, n: s.batch });
    const [loss] = await tr.losses();
    const stepped = performance.now();
    const delta = await tr.delta();
    const read = performance.now();
    const cpu = process.cpuUsage();
    tr.destroy();
    console.log(`  step ${((stepped - t1) / 1000).toFixed(1)} s (loss ${loss.toFixed(3)}, ln V = ${Math.log(s.model.vocab).toFixed(3)}), Δ readback ${((read - stepped) / 1000).toFixed(1)} s (${delta.length} values); process CPU ${((cpu.user + cpu.system) / 1e6).toFixed(0)} s, peak RSS ${mb(process.resourceUsage().maxRSS * 1024)}`);
    const split = s.maxBindingBytes ? ` on ${mb(s.maxBindingBytes)} bindings (θ in ${plan.buffers.filter((b) => b.category === 'params').length} buffers)` : '';
    summary = `${s.name} (${count} params, context ${s.model.context}) trained a step${split}: plan ${mb(plan.total)}, measured ${mb(measured)}, ${(plan.total / count).toFixed(2)} bytes/param`;
  }
  return summary || 'no shape trained a step (set BENCH_MEMORY_SHAPES)';
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await benchEngineMemory());
