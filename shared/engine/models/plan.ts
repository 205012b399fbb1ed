// What a model hands the trainer: dispatches for one forward and one backward pass at a fixed batch
// size, recorded once (activations in preallocated buffers, explicit layer backward) and replayed.
import type { Dispatch } from '../device.ts';
import type { Ref } from '../kernels/matmul.ts';
import type { Batch } from '../../train/trainer.ts';

export type Plan = {
  /** Rows of logits (n for the MLP, n·context for the GPT) and classes per row. */
  rows: number;
  classes: number;
  /** Logits [rows, classes] at offset 0; the loss kernel overwrites them with dlogits. */
  logits: GPUBuffer;
  /** Class targets (u32) for the loss kernel. */
  targets: Ref;
  forward: Dispatch[];
  /** Reads dlogits, writes every parameter's gradient into the flat grad buffer. */
  backward: Dispatch[];
  /** Uploads a batch's inputs (queue writes, ordered before the next submit). */
  write(batch: Batch): void;
};

/** Buffers shared by all plans of one trainer. */
export type PlanBuffers = { theta: GPUBuffer; grad: GPUBuffer };

export function offsetsOf(layout: { name: string; offset: number }[]): (name: string) => number {
  const m = new Map(layout.map((p) => [p.name, p.offset]));
  return (name) => {
    const o = m.get(name);
    if (o === undefined) throw new Error(`no parameter named ${name} in the layout`);
    return o;
  };
}
