// The parts of finishing a job that need no relay: the stopping rules on stored evaluations, which version
// is released, seeded augmentation, the safetensors layout (checked against the format's specification),
// and which default job `tabtrain start` creates.
import { describe, expect, it } from 'vitest';
import { augmentRows, shiftsFor } from '../../shared/data/augment.ts';
import { batchFor, encodeShard, type Shard } from '../../shared/data/shard.ts';
import { decodeTaskData, taskBatch, taskBatchEncoded } from '../../shared/data/task-data.ts';
import { exportSafetensors, readSafetensors } from '../../shared/export/safetensors.ts';
import { defaultMlp, initParams, paramLayout } from '../../shared/models/config.ts';
import type { Eval } from '../../shared/protocol/messages.ts';
import { defaultJobToCreate } from '../../server/default-job.ts';
import { plateauReached, releasedEval, stopVerdict } from '../../server/scheduler/stopping.ts';
import type { JobRow } from '../../server/store/types.ts';

const ev = (losses: number[]): Eval[] => losses.map((loss, version) => ({ version, loss, accuracy: 1 - loss / 3, at: version }));

describe('stopping rules', () => {
  it('a plateau fires once N evaluations in a row fail to beat the best by more than the tolerance, and not before', () => {
    // best 1.0 at v2; v3 improves by only 0.005 (under the 0.01 tolerance), v4..v5 are worse
    const losses = [2.3, 1.5, 1.0, 0.995, 1.02, 1.1, 1.2];
    const p = { evals: 4, tolerance: 0.01 };
    for (let n = 1; n <= 5; n++) expect(plateauReached(ev(losses.slice(0, n)), p)).toBeNull();
    expect(plateauReached(ev(losses.slice(0, 6)), p)).toBeNull(); // 3 evaluations since v2
    expect(plateauReached(ev(losses), p)).toMatchObject({ best: { version: 2, loss: 1.0 }, since: 4 });
    // a real improvement (more than the tolerance) starts the count again
    expect(plateauReached(ev([...losses.slice(0, 6), 0.9]), p)).toBeNull();
    expect(stopVerdict({ plateau: p }, ev(losses), { version: 6, samples: 0 })).toMatchObject({ rule: 'plateau' });
  });

  it('budgets and targets fire when reached; no until never stops', () => {
    const es = ev([2.3, 0.8, 0.5]);
    expect(stopVerdict(undefined, es, { version: 99, samples: 1e9 })).toBeNull();
    expect(stopVerdict({ versions: 3 }, es, { version: 2, samples: 0 })).toBeNull();
    expect(stopVerdict({ versions: 3 }, es, { version: 3, samples: 0 })?.rule).toBe('versions');
    expect(stopVerdict({ samples: 1000 }, es, { version: 2, samples: 999 })).toBeNull();
    expect(stopVerdict({ samples: 1000 }, es, { version: 2, samples: 1000 })?.rule).toBe('samples');
    expect(stopVerdict({ targetLoss: 0.4 }, es, { version: 2, samples: 0 })).toBeNull();
    expect(stopVerdict({ targetLoss: 0.5 }, es, { version: 2, samples: 0 })?.reason).toMatch(/at version 2/);
    expect(stopVerdict({ targetAccuracy: 0.7 }, es, { version: 2, samples: 0 })?.rule).toBe('targetAccuracy');
  });

  it('releases the version with the best held-out loss that still has a checkpoint, not the last', () => {
    const es = ev([2.3, 0.6, 0.4, 0.7, Number.NaN]);
    expect(releasedEval(es, () => true)?.version).toBe(2);
    expect(releasedEval(es, (v) => v !== 2)?.version).toBe(1);
    expect(releasedEval([], () => true)).toBeUndefined();
  });
});

describe('seeded augmentation', () => {
  const n = 50;
  const shard: Shard = { n, inputs: 784, classes: 10, x: Float32Array.from({ length: n * 784 }, (_, i) => ((i * 7919) % 255) / 255), y: Int32Array.from({ length: n }, (_, i) => i % 10) };
  const data = decodeTaskData(encodeShard(shard));
  const aug = { shift: 2 };

  it('draws the same batch for the same task on any device, another for another seed', () => {
    const a = taskBatch(data, defaultMlp, 1234, 3, 32, aug);
    const b = taskBatch(decodeTaskData(encodeShard(shard)), defaultMlp, 1234, 3, 32, aug);
    expect(b).toEqual(a);
    // the relay's read of the still-encoded shard (usefulness scores) draws the same pixels
    expect(taskBatchEncoded(encodeShard(shard), defaultMlp, 1234, 3, 32, aug)).toEqual(a);
    expect(taskBatch(data, defaultMlp, 1235, 3, 32, aug)).not.toEqual(a);
    expect(taskBatch(data, defaultMlp, 1234, 4, 32, aug)).not.toEqual(a);
  });

  it('samples the same rows as without augmentation, each shifted by at most `shift` pixels', () => {
    const plain = batchFor(data.kind === 'labelled' ? data.shard : shard, 99, 0, 32);
    const shifted = taskBatch(data, defaultMlp, 99, 0, 32, aug);
    if (shifted.kind !== 'labelled' || plain.kind !== 'labelled') throw new Error('labelled batches expected');
    expect(shifted.y).toEqual(plain.y);
    expect(shifted.x).not.toEqual(plain.x);
    const s = shiftsFor(99, 0, 32, 2);
    expect(Math.max(...s.map(Math.abs))).toBeLessThanOrEqual(2);
    expect(new Set(s).size).toBeGreaterThan(1);
    // a row shifted by (dx, dy) has the original pixel (x, y) at (x + dx, y + dy)
    const r = s.findIndex((v, i) => i % 2 === 0 && v !== 0);
    const row = Math.floor(r / 2), dx = s[2 * row], dy = s[2 * row + 1];
    for (const [x, y] of [[10, 10], [14, 13], [5, 20]]) {
      expect(shifted.x[row * 784 + (y + dy) * 28 + (x + dx)]).toBe(plain.x[row * 784 + y * 28 + x]);
    }
  });

  it('fills what shifts in with zeros and leaves a zero shift alone', () => {
    const x = new Float32Array(9).fill(1);
    augmentRows(x, 1, 9, { shift: 0 }, 1, 0);
    expect([...x]).toEqual(Array(9).fill(1));
    const y = Float32Array.from({ length: 16 * 64 }, () => 1);
    augmentRows(y, 16, 64, { shift: 1 }, 7, 0);
    const s = shiftsFor(7, 0, 16, 1);
    for (let r = 0; r < 16; r++) {
      const zeros = y.subarray(r * 64, (r + 1) * 64).filter((v) => v === 0).length;
      const dx = Math.abs(s[2 * r]), dy = Math.abs(s[2 * r + 1]);
      expect(zeros).toBe(64 - (8 - dx) * (8 - dy));
    }
  });
});

describe('safetensors export', () => {
  it('follows the specification: u64 LE header length, JSON header, 8-byte aligned, contiguous data_offsets, ONNX tensor names', () => {
    const params = initParams(defaultMlp, 3);
    const bytes = exportSafetensors(defaultMlp, params, { format: 'pt' });
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = Number(dv.getBigUint64(0, true));
    expect(n % 8).toBe(0);
    expect(bytes.length).toBe(8 + n + params.length * 4);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text[0]).toBe('{');
    expect(text.trimEnd().endsWith('}')).toBe(true);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/); // padding is spaces
    const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    expect(header.__metadata__).toEqual({ format: 'pt' });
    const layout = paramLayout(defaultMlp);
    expect(Object.keys(header).filter((k) => k !== '__metadata__')).toEqual(layout.map((p) => p.name)); // l0.w, l0.b, l1.w, l1.b
    let end = 0;
    for (const p of layout) {
      const e = header[p.name];
      expect(e).toEqual({ dtype: 'F32', shape: p.shape, data_offsets: [end, end + p.size * 4] });
      end += p.size * 4;
    }
    expect(end).toBe(bytes.length - 8 - n); // the data buffer is covered, no holes
    const read = readSafetensors(bytes);
    expect(read.tensors.get('l1.b')).toEqual(params.subarray(layout[3].offset, layout[3].offset + layout[3].size));
    // little-endian fp32: the first weight's bytes as they are in memory
    expect(dv.getFloat32(8 + n, true)).toBe(params[0]);
  });
});

describe('default job at start', () => {
  const job = (jobId: string, status: JobRow['status']) => ({ jobId, status }) as JobRow;
  it('creates mnist-mlp on an empty relay and a fresh one only when renewing and every job is done', () => {
    expect(defaultJobToCreate([], false)).toBe('mnist-mlp');
    expect(defaultJobToCreate([job('mnist-mlp', 'done')], false)).toBeUndefined();
    expect(defaultJobToCreate([job('mnist-mlp', 'done')], true)).toBe('mnist-mlp-2');
    expect(defaultJobToCreate([job('mnist-mlp', 'done'), job('mnist-mlp-2', 'done'), job('text', 'done')], true)).toBe('mnist-mlp-3');
    expect(defaultJobToCreate([job('mnist-mlp', 'done'), job('text', 'running')], true)).toBeUndefined();
    expect(defaultJobToCreate([job('text', 'done')], true)).toBeUndefined();
  });
});
