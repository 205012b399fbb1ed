// What a job will cost before it exists: its parameter count, the GPU memory a volunteer needs (the
// engine's memory plan at the job's batch size), the bytes of one task each way, and the first refusal the
// relay would give. The submit form shows it live and the relay answers POST /api/jobs/estimate with the
// same function, so the two agree by construction. What the data decides (a char vocabulary, an MLP's
// inputs and classes) comes from the dataset the form has read, or is missing.
import { encodedUpdateBytes } from '../codec/index.ts';
import { planMemory } from '../engine/memory-plan.ts';
import { paramCount, type ModelConfig } from '../models/config.ts';
import { checkModelFits } from './model-fit.ts';
import { checkSubmission, checkTaskSize, checkUsefulness, checkVersionSize, resolveHyperparameters, SpecError, tokenizerVocab, type JobSubmission } from './spec.ts';

/** Shape the data decides: a GPT's vocabulary (char tokenizer), an MLP's inputs and classes. */
export type DataDims = { vocab?: number; inputs?: number; classes?: number };

export type JobEstimate = {
  /** the full model, when the spec and the data dims decide it */
  model?: ModelConfig;
  paramCount?: number;
  /** bytes of GPU memory training needs (memory-plan.ts), and its largest single buffer */
  gpuBytes?: number;
  largestBuffer?: { name: string; bytes: number };
  /** per task: down, a whole fp32 version (less when a volunteer rebuilds it from published deltas);
   * up, the encoded update (exact for fp32 and int8, about for top-k, whose index gaps vary) */
  downBytes?: number;
  upBytes?: number;
  /** what is still needed to size the model (the dataset), when it is not decided */
  missing?: string;
  /** the first refusal the relay would give, naming the field */
  problem?: { field: string; message: string };
};

function fullModel(job: JobSubmission, dims: DataDims): ModelConfig | string {
  const m = job.model;
  if (m.kind === 'mlp') {
    if (!dims.inputs || !dims.classes) return 'the dataset decides the inputs and classes: add the data file';
    return { kind: 'mlp', inputs: dims.inputs, hidden: m.hidden, classes: dims.classes };
  }
  const tokenizer = job.dataset.format === 'text' ? job.dataset.tokenizer : 'char';
  const vocab = tokenizer === 'char' ? dims.vocab : tokenizerVocab[tokenizer];
  if (!vocab) return 'a char vocabulary is the corpus\'s distinct characters: add the data file';
  return { kind: 'gpt', vocab, context: m.context, layers: m.layers, heads: m.heads, width: m.width };
}

/** The estimate of a parsed job.json (anything: it is checked here) with the data's dims. */
export function estimateJob(raw: unknown, dims: DataDims = {}): JobEstimate {
  const refusal = (e: unknown): JobEstimate['problem'] => {
    if (e instanceof SpecError) return { field: e.field, message: e.message };
    throw e;
  };
  let job: JobSubmission;
  try {
    job = checkSubmission(raw);
  } catch (e) {
    // the spec is refused, but a model that is whole can still be sized (a too-large batch, say)
    const out: JobEstimate = { problem: refusal(e) };
    try { job = raw as JobSubmission; Object.assign(out, sized(job, dims)); } catch { /* not sizeable */ }
    return out;
  }
  const out = sized(job, dims);
  if (out.model) {
    try {
      const h = resolveHyperparameters(job);
      checkModelFits(out.model, h.batchSize);
      checkTaskSize(out.model, h);
      checkUsefulness(out.model, h);
      checkVersionSize(out.model);
    } catch (e) {
      out.problem = refusal(e);
    }
  }
  return out;
}

function sized(job: JobSubmission, dims: DataDims): JobEstimate {
  const model = fullModel(job, dims);
  if (typeof model === 'string') return { missing: model };
  const h = resolveHyperparameters(job);
  const count = paramCount(model);
  const plan = planMemory(model, h.batchSize);
  return {
    model, paramCount: count, gpuBytes: plan.total, largestBuffer: plan.largestBuffer,
    downBytes: 4 * count, upBytes: encodedUpdateBytes(count, h.compression),
  };
}
