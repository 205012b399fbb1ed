// The usefulness check's relative floor on a real relay (loopback HTTP, real SQLite, signed uploads): once
// the job has eight accepted scores, an update whose drop on its own batch is under relativeShare × their
// median (relative to the loss before) is refused with 422 TT_ERR_NOT_USEFUL, though it passes minDrop 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { honestDelta, startRelay, type TestRelay } from '../helpers/relay.ts';

const hp = { updatesPerRound: 1000, quorum: 1000, steps: 5 };

describe('usefulness relative floor on a real relay', () => {
  let relay: TestRelay;
  let alice: SignedVolunteer;
  beforeAll(async () => {
    relay = await startRelay({ evaluate: false, defaultJob: false, defence: { replication: { baseRate: 0 } } });
    relay.app.scheduler.createJob('rel', defaultJobSpec({ ...hp, usefulness: { mode: 'enforce', minDrop: 0, relativeShare: 0.25 } }), 'running');
    alice = await registerSigned(relay.url, 'alice');
  });
  afterAll(async () => { await relay.stop(); });

  const send = async (scale: number): Promise<{ status: number; body: any; taskId: string }> => {
    const res = await alice.askForTask('rel');
    expect(res.status).toBe(200);
    const task = (await res.json()) as Task;
    const delta = (await honestDelta(relay.url, task)).map((x) => x * scale);
    const frame = encodeUpdateFrame({ lease: task.lease, volunteerId: alice.volunteerId, losses: [2.3], samples: task.steps * task.batchSize, computeMs: 5 }, encodeUpdate(delta, task.compression));
    const up = await fetch(`${relay.url}/api/tasks/${task.taskId}/update`, { method: 'POST', body: frame as BodyInit, headers: await alice.uploadHeaders(task.taskId, task.lease, frame) });
    return { status: up.status, body: await up.json(), taskId: task.taskId };
  };
  const score = async (taskId: string) => (await relay.app.scheduler.guard.store.getUsefulness(taskId))!;

  it('takes a barely useful update while fewer than eight are known, refuses the same kind after eight honest ones', async () => {
    // 3 % of an honest Δ: still lowers the loss (minDrop 0 passes) but by a sliver
    const early = await send(0.03);
    expect(early.status, JSON.stringify(early.body)).toBe(200);
    expect((await score(early.taskId)).drop).toBeGreaterThan(0);
    const ratios: number[] = [];
    for (let k = 0; k < 8; k++) {
      const r = await send(1);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      const sr = await score(r.taskId);
      ratios.push(sr.drop / sr.before);
    }
    expect(await relay.app.scheduler.guard.store.recentRelativeDrops('rel', 64)).toHaveLength(9);
    const late = await send(0.03);
    expect(late.status).toBe(422);
    expect(late.body.error.code).toBe('TT_ERR_NOT_USEFUL');
    expect(late.body.error.message).toMatch(/below 0\.25 × the median of the job's last 64 accepted updates/);
    const s = await score(late.taskId);
    expect(s.drop).toBeGreaterThan(0);
    expect(s.refused).toBe(true);
    // the refused score does not enter the history the floor is taken from
    expect(await relay.app.scheduler.guard.store.recentRelativeDrops('rel', 64)).toHaveLength(9);
    // and an honest one is still taken
    expect((await send(1)).status).toBe(200);
    console.log(`honest relative drops ${ratios.map((x) => x.toFixed(3)).join(' ')}; 3 % of an honest Δ: ${(s.drop / s.before).toFixed(4)}`);
  });
});
