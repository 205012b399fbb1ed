// POST /api/ops/jobs/estimate (no token needed: it stores nothing): what a job.json would cost (parameters, a volunteer's GPU memory, bytes
// per task each way) and the first refusal a submission of it would get, without a dataset upload. The
// dims the data would decide (a char vocabulary, an MLP's inputs and classes) may be sent. The submit
// form computes the same with the same function (shared/jobs/estimate.ts) as it is edited.
import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { estimateJob } from '../../shared/jobs/estimate.ts';

const Dims = Type.Object({
  vocab: Type.Optional(Type.Integer({ minimum: 2 })), inputs: Type.Optional(Type.Integer({ minimum: 1 })), classes: Type.Optional(Type.Integer({ minimum: 2 })),
}, { additionalProperties: false });
// the spec is checked by estimateJob itself, so a refusal names its field as a submission's would
const EstimateBody = Type.Object({ spec: Type.Unknown(), data: Type.Optional(Dims) }, { additionalProperties: false });

export const estimateRoutes: FastifyPluginAsync = async (app) => {
  app.post<{ Body: Static<typeof EstimateBody> }>('/api/ops/jobs/estimate', { schema: { body: EstimateBody }, config: { body: 'json', token: false } },
    async (req) => estimateJob(req.body.spec, req.body.data ?? {}));
};
