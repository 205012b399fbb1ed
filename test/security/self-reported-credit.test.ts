// Attack I: credit was whatever the update header claimed. A header with samples 2^53 − 1 and computeMs
// 1e308 was accepted; the public leaderboard showed that credit and /metrics 1.5e14 samples/s. Credit now
// comes from the leased task (steps × batch size, which the relay set) and the measured compute time is
// clamped to how long the lease has been out.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { defaultMlp, paramCount } from '../../shared/models/config.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { frame, lease, metric, payloadOf, small, upload } from './helpers.ts';

const N = paramCount(defaultMlp);
let relay: TestRelay;
beforeAll(async () => {
  relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 1000, quorum: 1000 }, defence: { replication: { baseRate: 0 } } });
});
afterAll(async () => { await relay.stop(); });

it('a header claiming 2^53 − 1 samples and 1e308 ms is credited what the task was: steps × batch size', async () => {
  const v = await registerSigned(relay.url, 'inflator');
  const task = await lease(v);
  const r = await upload(relay, v, task, frame(task, v.volunteerId, payloadOf(task, small(N)), { samples: Number.MAX_SAFE_INTEGER, computeMs: 1e308 }));
  expect(r.status).toBe(200);
  const stored = relay.app.store.listUpdates('mnist-mlp').find((u) => u.taskId === task.taskId)!;
  expect(stored.samples).toBe(task.steps * task.batchSize); // 20 × 32 = 640
  // the claim is clamped to the time from the lease to the upload's intake
  expect(stored.computeMs).toBe(stored.acceptedAt - relay.app.store.getTask(task.taskId)!.issuedAt);
  expect(stored.computeMs).toBeLessThan(task.deadline - relay.app.store.getTask(task.taskId)!.issuedAt);

  const snapshot = await (await fetch(`${relay.url}/api/ops/snapshot`)).json() as { leaderboard: { volunteerId: string; credit: number }[]; throughput: { samplesPerSec: number } };
  const mine = snapshot.leaderboard.find((e) => e.volunteerId === v.volunteerId)!;
  expect(mine.credit).toBe(640);
  // one task's 640 samples over a window of at least a second
  expect(snapshot.throughput.samplesPerSec).toBeLessThanOrEqual(640);
  expect(await metric(relay, 'tabtrain_samples_per_second')).toBeLessThanOrEqual(640);
});
