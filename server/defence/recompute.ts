// The relay's own copy of a task, computed with the CPU reference: the tie-breaker when the two copies
// of a spot-checked task disagree (two copies alone cannot say which one is wrong). Same base params,
// shard, seed, steps and optimizer as the volunteers; encoded with the job's compression and no error
// feedback, as replicas are. MLP jobs only: a GPT task on the relay's CPU would cost too much.
import { decodeUpdate, encodeUpdate, type Update } from '../../shared/codec/index.ts';
import { decodeTaskData, taskBatch } from '../../shared/data/task-data.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import type { Hyperparameters } from '../../shared/protocol/messages.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';

export async function referenceUpdate(model: ModelConfig, h: Hyperparameters, base: Float32Array, shardBytes: Uint8Array, seed: number): Promise<Update> {
  const t = createCpuTrainer(model, { batchSize: h.batchSize, adamw: h.adamw, clipNorm: h.clipNorm });
  try {
    await t.load(base);
    const data = decodeTaskData(shardBytes);
    for (let step = 0; step < h.steps; step++) await t.step(taskBatch(data, model, seed, step, h.batchSize, h.augment));
    const delta = await t.delta();
    return decodeUpdate(encodeUpdate(delta, h.compression), delta.length);
  } finally {
    t.destroy();
  }
}
