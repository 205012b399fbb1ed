// One task must not be a denial of service: a job could ask for 100,000 inner steps of batch 65,536, and
// the relay reruns a disputed MLP task on its own CPU to break a spot check's tie. Submissions over the
// task-size limits (shared/jobs/spec.ts LIMITS) are refused with 400 naming the field; ordinary jobs pass.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LIMITS, taskMultiplyAdds } from '../../shared/jobs/spec.ts';
import { defaultMlp } from '../../shared/models/config.ts';
import { mnistHyperparameters } from '../../server/default-job.ts';
import { labelledJson, mlpJob, startOpsRelay, submit, type OpsRelay } from '../ops/helpers.ts';

let relay: OpsRelay;
beforeAll(async () => { relay = await startOpsRelay(); });
afterAll(async () => { await relay.stop(); });

const withHp = (hp: Record<string, unknown>, model: Record<string, unknown> = { kind: 'mlp', hidden: [4] }) =>
  mlpJob({ model, hyperparameters: { updatesPerRound: 1, quorum: 1, ...hp } });

it('refuses 100,000 steps, batch 65,536, and a task too costly for the relay to rerun, naming the field', async () => {
  const cases: [unknown, RegExp][] = [
    [withHp({ steps: 100_000 }), /^hyperparameters\.steps: must be at most 10000/],
    [withHp({ batchSize: 65_536 }), /^hyperparameters\.batchSize: must be at most 8192/],
    [withHp({ steps: 2000, batchSize: 4096 }, { kind: 'mlp', hidden: [2048, 2048] }), /^hyperparameters\.steps: one task costs .* G multiply-adds .* over the limit of 2 G/],
  ];
  for (const [spec, message] of cases) {
    const r = await submit(relay.url, relay.alice, spec, labelledJson());
    expect(r.status, JSON.stringify(r.body)).toBe(400);
    expect(r.body.error.code).toBe('TT_ERR_JOB_SPEC');
    expect(r.body.error.message).toMatch(message);
  }
  expect((await submit(relay.url, relay.alice, withHp({ steps: 20, batchSize: 32 }), labelledJson())).status).toBe(201);
});

it('the default MNIST task is well inside the MLP limit', () => {
  expect(taskMultiplyAdds(defaultMlp, mnistHyperparameters) * 10).toBeLessThan(LIMITS.mlpTaskMultiplyAdds);
});
