// POST /api/tasks/:taskId/update: the binary update frame. A body larger than the task's model can
// need is refused from its Content-Length, before any of it is read.
import type { FastifyPluginAsync } from 'fastify';
import { encodedByteBound } from '../../shared/codec/index.ts';
import { paramCount } from '../../shared/models/config.ts';
import { MAX_FRAME_HEADER_BYTES } from '../../shared/protocol/frame.ts';
import { RelayError } from '../errors.ts';
import { countRefusals, errorResponses } from './common.ts';
import { RelaySendsUpdateAck, TaskParams, type Static } from './schemas.ts';

export type UpdateRouteOptions = { maxBodyBytes: number };

export const updateRoutes: FastifyPluginAsync<UpdateRouteOptions> = async (app, opts) => {
  countRefusals(app);
  app.post<{ Params: Static<typeof TaskParams>; Body: Buffer }>('/api/tasks/:taskId/update', {
    config: { body: 'binary' },
    bodyLimit: opts.maxBodyBytes,
    schema: { params: TaskParams, response: { 200: RelaySendsUpdateAck, ...errorResponses } },
    onRequest: async (req) => {
      app.scheduler.guard.limit('uploadsPerAddress', req.ip, Date.now());
      const declared = Number(req.headers['content-length']);
      if (!Number.isFinite(declared)) return; // chunked: the route's bodyLimit stops it while streaming
      const task = app.store.getTask((req.params as { taskId: string }).taskId);
      const job = task && app.store.getJob(task.jobId);
      const n = job ? paramCount(job.model) : 0;
      // the frame can hold an fp32 update at most, plus its JSON header
      const limit = job ? Math.max(encodedByteBound(n, { kind: 'fp32' }), encodedByteBound(n, job.hyperparameters.compression)) + 8 + MAX_FRAME_HEADER_BYTES : opts.maxBodyBytes;
      if (declared > Math.min(limit, opts.maxBodyBytes)) {
        throw new RelayError('TT_ERR_BODY_TOO_LARGE', `update body of ${declared} bytes exceeds the ${Math.min(limit, opts.maxBodyBytes)}-byte limit for this task; encode with the task's compression`);
      }
    },
  }, async (req) => {
    const body = req.body;
    const sig = req.headers['x-tabtrain-signature'];
    return app.scheduler.intakeUpdate(req.params.taskId, new Uint8Array(body.buffer, body.byteOffset, body.byteLength), typeof sig === 'string' ? sig : undefined);
  });
};
