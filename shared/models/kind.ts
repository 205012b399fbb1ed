// What a model kind is, in the parts every side needs (the relay, the submit form, the pages, the engine's
// memory plan): its config and submission schemas, its tensors, what data it trains on, the checks and
// limits on its shape, and how it is described. No GPU, reference or export code is reachable from here,
// so a page can read the table without bundling them; those parts are the kind's runtime (runtime.ts).
// One folder per kind (shared/models/<kind>/) holds both; registry.ts lists each kind once.
import type { TObject } from '@sinclair/typebox';
import type { Gpu } from '../engine/device.ts';
import type { Plan, PlanBuffers } from '../engine/models/plan.ts';
import type { OnnxExportOptions } from '../export/onnx-graph.ts';
import type { LabelledBatch } from '../reference/mlp.ts';
import type { Batch } from '../train/trainer.ts';
import type { TensorSpec } from './layout.ts';

/** A refusal naming the job field at fault, for the spec to throw as a SpecError. */
export type Problem = { field: string; problem: string };
/** What the uploaded data decided (jobs/dataset.ts's PreparedDataset fits this). `source` names where a
 * text vocabulary came from, for messages ("the tokenized corpus", 'the "bpe" tokenizer'). */
export type DataFacts = { kind: 'labelled'; inputs: number; classes: number } | { kind: 'text'; vocab: number; source?: string };
/** Adds one planned GPU buffer of `floats` 4-byte values (engine/memory-plan.ts). */
export type AddBuffer = (name: string, category: 'activations' | 'logits' | 'scratch', floats: number) => void;

export interface ModelKind<C extends { kind: string } = { kind: string }, S extends { kind: string } = { kind: string }> {
  /** The full config as the protocol carries it (kind literal plus shape). */
  readonly schema: TObject;
  /** What a researcher writes in job.json's model (what the data decides is left out). */
  readonly submission: TObject;
  /** The dataset format it trains on, and the refusal when a job pairs it with another. */
  readonly dataFormat: 'labelled' | 'text';
  readonly wrongFormat: string;
  /** Tensors in storage order (layout.ts places them). */
  tensors(c: C): TensorSpec[];
  /** Positions per row of a batch: 1 for a row of features, the context for a window of tokens (the
   * submission already says it, before the data completes the config). */
  tokensPerRow(m: C | S): number;
  /** Checks beyond the schema on a submission alone. */
  checkSubmission?(s: S): Problem | undefined;
  /** The full config from a submission and what the data decided, or why they do not match. */
  fromSubmission(s: S, data: DataFacts): C | Problem;
  /** Shape limits of the engine (checked before the memory plan). */
  checkShape?(c: C): Problem | undefined;
  /** The fields to shrink when even batch 1 does not fit, e.g. "model.hidden". */
  readonly shapeFields: string;
  /** Most multiply-adds of one task, and for whom (the relay reruns some kinds' disputed tasks on its CPU). */
  readonly taskLimit: { multiplyAdds: number; what: string };
  /** Row length of labelled image data, for augmentation (absent: the kind does not train on images). */
  labelledInputs?(c: C): number;
  /** The engine's activation and logit buffers at batch n (memory-plan.ts adds θ, gradient and AdamW);
   * returns the logit chunk's rows. */
  planBuffers(c: C, n: number, add: AddBuffer, logitChunkRows?: number): number;
  /** Tensors the engine's kernels take in row ranges, so each may span several buffer bindings
   * (engine/param-segments.ts); any other tensor must fit in one binding with the rest of its module. */
  splitTensors?(c: C): string[];
  /** "MLP 784-128-10" (long: the job page's wording with every dimension). */
  describe(c: C, o?: { long?: boolean; tokenizer?: string }): string;
  /** What its held-out accuracy counts ("accuracy", "next-token accuracy"). */
  readonly accuracyLabel: string;
  /** The relay evaluates versions from its own copy of the held-out rows (false: the operator plugin
   * evaluates on the worker pool from the job's stored held-out data). */
  readonly relayEvaluates: boolean;
  /** The relay reruns a disputed spot check on its CPU reference to break the tie. */
  readonly relayReruns: boolean;
}

/** Types a kind's functions from its config and submission types. */
export const defineModelKind = <C extends { kind: string }, S extends { kind: string }>(k: ModelKind<C, S>): ModelKind<C, S> => k;

/** The heavy parts of a kind, for the engine, the CPU trainer, the relay and the exports (runtimes.ts lists
 * them): a page that only describes jobs never imports these. */
export interface ModelRuntime<C extends { kind: string } = { kind: string }> {
  /** The WebGPU engine's dispatches for one training step at batch n (shared/engine/trainer.ts runs them). */
  buildPlan(gpu: Gpu, c: C, n: number, b: PlanBuffers): Promise<Plan>;
  /** CPU reference: mean loss and full gradient of a batch (refuses a batch of the wrong kind). */
  lossAndGrad(c: C, params: Float32Array, batch: Batch): { loss: number; grad: Float32Array };
  /** CPU reference, forward only: mean loss and accuracy of a batch. */
  evaluate(c: C, params: Float32Array, batch: Batch | LabelledBatch): { loss: number; accuracy: number };
  /** The model with `params` as ONNX bytes (shared/export/onnx.ts documents the graphs). */
  exportOnnx(c: C, params: Float32Array, o: OnnxExportOptions & { producer: string }): Uint8Array;
}

/** Types a runtime's functions from its config type. */
export const defineModelRuntime = <C extends { kind: string }>(r: ModelRuntime<C>): ModelRuntime<C> => r;
