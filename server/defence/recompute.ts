// The relay's own copy of a task, computed with the CPU reference: the tie-breaker when the two copies
// of a spot-checked task disagree (two copies alone cannot say which one is wrong). Same base params,
// shard, seed, steps and optimizer as the volunteers; encoded with the job's compression and no error
// feedback, as replicas are. MLP jobs only: a GPT task on the relay's CPU would cost too much.
// All H steps run on the worker pool (server/pool/worker.ts), not on the event loop.
import type { Update } from '../../shared/codec/index.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import type { Hyperparameters } from '../../shared/protocol/messages.ts';
import { runOnPool } from '../pool/index.ts';

export async function referenceUpdate(model: ModelConfig, h: Hyperparameters, base: Float32Array, shardBytes: Uint8Array, seed: number): Promise<Update> {
  return runOnPool({ kind: 'recompute', model, h, base, shardBytes, seed });
}
