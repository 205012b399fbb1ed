// How many bytes of GPU memory the engine allocates to train a model at a batch size, buffer by buffer,
// as a pure function: the trainer sizes its device with it and refuses early, and the relay and the
// submit page compute the same figure to refuse a job no volunteer's adapter can hold. It lists the
// same buffers the engine creates (trainer.ts, models/*.ts; each kind lists its own in its registry entry), rounded as Gpu.buffer rounds them, and a
// test holds the two within 5 %.
//
// Per parameter the engine keeps θ, its gradient and AdamW's m and v (16 bytes); the task's starting
// point (for Δ) stays on the CPU and evaluation reuses θ. Activations are what backward needs at the
// batch and context: per GPT layer about 16 floats per token of width plus a few per-row statistics
// (attention keeps no T×T scores, see kernels/flash-attention.ts), and the logits exist for one chunk
// of rows at a time (at most logitChunkBytes), never batch × context × vocabulary. Parameter-sized
// vectors may be split across bindings (param-segments.ts), so the largest buffer that must fit in one
// binding is the largest activation or the largest unsplittable run of parameters, not θ.
import { paramCount, paramLayout, type ModelConfig } from '../models/config.ts';
import { kindOf } from '../models/registry.ts';
import { largestUnit, placeSegments, segmentFloats, type ParamSegments } from './param-segments.ts';

export type MemoryCategory = 'params' | 'grads' | 'optimizer' | 'activations' | 'logits' | 'scratch';
export type PlannedBuffer = { name: string; category: MemoryCategory; bytes: number };
export type MemoryPlan = {
  /** Bytes per category; total is their sum. */
  bytes: Record<MemoryCategory, number>;
  total: number;
  /** The largest buffer that must fit in one binding (maxStorageBufferBindingSize and maxBufferSize): an
   * activation, or the largest run of parameters that cannot be split ("theta:<module>"). */
  largestBuffer: { name: string; bytes: number };
  /** Rows of logits that exist at once (the cross-entropy chunk). */
  logitChunkRows: number;
  buffers: PlannedBuffer[];
};

export { logitChunkBytes, logitChunkRows, maxHeadSize } from '../models/gpt/config.ts';

/** Bytes Gpu.buffer allocates for `floats` 4-byte elements (16-byte multiples, at least 16). */
export const bufferBytes = (floats: number): number => Math.max(16, Math.ceil((floats * 4) / 16) * 16);

/** Small per-trainer buffers: grad-norm result, the loss slots, two placeholders (and the grad-norm
 * partials: 1,024 per parameter segment). */
const trainerScratch = [['grad.norm', 4], ['losses', 4096], ['placeholder.read', 4], ['placeholder.write', 4]] as const;
const normPartials = 1024;

/** logitChunkRows: rows of logits per chunk (default: logitChunkBytes' worth); bindingBytes: the
 * device's binding limit, where parameter-sized vectors are split in segments of at most this (default:
 * one buffer each, as on any adapter whose binding holds the model). */
export type PlanOptions = { logitChunkRows?: number; bindingBytes?: number };

/** Tensors the kind's engine plan takes in row ranges (ModelKind.splitTensors). */
export const splitTensorsOf = (model: ModelConfig): Set<string> => new Set(kindOf(model).splitTensors?.(model as never) ?? []);

/** Where the trainer puts θ (and its gradient and AdamW state) on a device allowing `bindingBytes` per binding. */
export const placeParams = (model: ModelConfig, bindingBytes: number): ParamSegments =>
  placeSegments(paramLayout(model), segmentFloats(bindingBytes), splitTensorsOf(model));

export function planMemory(model: ModelConfig, batchSize: number, opts: PlanOptions = {}): MemoryPlan {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  const count = paramCount(model);
  const segments = opts.bindingBytes === undefined ? [{ floats: count }] : placeParams(model, opts.bindingBytes).segments;
  const buffers: PlannedBuffer[] = [];
  const add = (name: string, category: MemoryCategory, floats: number) => buffers.push({ name, category, bytes: bufferBytes(floats) });
  for (const [name, category] of [['theta', 'params'], ['grad', 'grads'], ['adam.m', 'optimizer'], ['adam.v', 'optimizer']] as const) {
    segments.forEach((s, i) => add(segments.length > 1 ? `${name}.${i}` : name, category, s.floats));
  }
  for (const [name, floats] of trainerScratch) add(name, 'scratch', floats);
  add('grad.norm.partial', 'scratch', normPartials * segments.length);
  // the kind's activations and logits (shared/models/<kind>/index.ts planBuffers)
  const chunk = kindOf(model).planBuffers(model, batchSize, add, opts.logitChunkRows);
  const bytes: Record<MemoryCategory, number> = { params: 0, grads: 0, optimizer: 0, activations: 0, logits: 0, scratch: 0 };
  const unit = largestUnit(paramLayout(model), splitTensorsOf(model));
  let largest: { name: string; bytes: number } = { name: `theta:${unit.name}`, bytes: bufferBytes(unit.floats) };
  for (const b of buffers) {
    bytes[b.category] += b.bytes;
    const param = b.category === 'params' || b.category === 'grads' || b.category === 'optimizer';
    if (!param && b.bytes > largest.bytes) largest = b;
  }
  const total = Object.values(bytes).reduce((a, b) => a + b, 0);
  return { bytes, total, largestBuffer: { name: largest.name, bytes: largest.bytes }, logitChunkRows: chunk, buffers };
}

/** What an adapter can give: bytes in all, and in one buffer binding. */
export type AdapterBudget = { totalBytes: number; bufferBytes: number };

/**
 * A volunteer's adapter as the relay assumes it when it accepts a job: 4 GiB of buffers in all and 1 GiB
 * in one binding (integrated GPUs and 4 GB cards; Chrome on most desktop GPUs grants a 1–4 GiB
 * maxStorageBufferBindingSize when asked).
 */
export const typicalAdapter: AdapterBudget = { totalBytes: 4 * 2 ** 30, bufferBytes: 2 ** 30 };

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Why `plan` does not fit `budget` (needed vs available, naming the buffer), or null when it fits. */
export function planProblem(plan: MemoryPlan, budget: AdapterBudget): string | null {
  if (plan.largestBuffer.bytes > budget.bufferBytes) {
    return `its largest buffer (${plan.largestBuffer.name}) needs ${plan.largestBuffer.bytes} bytes (${mib(plan.largestBuffer.bytes)}); `
      + `the adapter allows ${budget.bufferBytes} bytes (${mib(budget.bufferBytes)}) in one buffer`;
  }
  if (plan.total > budget.totalBytes) {
    const parts = Object.entries(plan.bytes).filter(([, b]) => b > 0).map(([k, b]) => `${k} ${mib(b)}`).join(', ');
    return `training needs ${plan.total} bytes (${mib(plan.total)}: ${parts}); the adapter budget is ${budget.totalBytes} bytes (${mib(budget.totalBytes)})`;
  }
  return null;
}

/** What a volunteer reports of its adapter when it asks for work: WebGPU's two buffer limits and,
 * where it knows it, the memory it offers in all (WebGPU does not say; typicalAdapter's is assumed). */
export type AdapterLimits = { maxBufferSize: number; maxStorageBufferBindingSize: number; memoryBytes?: number };

export const budgetOf = (l: AdapterLimits): AdapterBudget => ({
  bufferBytes: Math.min(l.maxBufferSize, l.maxStorageBufferBindingSize),
  totalBytes: l.memoryBytes ?? typicalAdapter.totalBytes,
});

/** The same sizes the trainer asks its device for, read from an adapter (no device is created). */
export const limitsOf = (adapter: { limits: { maxBufferSize: number; maxStorageBufferBindingSize: number } }): AdapterLimits => ({
  maxBufferSize: adapter.limits.maxBufferSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
});

/** Why an adapter with these limits cannot train `model` at `batchSize` (needed vs available, and the
 * largest batch size that would fit, if any), or null when it can. The relay refuses a task with it and
 * the volunteer checks it again before downloading anything. */
export function adapterProblem(model: ModelConfig, batchSize: number, limits: AdapterLimits): string | null {
  const budget = budgetOf(limits);
  const problem = planProblem(planMemory(model, batchSize), budget);
  if (!problem) return null;
  let most = 0;
  for (let b = 1; b < batchSize && !planProblem(planMemory(model, b), budget); b *= 2) most = b;
  const hint = most > 0 ? ` (batch size ${most} would fit; the job's is ${batchSize})` : '';
  return `training this ${model.kind} (${paramCount(model)} parameters) at batch size ${batchSize} does not fit this adapter: ${problem}${hint}`;
}
