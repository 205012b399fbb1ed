// Watches the relay's store for the events the operator plugin must act on, without changing the relay:
// a committed round is audited (with the ids of its updates) in the same transaction; every evaluation
// passes the loss-regression guardrail (rollback, or pause for review). Evaluation itself, every model
// kind, is the scheduler's (server/scheduler/evaluation.ts).
import type { FastifyInstance } from 'fastify';
import type { Eval } from '../../shared/protocol/messages.ts';
import { appendAudit } from './audit.ts';
import { runGuardrail } from './guardrail-act.ts';

export function installStoreHooks(app: FastifyInstance): void {
  const { store, db } = app;
  const commitRound = store.commitRound.bind(store);
  const putEval = store.putEval.bind(store);

  store.commitRound = (jobId, next, taskIds, now) => db.transaction(() => {
    const committed = commitRound(jobId, next, taskIds, now);
    if (committed) appendAudit(db, { actor: 'relay', action: 'round.accept', jobId, detail: { version: next.version, hash: next.hash, updates: taskIds } }, now);
    return committed;
  })();

  store.putEval = (jobId, e) => {
    const earlier = store.listEvals(jobId);
    putEval(jobId, e);
    guard(app, jobId, earlier, e);
  };
}

/** Every evaluation passes the guardrail (./guardrail-act.ts): every job has one, the default job too. */
function guard(app: FastifyInstance, jobId: string, earlier: Eval[], latest: Eval): void {
  runGuardrail(app, jobId, earlier, latest);
}
