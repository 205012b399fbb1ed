// The swarm scheduler over real HTTP: every volunteer that asks gets work while the job runs (the round
// scheduler would lease K + 1 = 5 of them and answer the rest 204), and /metrics says so.
import { afterEach, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task, UpdateAck } from '../../shared/protocol/messages.ts';
import { rng } from '../../shared/util/rng.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay | undefined;
afterEach(async () => { await relay?.stop(); relay = undefined; });

async function upload(v: SignedVolunteer, task: Task, seed: number): Promise<UpdateAck> {
  const r = rng(seed);
  const delta = Float32Array.from({ length: task.paramCount }, () => r.normal() * 1e-3);
  const frame = encodeUpdateFrame({ lease: task.lease, volunteerId: v.volunteerId, losses: [1], samples: task.steps * task.batchSize, computeMs: 1_000 }, encodeUpdate(delta, task.compression));
  const res = await fetch(`${relay!.url}/api/tasks/${task.taskId}/update`, { method: 'POST', body: frame as BodyInit, headers: await v.uploadHeaders(task.taskId, task.lease, frame) });
  expect(res.status).toBe(200);
  return (await res.json()) as UpdateAck;
}

const gauge = async (name: string): Promise<number> => {
  const text = await (await fetch(`${relay!.url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{job="mnist-mlp"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

describe('the swarm scheduler over HTTP', () => {
  it('keeps all of 50 simulated volunteers leased while the job runs, through uploads and a round', async () => {
    relay = await startRelay({
      defaultJob: { updatesPerRound: 4, quorum: 2, stalenessBound: 4, swarm: { targetTaskMs: 60_000, targetRoundMs: 100 } },
      // 50 volunteers on one loopback address: registration's per-address limit raised for them
      evaluate: false, defence: { replication: { baseRate: 0, minRate: 0, suspectRate: 0 }, limits: { registerPerAddress: { capacity: 100, refillPerSecond: 10 } } },
    });
    const vols: SignedVolunteer[] = [];
    for (let i = 0; i < 50; i++) vols.push(await registerSigned(relay.url, `sim-${i}`));
    const lease = async (v: SignedVolunteer): Promise<Task> => {
      const res = await v.askForTask();
      expect(res.status).toBe(200); // never 204: every volunteer that asks trains
      return (await res.json()) as Task;
    };
    const tasks = await Promise.all(vols.map(lease));
    expect(new Set(tasks.map((t) => t.taskId)).size).toBe(50);
    // new volunteers: a short first task (an eighth of the job's H of 20) on the job's lease
    expect(tasks.every((t) => t.steps === 3)).toBe(true);
    await relay.app.scheduler.sweep();
    expect(await gauge('tabtrain_volunteers_training')).toBe(50);
    expect(await gauge('tabtrain_volunteers_waiting')).toBe(0);

    // ten of them finish: their updates land, a round closes, and each gets its next task at once
    const acks = [];
    for (let i = 0; i < 10; i++) acks.push(await upload(vols[i], tasks[i], i));
    expect(acks.every((a) => a.accepted && a.weight > 0)).toBe(true);
    await new Promise((r) => setTimeout(r, 150));
    await relay.app.scheduler.sweep();
    expect(relay.app.store.getJob('mnist-mlp')!.version).toBeGreaterThanOrEqual(1);
    const next = await Promise.all(vols.slice(0, 10).map(lease));
    // on the newest version, sized from each one's measured pace (1 s per 3 steps: a 60 s task is 60 ×
    // 3 = 180 steps, capped at the job's H = 20)
    expect(next.every((t) => t.baseVersion === relay!.app.store.getJob('mnist-mlp')!.version)).toBe(true);
    expect(next.every((t) => t.steps === 20)).toBe(true);
    await relay.app.scheduler.sweep();
    expect(await gauge('tabtrain_volunteers_training')).toBe(50);
    const text = await (await fetch(`${relay.url}/metrics`)).text();
    expect(text).toMatch(/tabtrain_update_staleness_count\{job="mnist-mlp"\} 10/);
    expect(text).toMatch(/tabtrain_round_size\{job="mnist-mlp"\} \d/);
  });

  it('holds one volunteer to two live tasks (the one training and one fetched ahead), and a job to its maxConcurrentTasks', async () => {
    relay = await startRelay({
      defaultJob: { stalenessBound: 4, swarm: { maxConcurrentTasks: 3 } },
      evaluate: false, defence: { replication: { baseRate: 0, minRate: 0, suspectRate: 0 } },
    });
    const [a, b] = [await registerSigned(relay.url, 'a'), await registerSigned(relay.url, 'b')];
    expect((await a.askForTask()).status).toBe(200);
    expect((await a.askForTask()).status).toBe(200);
    expect((await a.askForTask()).status).toBe(204);
    expect((await b.askForTask()).status).toBe(200);
    expect((await b.askForTask()).status).toBe(204); // the job's cap of 3
  });
});
