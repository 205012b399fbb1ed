// Watches the relay's store for the events the operator plugin must act on, without changing the relay:
// a committed round is audited (with the ids of its updates) in the same transaction, then evaluated when
// the relay cannot (GPT); every evaluation passes the loss-regression guardrail (rollback, or pause for review).
import type { FastifyInstance } from 'fastify';
import type { Eval } from '../../shared/protocol/messages.ts';
import { decodeTokenShard } from '../../shared/data/token-shard.ts';
import { appendAudit } from './audit.ts';
import { gptEvaluate } from './eval-gpt.ts';
import { runGuardrail } from './guardrail-act.ts';
import { loadShards } from './store.ts';

export function installStoreHooks(app: FastifyInstance): void {
  const { store, db } = app;
  const commitRound = store.commitRound.bind(store);
  const putEval = store.putEval.bind(store);

  store.commitRound = (jobId, next, taskIds, now) => {
    db.transaction(() => {
      commitRound(jobId, next, taskIds, now);
      appendAudit(db, { actor: 'relay', action: 'round.accept', jobId, detail: { version: next.version, hash: next.hash, updates: taskIds } }, now);
    })();
    if (store.getJob(jobId)?.model.kind === 'gpt') setImmediate(() => evaluateGpt(app, jobId, next.version));
  };

  store.putEval = (jobId, e) => {
    const earlier = store.listEvals(jobId);
    putEval(jobId, e);
    guard(app, jobId, earlier, e);
  };
}

/** Evaluates a GPT job's version on its held-out text and stores it (which runs the guardrail). */
export function evaluateGpt(app: FastifyInstance, jobId: string, version: number): void {
  try {
    const job = app.store.getJob(jobId);
    const v = app.store.getVersion(jobId, version);
    const data = loadShards(app.db, jobId);
    if (!job || !v || !data || job.model.kind !== 'gpt') return;
    const r = gptEvaluate(job.model, v.params, decodeTokenShard(data.heldOut));
    app.store.putEval(jobId, { version, loss: r.loss, accuracy: r.accuracy, at: Date.now() });
    app.log.info({ job: jobId, version, loss: r.loss, accuracy: r.accuracy }, 'version evaluated');
  } catch (err) {
    app.log.error({ err, job: jobId, version }, 'GPT evaluation failed');
  }
}

/** Every evaluation passes the guardrail (./guardrail-act.ts): every job has one, the default job too. */
function guard(app: FastifyInstance, jobId: string, earlier: Eval[], latest: Eval): void {
  runGuardrail(app, jobId, earlier, latest);
}
