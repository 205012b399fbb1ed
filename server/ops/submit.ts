// Turning a submission (job.json + dataset bytes) into a pending job: check the spec, prepare the
// dataset, store its shards, create the job in the relay (status pending: no volunteer sees it until an
// operator approves), and audit it. Every refusal names the field.
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { encodeShard } from '../../shared/data/shard.ts';
import { encodeTokenShard } from '../../shared/data/token-shard.ts';
import { prepareDataset, resolveModel } from '../../shared/jobs/dataset.ts';
import { checkSubmission, checkTaskSize, checkUsefulness, defaultGuardrail, resolveHyperparameters, SpecError } from '../../shared/jobs/spec.ts';
import { paramCount } from '../../shared/models/config.ts';
import type { JobSpec } from '../store/types.ts';
import { appendAudit } from './audit.ts';
import { actorOf } from './auth.ts';
import { OpsError } from './errors.ts';
import { evaluateGpt } from './hooks.ts';
import { insertOpsJob } from './store.ts';
import type { Principal } from './tokens.ts';

export const UPLOAD_PREFIX = 'upload:';

export type Submitted = { jobId: string; status: 'pending'; name: string; model: JobSpec['model']; paramCount: number; dataset: JobSpec['dataset']; datasetSha256: string };

export function submitJob(app: FastifyInstance, who: Principal, specText: string | undefined, data: Uint8Array | undefined): Submitted {
  if (specText === undefined) throw new OpsError('TT_ERR_JOB_SPEC', 'spec: is required: send the job.json text as the "spec" field', 'spec');
  if (data === undefined) throw new OpsError('TT_ERR_JOB_SPEC', 'dataset: is required: attach the data file as the "data" field', 'dataset');
  let raw: unknown;
  try { raw = JSON.parse(specText); } catch (e) {
    throw new OpsError('TT_ERR_JOB_SPEC', `spec: is not valid JSON (${(e as Error).message}); send job.json as it is on disk`, 'spec');
  }
  try {
    const job = checkSubmission(raw);
    const prepared = prepareDataset(job, data);
    const model = resolveModel(job, prepared);
    const slug = job.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'job';
    const jobId = `${slug}-${randomBytes(3).toString('hex')}`;
    const shards = prepared.kind === 'text' ? prepared.train.map(encodeTokenShard) : prepared.train.map(encodeShard);
    const heldOut = prepared.kind === 'text' ? encodeTokenShard(prepared.heldOut) : encodeShard(prepared.heldOut);
    const heldOutCount = prepared.kind === 'text' ? prepared.heldOut.tokens.length : prepared.heldOut.n;
    const spec: JobSpec = {
      name: job.name, researcher: who.name, description: job.description ?? '', model,
      hyperparameters: resolveHyperparameters(job),
      dataset: { name: UPLOAD_PREFIX + jobId, shards: shards.length, heldOut: heldOutCount },
    };
    checkUsefulness(model, spec.hyperparameters);
    checkTaskSize(model, spec.hyperparameters);
    const datasetSha256 = createHash('sha256').update(data).digest('hex');
    const now = Date.now();
    app.db.transaction(() => {
      insertOpsJob(app.db, {
        jobId, ownerTokenId: who.tokenId, ownerName: who.name, maxLossRise: job.guardrail?.maxLossRise ?? defaultGuardrail.maxLossRise,
        tokenizer: prepared.kind === 'text' ? prepared.tokenizer : null, datasetKind: prepared.kind, submittedAt: now,
      }, shards, heldOut);
      app.scheduler.createJob(jobId, spec, 'pending');
      appendAudit(app.db, {
        actor: actorOf(who), action: 'job.submit', jobId,
        detail: { name: job.name, model, hyperparameters: spec.hyperparameters, dataset: { ...spec.dataset, format: job.dataset.format, bytes: data.length, sha256: datasetSha256 } },
      }, now);
    })();
    if (model.kind === 'gpt') evaluateGpt(app, jobId, 0);
    return { jobId, status: 'pending', name: job.name, model, paramCount: paramCount(model), dataset: spec.dataset, datasetSha256 };
  } catch (e) {
    if (e instanceof SpecError) throw new OpsError('TT_ERR_JOB_SPEC', e.message, e.field);
    throw e;
  }
}
