// What a pool worker runs: the relay's CPU-heavy work, each a pure function of its message (no relay
// state; a checkpoint's params come from the store's params source, ../store/sqlite-params.ts), so the event loop only posts inputs and receives results.
import { createHash } from 'node:crypto';
import Piscina from 'piscina';
import { writeFileSync, renameSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { l2 } from '../../shared/aggregate/distances.ts';
import { decodeUpdate, encodeUpdate } from '../../shared/codec/index.ts';
import { decodeTaskData, taskBatch } from '../../shared/data/task-data.ts';
import { encodeShard } from '../../shared/data/shard.ts';
import { encodeTokenShard } from '../../shared/data/token-shard.ts';
import { exportOnnx } from '../../shared/export/onnx.ts';
import { prepareDataset, resolveModel } from '../../shared/jobs/dataset.ts';
import { SpecError } from '../../shared/jobs/spec.ts';
import { initParams } from '../../shared/models/config.ts';
import { runtimeOf } from '../../shared/models/runtimes.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { evaluateTokens } from '../ops/eval-gpt.ts';
import { readParams } from '../store/sqlite-params.ts';
import { isPostgresUrl, readPostgresParams } from '../store/postgres/params.ts';
import { cachedRoundInputs } from '../store/round-inputs.ts';
import { compareUpdates } from '../defence/replication.ts';
import { computeRound } from './round.ts';
import { prefold, takePrefolded } from './prefold.ts';
import { collectGarbage } from './collect.ts';
import { hashUpload, validateFile } from '../defence/validate-file.ts';
import { usefulnessScore } from '../defence/usefulness-score.ts';
import type { ParamsSource, PoolTask } from './tasks.ts';

const paramsOf = async (src: ParamsSource): Promise<Float32Array> =>
  (!(src instanceof Float32Array) && isPostgresUrl(src.db) ? readPostgresParams(src.db, src.jobId, src.version) : readParams(src));

export default async function run(task: PoolTask): Promise<unknown> {
  try {
    return await runTask(task);
  } finally {
    // the task's dead arrays go now, before the result is posted: an idle worker's isolate otherwise kept a
    // finished round's model-sized arrays resident until a later task happened to trigger a collection
    collectGarbage();
  }
}

async function runTask(task: PoolTask): Promise<unknown> {
  switch (task.kind) {
    case 'gpt-eval': return evaluateTokens(task.config, await paramsOf(task.params), task.tokens, task.n, task.length);
    case 'mlp-eval': return runtimeOf(task.config).evaluate(task.config, task.params, task.heldOut);
    case 'onnx': {
      // written beside its final name and renamed, so a reader never sees half a file
      const bytes = exportOnnx(task.model, await paramsOf(task.params), { producer: 'tabtrain' });
      const tmp = `${task.file}.${process.pid}.${Date.now()}.tmp`;
      writeFileSync(tmp, bytes);
      renameSync(tmp, task.file);
      return { bytes: bytes.length };
    }
    case 'recompute': {
      const { model, h } = task;
      const t = createCpuTrainer(model, { batchSize: h.batchSize, adamw: h.adamw, clipNorm: h.clipNorm });
      try {
        await t.load(task.base);
        const data = decodeTaskData(task.shardBytes);
        for (let step = 0; step < h.steps; step++) await t.step(taskBatch(data, model, task.seed, step, h.batchSize, h.augment));
        const delta = await t.delta();
        return decodeUpdate(encodeUpdate(delta, h.compression), delta.length);
      } finally {
        t.destroy();
      }
    }
    case 'round': {
      const r = await computeRound(task.spec, cachedRoundInputs(task.db), collectGarbage, (id) => takePrefolded(task.db, id, task.spec.length));
      // the checkpoint's arrays go back moved, not copied (three model-sized arrays at 124M: 1.5 GB)
      const moved = [r.params.buffer, r.momentum.buffer, r.residual.buffer, r.delta.buffer].filter((b, i, all) => b.byteLength > 0 && all.indexOf(b) === i);
      return Piscina.move({ [Piscina.transferableSymbol]: moved, [Piscina.valueSymbol]: r } as never);
    }
    case 'prefold': return prefold(task.db, task.taskId, task.length, cachedRoundInputs(task.db));
    case 'compare': {
      const copies = task.copies.map((c) => decodeUpdate(c, task.n));
      return task.reference ? copies.map((c) => compareUpdates(c, task.reference!, task.tolerance)) : [compareUpdates(copies[0], copies[1], task.tolerance)];
    }
    case 'validate': return validateFile(task.file, task.ctx);
    case 'hash-upload': return hashUpload(task.head, task.file);
    case 'usefulness': {
      const params = await paramsOf(task.params);
      const bytes = task.payload instanceof Uint8Array ? task.payload : new Uint8Array(await readFile(task.payload.file));
      return usefulnessScore(task.model, params, decodeUpdate(bytes, params.length), task.batch);
    }
    case 'params-norm': {
      return l2(await paramsOf(task.params));
    }
    case 'init': {
      const params = initParams(task.model, task.seed);
      return { params, hash: createHash('sha256').update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength)).digest('hex') };
    }
    case 'dataset': {
      // A refusal crosses the thread boundary as a plain object (an Error's class does not survive it).
      try {
        const prepared = prepareDataset(task.job, task.bytes);
        const model = resolveModel(task.job, prepared);
        const shards = prepared.kind === 'text' ? prepared.train.map(encodeTokenShard) : prepared.train.map(encodeShard);
        const heldOut = prepared.kind === 'text' ? encodeTokenShard(prepared.heldOut) : encodeShard(prepared.heldOut);
        const heldOutCount = prepared.kind === 'text' ? prepared.heldOut.tokens.length : prepared.heldOut.n;
        return { ok: true, kind: prepared.kind, tokenizer: prepared.kind === 'text' ? prepared.tokenizer : null, model, shards, heldOut, heldOutCount };
      } catch (e) {
        if (e instanceof SpecError) return { ok: false, field: e.field, problem: e.problem };
        throw e;
      }
    }
  }
}

