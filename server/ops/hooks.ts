// Watches the relay's store for the events the operator plugin must act on, without changing the relay:
// a committed round is audited (with the ids of its updates) in the same transaction, then evaluated when
// the relay cannot (GPT); every evaluation passes the loss-regression guardrail (rollback, or pause for review).
import type { FastifyInstance } from 'fastify';
import type { Eval } from '../../shared/protocol/messages.ts';
import { decodeTokenShard } from '../../shared/data/token-shard.ts';
import { kindOf } from '../../shared/models/registry.ts';
import { appendAudit } from './audit.ts';
import { evalTokens } from './eval-gpt.ts';
import { runGuardrail } from './guardrail-act.ts';
import { PoolClosedError } from '../pool/index.ts';
import { loadHeldOut } from './store.ts';

export function installStoreHooks(app: FastifyInstance): void {
  const { store, db } = app;
  const commitRound = store.commitRound.bind(store);
  const putEval = store.putEval.bind(store);

  store.commitRound = (jobId, next, taskIds, now) => {
    db.transaction(() => {
      commitRound(jobId, next, taskIds, now);
      appendAudit(db, { actor: 'relay', action: 'round.accept', jobId, detail: { version: next.version, hash: next.hash, updates: taskIds } }, now);
    })();
    const model = store.getJob(jobId)?.model;
    if (model && !kindOf(model).relayEvaluates) setImmediate(() => void evaluateGpt(app, jobId, next.version));
  };

  store.putEval = (jobId, e) => {
    const earlier = store.listEvals(jobId);
    putEval(jobId, e);
    guard(app, jobId, earlier, e);
  };
}

/** Evaluates a GPT job's version on its held-out text, on the worker pool, and stores it when it lands
 * (which runs the guardrail). Only the windows it reads travel to the worker. */
export function evaluateGpt(app: FastifyInstance, jobId: string, version: number): Promise<void> {
  let input;
  try {
    const job = app.store.getJob(jobId);
    const heldOut = loadHeldOut(app.db, jobId);
    if (!job || !app.store.versionHash(jobId, version) || !heldOut || job.model.kind !== 'gpt') return Promise.resolve();
    // the worker reads the params from the database file itself: the event loop never touches them
    input = { kind: 'gpt-eval' as const, config: job.model, params: { db: app.db.name, jobId, version }, ...evalTokens(job.model, decodeTokenShard(heldOut)) };
  } catch (err) {
    app.log.error({ err, job: jobId, version }, 'GPT evaluation failed');
    return Promise.resolve();
  }
  return app.pool.run(input).then((r) => {
    if (!app.store.getJob(jobId)) return;
    app.store.putEval(jobId, { version, loss: r.loss, accuracy: r.accuracy, at: Date.now() });
    app.log.info({ job: jobId, version, loss: r.loss, accuracy: r.accuracy }, 'version evaluated');
    app.scheduler.stopping.check(jobId, { needEval: true }); // a stopping rule waits for this evaluation
  }).catch((err: unknown) => {
    if (!(err instanceof PoolClosedError)) app.log.error({ err, job: jobId, version }, 'GPT evaluation failed');
  });
}

/** Every evaluation passes the guardrail (./guardrail-act.ts): every job has one, the default job too. */
function guard(app: FastifyInstance, jobId: string, earlier: Eval[], latest: Eval): void {
  runGuardrail(app, jobId, earlier, latest);
}
