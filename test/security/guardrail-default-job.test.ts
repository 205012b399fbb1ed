// Attack F, the guardrail: the default job had none (it returned early for a job without an ops row), and
// on a submitted job its answer to a regression was to pause, so two Sybils could stop anyone's job. Now
// every job is guarded, and a regressed version is rolled back (the updates that made it quarantined, the
// identities whose update alone would have tripped it struck) instead of the job being paused; only a job
// that keeps regressing to the same best version is paused for a human.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mnistHyperparameters } from '../../server/default-job.ts';
import { priorNormBound } from '../../server/defence/validate.ts';
import { culprits, guardrailDecision, MAX_GUARDRAIL_ROLLBACKS } from '../../server/ops/guardrail.ts';
import { listAudit } from '../../server/ops/audit.ts';
import { defaultMlp, paramCount } from '../../shared/models/config.ts';
import { registerSigned } from '../helpers/identity.ts';
import { evals, startRelay, waitFor, type TestRelay } from '../helpers/relay.ts';
import { frame, lease, payloadOf, signFlood, upload } from './helpers.ts';

const N = paramCount(defaultMlp);
const e = (version: number, loss: number) => ({ version, loss, accuracy: 0, at: version });
const guardrailEntries = (relay: TestRelay, jobId = 'mnist-mlp') => listAudit(relay.app.db, { jobId, limit: 1000 }).filter((a) => a.action === 'job.guardrail');

describe('the decision', () => {
  it('rolls back to the best version while it can, and pauses only after repeated rollbacks to it', () => {
    const earlier = [e(0, 2.3), e(1, 1.0), e(2, 1.4)];
    expect(guardrailDecision(earlier, e(3, 1.9), 1.0, 0)).toBeNull();
    expect(guardrailDecision(earlier, e(3, 2.1), 1.0, 0)).toMatchObject({ action: 'rollback', to: 1, regression: { bestVersion: 1, version: 3 } });
    expect(guardrailDecision(earlier, e(3, NaN), 1.0, MAX_GUARDRAIL_ROLLBACKS - 1)).toMatchObject({ action: 'rollback', to: 1 });
    expect(guardrailDecision(earlier, e(3, 2.1), 1.0, MAX_GUARDRAIL_ROLLBACKS)).toMatchObject({ action: 'pause', rollbacks: MAX_GUARDRAIL_ROLLBACKS });
    expect(guardrailDecision(earlier, e(3, 2.1), 1.0, 0, false)).toMatchObject({ action: 'pause' }); // no checkpoint to go back to
  });

  it('strikes only the updates that alone would have tripped it', () => {
    const w = (volunteerId: string, loss: number) => ({ taskId: `t-${volunteerId}`, volunteerId, loss });
    expect(culprits(2.0, [w('honest', 1.9), w('sybil', 9.5), w('nan', NaN), w('edge', 3.0)], 1.0).map((x) => x.volunteerId)).toEqual(['sybil', 'nan']);
  });
});

describe('the default job, on a stored sequence of versions and evaluations', () => {
  let relay: TestRelay;
  beforeAll(async () => { relay = await startRelay({ evaluate: false }); });
  afterAll(async () => { await relay.stop(); });

  it('is guarded (it has no submission of its own): regressions roll it back, and the third rollback to one version is the last', async () => {
    const store = relay.app.stores.relay;
    const v0 = (await store.getVersion('mnist-mlp', 0))!;
    const commit = async () => {
      const version = (await store.getJob('mnist-mlp'))!.version + 1;
      const params = v0.params.map((x) => x + version * 1e-3);
      await store.commitRound('mnist-mlp', { version, params, momentum: new Float32Array(params.length), hash: `h${version}-${Math.random()}` }, [], Date.now());
      return version;
    };
    await store.putEval('mnist-mlp', e(0, 2.3));
    await store.putEval('mnist-mlp', e(await commit(), 1.0));
    await store.putEval('mnist-mlp', e(await commit(), 1.6)); // within 1.0 nat of the best: nothing happens
    expect(await store.getJob('mnist-mlp')).toMatchObject({ version: 2, status: 'running' });
    for (let i = 1; i <= MAX_GUARDRAIL_ROLLBACKS; i++) {
      await store.putEval('mnist-mlp', e(await commit(), 2.5));
      expect(await store.getJob('mnist-mlp')).toMatchObject({ version: 1, status: 'running' });
      expect((await store.listEvals('mnist-mlp')).map((x) => x.version)).toEqual([0, 1]);
      expect(guardrailEntries(relay).at(-1)!.detail).toMatchObject({ decision: 'rollback', toVersion: 1, bestVersion: 1, maxLossRise: 1, status: 'running' });
    }
    await store.putEval('mnist-mlp', e(await commit(), 2.5));
    expect(await store.getJob('mnist-mlp')).toMatchObject({ version: 2, status: 'paused' });
    expect(guardrailEntries(relay).at(-1)!.detail).toMatchObject({ decision: 'pause', rollbacks: MAX_GUARDRAIL_ROLLBACKS, from: 'running', to: 'paused' });
    expect(guardrailEntries(relay)).toHaveLength(MAX_GUARDRAIL_ROLLBACKS + 1);
  });
});

describe('Sybils whose updates pass the norm bound and still make a bad version', () => {
  let relay: TestRelay;
  // an inner lr 10× the default's lets each task move the model 10× further: the strongest updates the
  // norm bound lets through then do make a bad version, which must be undone without pausing the job
  const lr = 10 * mnistHyperparameters.adamw.lr;
  beforeAll(async () => {
    relay = await startRelay({ defaultJob: { adamw: { ...mnistHyperparameters.adamw, lr } }, defence: { replication: { baseRate: 0 } } });
  });
  afterAll(async () => { await relay.stop(); });

  it('are rolled back, quarantined and struck; the job keeps running at its best version', async () => {
    const before = (await waitFor(() => evals(relay.url), (x) => x.length > 0))[0];
    const bound = priorNormBound(N, { ...mnistHyperparameters, adamw: { ...mnistHyperparameters.adamw, lr } });
    const sybils = await Promise.all([0, 1, 2, 3].map((i) => registerSigned(relay.url, `sybil-${i}`)));
    const tasks = [];
    for (const v of sybils) {
      const task = await lease(v);
      tasks.push(task.taskId);
      expect((await upload(relay, v, task, frame(task, v.volunteerId, payloadOf(task, signFlood(N, 0.95 * bound, 0))))).status).toBe(200);
    }
    // K = 4: the round closes, version 1 is evaluated, regresses, and is rolled back
    const [g] = await waitFor(async () => guardrailEntries(relay), (x) => x.length > 0);
    expect(g.detail).toMatchObject({ decision: 'rollback', version: 1, fromVersion: 1, toVersion: 0, status: 'running', quarantined: { count: 4 } });
    const d = g.detail as { loss: number; struck: { volunteerId: string }[]; quarantined: { taskIds: string[] } };
    expect(d.quarantined.taskIds.sort()).toEqual([...tasks].sort());
    expect(d.struck.map((s) => s.volunteerId).sort()).toEqual(sybils.map((v) => v.volunteerId).sort());
    for (const v of sybils) expect((await relay.app.scheduler.guard.store.reputation(v.volunteerId))).toMatchObject({ state: 'suspect', strikes: 1 });
    expect(relay.app.store.getJob('mnist-mlp')).toMatchObject({ status: 'running', version: 0 });
    expect(await evals(relay.url)).toEqual([before]);
    console.log(`default job at inner lr ${lr}: held-out loss ${before.loss.toFixed(4)} before, ${d.loss.toFixed(4)} at the poisoned version 1, ${before.loss.toFixed(4)} after the rollback to version 0`);
    // and work goes on: the next task is based on version 0 again
    expect((await lease(await registerSigned(relay.url, 'honest'))).baseVersion).toBe(0);
  });
});
