// Carries out the guardrail's decision (./guardrail.ts) on a freshly evaluated version: rolls the job back
// to its best version (quarantining the updates of the dropped versions, which the rollback discards, and
// striking the volunteers whose update alone would have tripped the guardrail), or pauses it for review.
// Either way one `job.guardrail` audit entry says what was decided and why.
import type { FastifyInstance } from 'fastify';
import { decodeUpdate, toDense } from '../../shared/codec/index.ts';
import { decodeTokenShard } from '../../shared/data/token-shard.ts';
import { paramCount } from '../../shared/models/config.ts';
import type { Eval } from '../../shared/protocol/messages.ts';
import { mlpEvaluate } from '../../shared/reference/mlp.ts';
import { dataset } from '../data/datasets.ts';
import { outerStep } from '../scheduler/outer-step.ts';
import type { JobRow } from '../store/types.ts';
import { gptEvaluate } from './eval-gpt.ts';
import { culprits, guardrailDecision, UNSUBMITTED_JOB_GUARDRAIL, type Regression, type Weighed } from './guardrail.ts';


/** Updates of the regressed round weighed one by one, at most: each costs one held-out evaluation on the
 * relay's event loop (≈ 0.2–0.5 s for the MNIST job), and this runs only when a version regressed. */
const MAX_WEIGHED = 8;

export async function runGuardrail(app: FastifyInstance, jobId: string, earlier: Eval[], latest: Eval): Promise<void> {
  const { relay } = app.stores;
  const job = await relay.getJob(jobId);
  if (!job || job.status !== 'running') return;
  // every job has a guardrail: a submitted job's own threshold, or the relay's for the others (the default job)
  const maxLossRise = (await app.stores.ops.getOpsJob(jobId))?.maxLossRise ?? UNSUBMITTED_JOB_GUARDRAIL.maxLossRise;
  let best: Eval | undefined;
  for (const e of earlier) if (e.version < latest.version && Number.isFinite(e.loss) && (!best || e.loss < best.loss)) best = e;
  if (!best || (Number.isFinite(latest.loss) && latest.loss - best.loss <= maxLossRise)) return; // the common case, cheaply
  const bestAt = (await relay.listCheckpoints(jobId)).find((c) => c.version === best.version)?.at;
  // guardrail rollbacks to this version since its checkpoint was written (a version number re-made after a
  // rollback starts a new count; the audit log is the record)
  const rollbacks = bestAt === undefined ? 0 : await app.stores.ops.guardrailRollbacksTo(jobId, best.version, bestAt);
  const d = guardrailDecision(earlier, latest, maxLossRise, rollbacks, bestAt !== undefined);
  if (!d) return;
  if (d.action === 'pause') {
    await app.stores.transaction(async (tx) => {
      const now = Date.now();
      await tx.relay.setJobStatus(jobId, 'paused', now);
      await tx.ops.appendAudit({ actor: 'guardrail', action: 'job.guardrail', jobId, detail: { ...d.regression, decision: 'pause', rollbacks: d.rollbacks, from: 'running', to: 'paused' } }, now);
    });
    app.log.warn({ job: jobId, ...d.regression, rollbacks: d.rollbacks }, 'guardrail: held-out loss regressed again after rollbacks, job paused for review: running=>paused');
    return;
  }
  // weighed before the rollback drops the regressed version's base and payload rows from view
  const weighed = await weighRound(app, job, d.regression);
  const struck = weighed ? culprits(weighed.baseLoss, weighed.updates, maxLossRise) : [];
  // the updates that made the dropped versions: the rollback marks them discarded (out of every later round
  // and of the norm bound's history); the audit names them
  const quarantined = await relay.appliedAfter(jobId, d.to);
  const now = Date.now();
  await app.stores.transaction(async (tx) => {
    await tx.relay.rollback(jobId, d.to, now);
    // leases on dropped versions can never be accepted: ended now, so their round slots free at once
    const leasesEnded = await tx.relay.endLeases(jobId, d.to);
    for (const w of struck) await app.scheduler.guard.outcome(w.volunteerId, 'invalid', now, tx.defence);
    await tx.ops.appendAudit({
      actor: 'guardrail', action: 'job.guardrail', jobId,
      detail: {
        ...d.regression, decision: 'rollback', fromVersion: job.version, toVersion: d.to, hash: await tx.relay.versionHash(jobId, d.to),
        status: 'running', leasesEnded, quarantined: { count: quarantined.length, taskIds: quarantined.slice(0, 100) },
        weighed: weighed ? { baseLoss: weighed.baseLoss, updates: weighed.updates } : null,
        struck: struck.map((w) => ({ taskId: w.taskId, volunteerId: w.volunteerId, loss: w.loss })),
      },
    }, now);
  });
  app.log.warn({ job: jobId, ...d.regression, to: d.to, struck: struck.map((w) => w.volunteerId) }, `guardrail: held-out loss regressed, job rolled back: version ${job.version}=>${d.to}`);
}

/** Each update of the round that made the regressed version, applied alone (as the whole round, one outer
 * step from that round's base) and evaluated on the held-out split; undefined when that cannot be done
 * (base checkpoint or held-out data gone). */
async function weighRound(app: FastifyInstance, job: JobRow, r: Regression): Promise<{ baseLoss: number; updates: Weighed[] } | undefined> {
  try {
    const base = await app.stores.relay.getVersion(job.jobId, r.version - 1);
    const evaluate = await heldOutLoss(app, job);
    if (!base || !evaluate) return undefined;
    const h = job.hyperparameters;
    const n = paramCount(job.model);
    const updates = (await app.stores.relay.appliedUpdates(job.jobId, r.version)).slice(0, MAX_WEIGHED).map((u) => {
      const alone = outerStep(base.params, base.momentum, toDense(decodeUpdate(u.payload, n)), h.outerLr, h.outerMomentum);
      return { taskId: u.taskId, volunteerId: u.volunteerId, loss: evaluate(alone.params) };
    });
    return { baseLoss: evaluate(base.params), updates };
  } catch (err) {
    app.log.error({ err, job: job.jobId, version: r.version }, 'guardrail: weighing the regressed round failed; nobody is struck');
    return undefined;
  }
}

async function heldOutLoss(app: FastifyInstance, job: JobRow): Promise<((params: Float32Array) => number) | undefined> {
  const model = job.model;
  if (model.kind === 'mlp') {
    const heldOut = dataset(job.dataset.name).heldOut;
    return heldOut ? (p) => mlpEvaluate(model, p, heldOut).loss : undefined;
  }
  const heldOut = await app.stores.ops.loadHeldOut(job.jobId);
  if (!heldOut) return undefined;
  const tokens = decodeTokenShard(heldOut);
  return (p) => gptEvaluate(model, p, tokens).loss;
}

