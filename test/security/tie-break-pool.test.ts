// The spot-check tie-break (referenceUpdate) reruns a task's H inner steps on the worker pool, not on the
// relay's event loop, and gives exactly the copy the same steps give inline.
import { describe, expect, it } from 'vitest';
import { decodeUpdate, encodeUpdate } from '../../shared/codec/index.ts';
import { decodeTaskData, taskBatch } from '../../shared/data/task-data.ts';
import { encodeShard } from '../../shared/data/shard.ts';
import { defaultHyperparameters } from '../../shared/jobs/spec.ts';
import { initParams, type MlpConfig } from '../../shared/models/config.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { referenceUpdate } from '../../server/defence/recompute.ts';
import { processRuns } from '../../server/pool/index.ts';

const model: MlpConfig = { kind: 'mlp', inputs: 6, hidden: [8], classes: 3 };
const h = { ...defaultHyperparameters, steps: 4, batchSize: 5, compression: { kind: 'fp32' as const } };
const n = 40;
const shard = encodeShard({ n, inputs: 6, classes: 3, x: Float32Array.from({ length: n * 6 }, (_, i) => ((i * 37) % 100) / 100), y: Int32Array.from({ length: n }, (_, i) => i % 3) });

describe('spot-check tie-break on the pool', () => {
  it('matches the same steps run inline', async () => {
    const base = initParams(model, 7);
    const before = processRuns.recompute;
    const viaPool = await referenceUpdate(model, h, base, shard, 99);
    expect(processRuns.recompute).toBe(before + 1);
    const t = createCpuTrainer(model, { batchSize: h.batchSize, adamw: h.adamw, clipNorm: h.clipNorm });
    await t.load(base);
    const data = decodeTaskData(shard);
    for (let step = 0; step < h.steps; step++) await t.step(taskBatch(data, model, 99, step, h.batchSize));
    const delta = await t.delta();
    t.destroy();
    const inline = decodeUpdate(encodeUpdate(delta, h.compression), delta.length);
    expect(viaPool.kind).toBe('dense');
    if (viaPool.kind !== 'dense' || inline.kind !== 'dense') throw new Error('dense updates expected');
    expect(Array.from(viaPool.values)).toEqual(Array.from(inline.values));
    expect(viaPool.values.some((v) => v !== 0)).toBe(true);
  });
});
