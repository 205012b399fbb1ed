// Turning a submission (job.json + dataset bytes) into a pending job: check the spec, prepare the
// dataset and encode its shards (on the worker pool: a 16 MiB CSV is seconds of parsing), store them,
// create the job in the relay (status pending: nobody but its researcher and the operators see it until
// an operator approves), and audit it. Every refusal names the field. A researcher's submissions are
// rate limited and their pending jobs capped (count and stored bytes): each one costs the relay disk
// (shards plus the version-0 checkpoint) and CPU before any operator has looked at it.
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { checkSubmission, checkTaskSize, checkUsefulness, checkVersionSize, defaultGuardrail, SpecError, type JobSubmission } from '../../shared/jobs/spec.ts';
import { paramCount } from '../../shared/models/config.ts';
import { kindOf } from '../../shared/models/registry.ts';
import type { JobSpec } from '../store/types.ts';
import { resolveJobHyperparameters } from '../defence/default.ts';
import { RateLimiter } from '../defence/rate-limit.ts';
import { actorOf } from './auth.ts';
import { OpsError } from './errors.ts';
import type { Principal } from './tokens.ts';

export const UPLOAD_PREFIX = 'upload:';

/** Per researcher (operators are not limited): a burst of submissions, then one per SUBMIT_REFILL_S. */
export const SUBMIT_BURST = 12;
export const SUBMIT_REFILL_S = 300;
/** Per researcher: pending (unapproved) jobs at once, and the bytes they hold on the relay (shards +
 * the fp32 version-0 params, 4 bytes a parameter; its zero momentum is stored empty). */
export const MAX_PENDING_JOBS = 4;
export const MAX_PENDING_BYTES = 512 * 1024 * 1024;

export type Submitted = { jobId: string; status: 'pending' | 'running'; name: string; model: JobSpec['model']; paramCount: number; dataset: JobSpec['dataset']; datasetSha256: string };

export type SubmitLimits = { limiter: RateLimiter; preparing: Set<string> };

export const createSubmitLimits = (): SubmitLimits => ({
  limiter: new RateLimiter({ capacity: SUBMIT_BURST, refillPerSecond: 1 / SUBMIT_REFILL_S, maxKeys: 10_000 }),
  preparing: new Set(),
});

/** The relay's disk a job holds: its stored shards and its version-0 checkpoint. */
const heldBytes = async (app: FastifyInstance, jobId: string, params: number): Promise<number> =>
  (await app.stores.ops.shardBytes(jobId)) + 4 * params;

/** Refuses with 429 before any work when this researcher is over a limit. The submission rate limiter
 * and the set of submissions being prepared live in this process. */
async function checkLimits(app: FastifyInstance, who: Principal, limits: SubmitLimits): Promise<void> {
  if (who.role === 'operator') return;
  if (limits.preparing.has(who.tokenId)) {
    const e = new OpsError('TT_ERR_RATE_LIMITED', 'another submission of yours is still being prepared; wait for its answer, then submit the next');
    e.retryAfterSeconds = 5;
    throw e;
  }
  const pending = await app.stores.ops.pendingJobsOf(who.tokenId);
  if (pending.length >= MAX_PENDING_JOBS) {
    throw new OpsError('TT_ERR_PENDING_LIMIT', `you have ${pending.length} jobs waiting for approval, the most a researcher may have; ask an operator to approve or remove one (${pending.join(', ')}) before submitting another`);
  }
  let held = 0;
  for (const jobId of pending) held += await heldBytes(app, jobId, paramCount((await app.stores.relay.getJob(jobId))!.model));
  if (held >= MAX_PENDING_BYTES) {
    throw new OpsError('TT_ERR_PENDING_LIMIT', `your jobs waiting for approval hold ${held} bytes on the relay, over the ${MAX_PENDING_BYTES}-byte limit; wait for an operator to approve them before submitting another`);
  }
  const d = limits.limiter.take(who.tokenId, app.now());
  if (!d.ok) {
    const e = new OpsError('TT_ERR_RATE_LIMITED', `a researcher may submit ${SUBMIT_BURST} jobs at once and then one every ${SUBMIT_REFILL_S} s; retry in ${d.retryAfterSeconds} s`);
    e.retryAfterSeconds = d.retryAfterSeconds;
    throw e;
  }
}

export async function submitJob(app: FastifyInstance, who: Principal, specText: string | undefined, data: Uint8Array | undefined, limits: SubmitLimits): Promise<Submitted> {
  if (specText === undefined) throw new OpsError('TT_ERR_JOB_SPEC', 'spec: is required: send the job.json text as the "spec" field', 'spec');
  if (data === undefined) throw new OpsError('TT_ERR_JOB_SPEC', 'dataset: is required: attach the data file as the "data" field', 'dataset');
  let raw: unknown;
  try { raw = JSON.parse(specText); } catch (e) {
    throw new OpsError('TT_ERR_JOB_SPEC', `spec: is not valid JSON (${(e as Error).message}); send job.json as it is on disk`, 'spec');
  }
  await checkLimits(app, who, limits);
  limits.preparing.add(who.tokenId);
  try {
    return await createJobFromData(app, { tokenId: who.tokenId, name: who.name, actor: actorOf(who) }, checkSubmission(raw), data, 'pending');
  } catch (e) {
    if (e instanceof SpecError) throw new OpsError('TT_ERR_JOB_SPEC', e.message, e.field);
    throw e;
  } finally {
    limits.preparing.delete(who.tokenId);
  }
}

/** Who a job is created for: a researcher's token, or the relay itself (demo jobs). */
export type JobOwner = { tokenId: string; name: string; actor: string };

/** Prepares the dataset and creates the job (checked spec, shards, version 0, audit), as a submission
 * does; the relay's demo jobs (./demo.ts) are made the same way, running at once. Throws SpecError. */
export async function createJobFromData(app: FastifyInstance, owner: JobOwner, job: JobSubmission, data: Uint8Array, status: 'pending' | 'running', fixedId?: string): Promise<Submitted> {
  const prepared = await app.pool.run({ kind: 'dataset', job, bytes: data });
  if (!prepared.ok) throw new SpecError(prepared.field, prepared.problem);
  const { model, shards, heldOut } = prepared;
  const slug = job.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'job';
  const jobId = fixedId ?? `${slug}-${randomBytes(3).toString('hex')}`;
  const spec: JobSpec = {
    name: job.name, researcher: owner.name, description: job.description ?? '', model,
    hyperparameters: resolveJobHyperparameters(model, job),
    dataset: { name: UPLOAD_PREFIX + jobId, shards: shards.length, heldOut: prepared.heldOutCount },
  };
  checkUsefulness(model, spec.hyperparameters);
  checkTaskSize(model, spec.hyperparameters);
  checkVersionSize(model);
  // version 0's params (19M random draws for the largest model) are drawn on the pool too
  const initial = await app.pool.run({ kind: 'init', model, seed: 1 });
  const datasetSha256 = createHash('sha256').update(data).digest('hex');
  const now = app.now();
  await app.stores.transaction(async (tx) => {
    await tx.ops.insertOpsJob({
      jobId, ownerTokenId: owner.tokenId, ownerName: owner.name, maxLossRise: job.guardrail?.maxLossRise ?? defaultGuardrail.maxLossRise,
      tokenizer: prepared.tokenizer, datasetKind: prepared.kind, submittedAt: now,
    }, shards, heldOut);
    await app.scheduler.createJob(jobId, spec, status, 1, initial, tx);
    await tx.ops.appendAudit({
      actor: owner.actor, action: 'job.submit', jobId,
      detail: { name: job.name, model, hyperparameters: spec.hyperparameters, dataset: { ...spec.dataset, format: job.dataset.format, bytes: data.length, sha256: datasetSha256 } },
    }, now);
  });
  // version 0's held-out loss lands later, from the worker pool (createJob asked for it); the caller is answered now
  return { jobId, status, name: job.name, model, paramCount: paramCount(model), dataset: spec.dataset, datasetSha256 };
}
