// Carries out the guardrail's decision (./guardrail.ts) on a freshly evaluated version: rolls the job back
// to its best version (quarantining the updates of the dropped versions, which the rollback discards, and
// striking the volunteers whose update alone would have tripped the guardrail), or pauses it for review.
// Either way one `job.guardrail` audit entry says what was decided and why.
import type { FastifyInstance } from 'fastify';
import { decodeUpdate, toDense } from '../../shared/codec/index.ts';
import { decodeTokenShard } from '../../shared/data/token-shard.ts';
import { paramCount, type GptConfig } from '../../shared/models/config.ts';
import type { Eval } from '../../shared/protocol/messages.ts';
import { kindOf } from '../../shared/models/registry.ts';
import { runtimeOf } from '../../shared/models/runtimes.ts';
import { dataset } from '../data/datasets.ts';
import { outerStep } from '../scheduler/outer-step.ts';
import type { JobRow } from '../store/types.ts';
import { appendAudit } from './audit.ts';
import { gptEvaluate } from './eval-gpt.ts';
import { culprits, guardrailDecision, UNSUBMITTED_JOB_GUARDRAIL, type Regression, type Weighed } from './guardrail.ts';
import { getOpsJob, loadShards } from './store.ts';

/** Updates of the regressed round weighed one by one, at most: each costs one held-out evaluation on the
 * relay's event loop (≈ 0.2–0.5 s for the MNIST job), and this runs only when a version regressed. */
const MAX_WEIGHED = 8;

export function runGuardrail(app: FastifyInstance, jobId: string, earlier: Eval[], latest: Eval): void {
  const job = app.store.getJob(jobId);
  if (!job || job.status !== 'running') return;
  // every job has a guardrail: a submitted job's own threshold, or the relay's for the others (the default job)
  const maxLossRise = getOpsJob(app.db, jobId)?.maxLossRise ?? UNSUBMITTED_JOB_GUARDRAIL.maxLossRise;
  let best: Eval | undefined;
  for (const e of earlier) if (e.version < latest.version && Number.isFinite(e.loss) && (!best || e.loss < best.loss)) best = e;
  if (!best || (Number.isFinite(latest.loss) && latest.loss - best.loss <= maxLossRise)) return; // the common case, cheaply
  const bestAt = app.store.versionHash(jobId, best.version) !== undefined ? checkpointAt(app, jobId, best.version) : undefined;
  const rollbacks = bestAt === undefined ? 0 : rollbacksTo(app, jobId, best.version, bestAt);
  const d = guardrailDecision(earlier, latest, maxLossRise, rollbacks, bestAt !== undefined);
  if (!d) return;
  if (d.action === 'pause') {
    app.db.transaction(() => {
      app.store.setJobStatus(jobId, 'paused');
      appendAudit(app.db, { actor: 'guardrail', action: 'job.guardrail', jobId, detail: { ...d.regression, decision: 'pause', rollbacks: d.rollbacks, from: 'running', to: 'paused' } });
    })();
    app.log.warn({ job: jobId, ...d.regression, rollbacks: d.rollbacks }, 'guardrail: held-out loss regressed again after rollbacks, job paused for review: running=>paused');
    return;
  }
  // weighed before the rollback drops the regressed version's base and payload rows from view
  const weighed = weighRound(app, job, d.regression);
  const struck = weighed ? culprits(weighed.baseLoss, weighed.updates, maxLossRise) : [];
  // the updates that made the dropped versions: the rollback marks them discarded (out of every later round
  // and of the norm bound's history); the audit names them
  const quarantined = (app.db.prepare('SELECT task_id AS taskId FROM updates WHERE job_id = ? AND applied_in > ? ORDER BY applied_in, accepted_at')
    .all(jobId, d.to) as { taskId: string }[]).map((u) => u.taskId);
  const now = Date.now();
  app.db.transaction(() => {
    app.store.rollback(jobId, d.to, now);
    // leases on dropped versions can never be accepted: ended now, so their round slots free at once
    const orphaned = app.db.prepare("SELECT task_id AS taskId FROM tasks WHERE job_id = ? AND state = 'issued' AND base_version > ?").all(jobId, d.to) as { taskId: string }[];
    for (const t of orphaned) app.store.rejectTask(t.taskId);
    for (const w of struck) app.scheduler.guard.outcome(w.volunteerId, 'invalid', now);
    appendAudit(app.db, {
      actor: 'guardrail', action: 'job.guardrail', jobId,
      detail: {
        ...d.regression, decision: 'rollback', fromVersion: job.version, toVersion: d.to, hash: app.store.versionHash(jobId, d.to),
        status: 'running', leasesEnded: orphaned.length, quarantined: { count: quarantined.length, taskIds: quarantined.slice(0, 100) },
        weighed: weighed ? { baseLoss: weighed.baseLoss, updates: weighed.updates } : null,
        struck: struck.map((w) => ({ taskId: w.taskId, volunteerId: w.volunteerId, loss: w.loss })),
      },
    }, now);
  })();
  app.log.warn({ job: jobId, ...d.regression, to: d.to, struck: struck.map((w) => w.volunteerId) }, `guardrail: held-out loss regressed, job rolled back: version ${job.version}=>${d.to}`);
}

/** When the version's checkpoint was written: a version number re-made after a rollback starts a new count. */
function checkpointAt(app: FastifyInstance, jobId: string, version: number): number | undefined {
  return (app.db.prepare('SELECT created_at AS at FROM versions WHERE job_id = ? AND version = ?').get(jobId, version) as { at: number } | undefined)?.at;
}

/** Guardrail rollbacks to this version since its checkpoint was written (the audit log is the record). */
function rollbacksTo(app: FastifyInstance, jobId: string, version: number, since: number): number {
  return (app.db.prepare(`SELECT COUNT(*) AS n FROM ops_audit WHERE job_id = ? AND action = 'job.guardrail' AND at >= ?
    AND json_extract(detail, '$.decision') = 'rollback' AND json_extract(detail, '$.toVersion') = ?`).get(jobId, since, version) as { n: number }).n;
}

/** Each update of the round that made the regressed version, applied alone (as the whole round, one outer
 * step from that round's base) and evaluated on the held-out split; undefined when that cannot be done
 * (base checkpoint or held-out data gone). */
function weighRound(app: FastifyInstance, job: JobRow, r: Regression): { baseLoss: number; updates: Weighed[] } | undefined {
  try {
    const base = app.store.getVersion(job.jobId, r.version - 1);
    const evaluate = heldOutLoss(app, job);
    if (!base || !evaluate) return undefined;
    const h = job.hyperparameters;
    const n = paramCount(job.model);
    const updates = app.store.appliedUpdates(job.jobId, r.version).slice(0, MAX_WEIGHED).map((u) => {
      const alone = outerStep(base.params, base.momentum, toDense(decodeUpdate(u.payload, n)), h.outerLr, h.outerMomentum);
      return { taskId: u.taskId, volunteerId: u.volunteerId, loss: evaluate(alone.params) };
    });
    return { baseLoss: evaluate(base.params), updates };
  } catch (err) {
    app.log.error({ err, job: job.jobId, version: r.version }, 'guardrail: weighing the regressed round failed; nobody is struck');
    return undefined;
  }
}

function heldOutLoss(app: FastifyInstance, job: JobRow): ((params: Float32Array) => number) | undefined {
  const model = job.model;
  if (kindOf(model).relayEvaluates) {
    const heldOut = dataset(job.dataset.name).heldOut;
    return heldOut ? (p) => runtimeOf(model).evaluate(model, p, heldOut).loss : undefined;
  }
  const data = loadShards(app.db, job.jobId);
  if (!data) return undefined;
  const tokens = decodeTokenShard(data.heldOut);
  return (p) => gptEvaluate(model as GptConfig, p, tokens).loss; // the kinds evaluated from stored token windows: the GPT
}
