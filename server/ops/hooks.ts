// What the operator plugin does when the relay's state changes, as subscriptions to the store's events
// (server/store/types.ts StoreEvents), so the relay's code knows nothing of it: a committed round is
// audited (with the ids of its updates) inside the round's own transaction, and every stored
// evaluation passes the loss-regression guardrail (rollback, or pause for review).
// Evaluation itself, every model kind, is the scheduler's (server/scheduler/evaluation.ts); so are the
// stopping rules, which hear the same events.
import type { FastifyInstance } from 'fastify';
import { runGuardrail } from './guardrail-act.ts';

export function installStoreHooks(app: FastifyInstance): void {
  const offRound = app.stores.onCommitting('round-committed', async (e, tx) => {
    await tx.ops.appendAudit({ actor: 'relay', action: 'round.accept', jobId: e.jobId, detail: { version: e.version, hash: e.hash, updates: e.taskIds } }, e.at);
  });
  // every job has a guardrail, the default job too (./guardrail-act.ts)
  const offEval = app.stores.on('eval-stored', (e) => runGuardrail(app, e.jobId, e.earlier, e.eval));
  app.addHook('onClose', async () => { offRound(); offEval(); });
}
