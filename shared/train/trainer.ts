// The contract between a volunteer's loop and whatever runs its inner steps (WebGPU engine or CPU
// reference). Data flows one way: load(θ_v) → H × step(batch) → losses() and delta() read back once.
import type { AdamWOptions } from '../reference/adamw.ts';
import type { ModelConfig } from '../models/config.ts';

/** labelled: x [n, inputs] row-major, y class ids. tokens: n sequences of (context + 1) token ids. */
export type Batch =
  | { kind: 'labelled'; x: Float32Array; y: Int32Array; n: number }
  | { kind: 'tokens'; tokens: Int32Array; n: number };

export type TrainOptions = { batchSize: number; adamw: AdamWOptions; clipNorm: number };

export interface Trainer {
  readonly backend: 'webgpu' | 'cpu';
  readonly model: ModelConfig;
  /** Sets θ to the base version's parameters and resets optimizer state. */
  load(params: Float32Array): Promise<void>;
  /** One inner AdamW step. Does not read anything back. */
  step(batch: Batch): Promise<void>;
  /** Training losses of every step since load(), in order (one readback). */
  losses(): Promise<number[]>;
  /** Pseudo-gradient Δ = θ_base − θ_now (one kernel, one readback). */
  delta(): Promise<Float32Array>;
  destroy(): void;
}
