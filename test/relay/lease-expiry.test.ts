// A volunteer that vanishes mid-task: its lease expires, its shard and seed are re-issued to another
// volunteer, and the round completes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, startVolunteers, waitFor, type TestRelay } from '../helpers/relay.ts';

describe('lease expiry and re-issue', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    // K = quorum = 2: the round cannot close on the timer without the vanished volunteer's share
    relay = await startRelay({ defaultJob: { updatesPerRound: 2, quorum: 2, leaseMs: 5000 } });
  });
  afterAll(async () => { await relay.stop(); });

  it('re-issues a vanished volunteer\'s task after its lease expires, and the round completes', async () => {
    // 1. a volunteer registers, leases a task, and vanishes
    const me = await registerSigned(relay.url, 'vanishing');
    const { volunteerId } = me;
    const vanished = await (await me.askForTask()).json() as Task;
    // 2. a working volunteer takes the other slot, then waits for work until the lease expires
    const vs = startVolunteers(relay.url, 1);
    const job = await waitFor(async () => (await (await fetch(`${relay.url}/api/jobs/mnist-mlp`)).json()) as { version: number }, (j) => j.version >= 1);
    await vs.stop();
    expect(job.version).toBeGreaterThanOrEqual(1);
    // 3. the vanished task expired, and a task with its shard and seed was re-issued and accepted
    const store = relay.app.store;
    expect(store.getTask(vanished.taskId)!.state).toBe('expired');
    const reissued = relay.app.db.prepare('SELECT task_id, shard, seed, state FROM tasks WHERE reissue_of = ?').get(vanished.taskId) as
      { task_id: string; shard: number; seed: number; state: string };
    expect(reissued).toMatchObject({ shard: vanished.shard, seed: vanished.seed, state: 'accepted' });
    expect(store.listUpdates('mnist-mlp').map((u) => u.taskId)).toContain(reissued.task_id);
    // 4. the vanished volunteer coming back late is told its lease expired
    const late = await fetch(`${relay.url}/api/tasks/${vanished.taskId}/update`, {
      method: 'POST', headers: { 'content-type': 'application/octet-stream' },
      body: encodeUpdateFrame({ lease: vanished.lease, volunteerId, losses: [], samples: 0, computeMs: 0 },
        encodeUpdate(new Float32Array(vanished.paramCount), { kind: 'int8', block: 256 })) as BodyInit,
    });
    expect(late.status).toBe(409);
    expect(((await late.json()) as { error: { code: string } }).error.code).toBe('TT_ERR_LEASE_EXPIRED');
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    expect(metrics).toMatch(/tabtrain_leases_expired_total\{job="mnist-mlp"\} [1-9]/);
  });
});
