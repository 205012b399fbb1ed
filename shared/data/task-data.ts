// A task's data whatever the job trains on: labelled shards (MLP, shard.ts) or token shards (GPT,
// token-shard.ts), told apart by their magic, and the batch of inner step `step` for the task's model.
import type { ModelConfig } from '../models/config.ts';
import { kindOf } from '../models/registry.ts';
import type { Augment } from '../protocol/messages.ts';
import { augmentRows } from './augment.ts';
import type { Batch } from '../train/trainer.ts';
import { batchFor, batchForEncoded, decodeShard, type Shard } from './shard.ts';
import { decodeTokenShard, isTokenShard, tokenBatchFor, tokenBatchForEncoded, type TokenShard } from './token-shard.ts';

export type TaskData = { kind: 'labelled'; shard: Shard } | { kind: 'tokens'; shard: TokenShard };

export function decodeTaskData(bytes: Uint8Array): TaskData {
  return isTokenShard(bytes) ? { kind: 'tokens', shard: decodeTokenShard(bytes) } : { kind: 'labelled', shard: decodeShard(bytes) };
}

/** The same batch on every device for (seed, step): sampled rows for an MLP (shifted when the job
 * augments, ./augment.ts), token windows for a GPT. */
export function taskBatch(data: TaskData, model: ModelConfig, seed: number, step: number, batchSize: number, augment?: Augment): Batch {
  if (data.kind === 'tokens') return tokenBatchFor(data.shard, windowOf(model), seed, step, batchSize);
  return augmented(batchFor(data.shard, seed, step, batchSize), data.shard.inputs, augment, seed, step);
}

/** The window length of a model that trains on text (its context); a token shard feeds no other kind. */
function windowOf(model: ModelConfig): number {
  if (kindOf(model).dataFormat !== 'text') throw new Error(`a token shard feeds a model that trains on text, but this task's model is ${model.kind}`);
  return kindOf(model).tokensPerRow(model);
}

function augmented(b: Batch, inputs: number, augment: Augment | undefined, seed: number, step: number): Batch {
  if (augment && b.kind === 'labelled') augmentRows(b.x, b.n, inputs, augment, seed, step);
  return b;
}

/** taskBatch(decodeTaskData(bytes), …) reading only the batch's rows or windows from the encoded shard. */
export function taskBatchEncoded(bytes: Uint8Array, model: ModelConfig, seed: number, step: number, batchSize: number, augment?: Augment): Batch {
  if (isTokenShard(bytes)) return tokenBatchForEncoded(bytes, windowOf(model), seed, step, batchSize);
  const b = batchForEncoded(bytes, seed, step, batchSize);
  return augmented(b, b.kind === 'labelled' ? b.x.length / b.n : 0, augment, seed, step);
}
