// What a job page reads without a token: the job's overview (status, curves, volunteers, checkpoints,
// tokenizer) and checkpoint downloads as ONNX (raw fp32 is the relay's /api/jobs/:jobId/versions/:v/params).
import { createReadStream, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { usefulnessOf } from '../../shared/jobs/spec.ts';
import { OpsError } from './errors.ts';
import { missingVersionMessage } from '../store/retention.ts';
import { curveReader } from './curve.ts';
import { createOnnxCache } from './onnx-cache.ts';
import type { TallyReader } from './tallies.ts';

// onnxruntime-web's wasm runtime, served from the installed package so "try the model" works the same in
// the built app and under Vite's dev server (whose pre-bundling breaks ort's own relative wasm URLs).
const ortDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
const ORT_FILE = /^ort-wasm-simd-threaded(\.jsep|\.asyncify|\.jspi)?\.(wasm|mjs)$/;
const OrtParams = Type.Object({ file: Type.String({ maxLength: 64 }) });

const JobParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 128 }) });
const VersionParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 128 }), version: Type.Integer({ minimum: 0 }) });

export const modelRoutes = (tallies: TallyReader): FastifyPluginAsync => async (app) => {
  const curve = curveReader(app.stores.relay);
  app.get<{ Params: Static<typeof JobParams> }>('/api/ops/jobs/:jobId/overview', { schema: { params: JobParams } }, async (req) => {
    const job = await app.scheduler.requireJob(req.params.jobId);
    const ops = await app.stores.ops.getOpsJob(job.jobId);
    const rows = await tallies.volunteersOf(job.jobId);
    // with hyperparameters.usefulness on: each volunteer's uploads scored, their mean loss drop, and how many were refused
    const useful = usefulnessOf(job.hyperparameters).mode === 'off' ? undefined : await app.scheduler.guard.store.usefulnessByVolunteer(job.jobId);
    const volunteers = useful ? rows.map((v) => ({ ...v, ...(useful.get(v.volunteerId) ?? { scored: 0, meanDrop: null, notUseful: 0 }) })) : rows;
    const checkpoints = await app.stores.relay.listCheckpoints(job.jobId);
    return {
      job: await app.scheduler.jobInfo(job), owner: ops?.ownerName ?? job.researcher, maxLossRise: ops?.maxLossRise ?? null,
      tokenizer: ops?.tokenizer ?? null, ...(await curve(job.jobId)), volunteers, checkpoints,
    };
  });

  app.get<{ Params: Static<typeof OrtParams> }>('/api/ops/ort/:file', { schema: { params: OrtParams } }, async (req, reply) => {
    if (!ORT_FILE.test(req.params.file)) return reply.status(404).send({ error: { code: 'TT_ERR_NOT_FOUND', message: `no onnxruntime file "${req.params.file}"` } });
    return reply.header('content-type', req.params.file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript')
      .header('cache-control', 'public, max-age=86400').send(createReadStream(join(ortDir, req.params.file)));
  });

  // made once per version on the worker pool, then streamed from its file (./onnx-cache.ts)
  const onnx = createOnnxCache(join(app.dataDir, 'onnx'), app.pool, app.metrics.registry);
  app.get<{ Params: Static<typeof VersionParams> }>('/api/ops/jobs/:jobId/versions/:version/model.onnx', { schema: { params: VersionParams } }, async (req, reply) => {
    const job = await app.scheduler.requireJob(req.params.jobId);
    const { version } = req.params;
    const hash = await app.stores.relay.versionHash(job.jobId, version);
    const missing = async () => new OpsError('TT_ERR_UNKNOWN_VERSION', `version: ${missingVersionMessage(job.jobId, version, job.version, await app.stores.relay.listVersions(job.jobId))}`, 'version');
    if (!hash) throw await missing();
    // the worker reads the checkpoint where the store says (for SQLite, the database file): the event loop never loads its params
    const file = onnx.cached(job.model, hash) ?? await onnx.file(job.model, hash, app.stores.relay.paramsSource(job.jobId, version)).catch(async (e: Error) => {
      // retention dropped the version while its export waited
      if (/no longer stored/.test(e.message)) throw await missing();
      throw e;
    });
    return reply.header('content-type', 'application/octet-stream')
      .header('content-disposition', `attachment; filename="${job.jobId}-v${version}.onnx"`)
      .header('x-tabtrain-hash', hash)
      .header('content-length', String(statSync(file).size))
      .send(createReadStream(file));
  });
};
