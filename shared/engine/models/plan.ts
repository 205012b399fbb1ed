// What a model hands the trainer: dispatches for one forward and one backward pass at a fixed batch
// size, recorded once (activations in preallocated buffers, explicit layer backward) and replayed.
import type { Dispatch } from '../device.ts';
import type { ParamBuffers } from '../param-buffers.ts';
import type { Batch } from '../../train/trainer.ts';

export type Plan = {
  /** Rows of logits (n for the MLP, n·context for the GPT) and classes per row. */
  rows: number;
  classes: number;
  /** One chunk's logits [chunk rows, classes] at offset 0; the loss kernel overwrites them with dlogits. */
  logits: GPUBuffer;
  /** Per-row losses [rows], written chunk by chunk. */
  rowLoss: GPUBuffer;
  /** Everything before the logits (the MLP's forward includes its logits: one chunk). */
  forward: Dispatch[];
  /**
   * The logits in chunks of rows, so a large vocabulary's logits never exist for the whole batch at once:
   * `logits` fills the logits buffer with rows [start, start + rows); `loss` turns them into losses and
   * dlogits and carries the gradient through the output layer (the GPT head's dW sums over chunks).
   */
  chunks: { start: number; rows: number; logits: Dispatch[]; loss: Dispatch[] }[];
  /** After the chunks: every remaining parameter's gradient into the flat grad buffer. */
  backward: Dispatch[];
  /** Uploads a batch's inputs (queue writes, ordered before the next submit). */
  write(batch: Batch): void;
};

/** Buffers shared by all plans of one trainer (θ and its gradient, placed alike in segments), and the
 * logits chunk size (memory-plan.ts decides it). */
export type PlanBuffers = { theta: ParamBuffers; grad: ParamBuffers; logitChunkRows?: number };
