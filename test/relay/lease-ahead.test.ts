// One task ahead: a round leases no more than K tasks, except that the volunteer whose task is all the
// round still waits for may lease its next one on the same version (one-step-delay overlap), which then
// lands in the next round one version stale. Nobody else gets one, and a job with staleness bound 0 none.
import { afterEach, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task, UpdateAck } from '../../shared/protocol/messages.ts';
import { rng } from '../../shared/util/rng.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { startRelay, waitFor, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay | undefined;
afterEach(async () => { await relay?.stop(); relay = undefined; });

async function lease(v: SignedVolunteer): Promise<Task | undefined> {
  const res = await v.askForTask();
  if (res.status === 204) return undefined;
  expect(res.status).toBe(200);
  return (await res.json()) as Task;
}

async function upload(v: SignedVolunteer, task: Task, seed: number): Promise<UpdateAck> {
  const r = rng(seed);
  const delta = Float32Array.from({ length: task.paramCount }, () => r.normal() * 1e-3);
  const frame = encodeUpdateFrame({ lease: task.lease, volunteerId: v.volunteerId, losses: [1], samples: 32, computeMs: 1 }, encodeUpdate(delta, task.compression));
  const res = await fetch(`${relay!.url}/api/tasks/${task.taskId}/update`, { method: 'POST', body: frame as BodyInit, headers: await v.uploadHeaders(task.taskId, task.lease, frame) });
  expect(res.status).toBe(200);
  return (await res.json()) as UpdateAck;
}

const version = async () => ((await (await fetch(`${relay!.url}/api/jobs/mnist-mlp`)).json()) as { version: number }).version;

describe('leasing one task ahead across a round\'s close', () => {
  it('goes only to the volunteer the round waits for, and its update counts in the next round as one version stale', async () => {
    relay = await startRelay({ defaultJob: { updatesPerRound: 2, quorum: 2, stalenessBound: 2 }, evaluate: false, defence: { replication: { baseRate: 0, minRate: 0, suspectRate: 0 } } });
    const [a, b] = [await registerSigned(relay.url, 'a'), await registerSigned(relay.url, 'b')];
    const a1 = (await lease(a))!, b1 = (await lease(b))!;
    expect(await lease(a)).toBeUndefined(); // two tasks out for K = 2, both still training
    expect((await upload(b, b1, 1)).round).toBe(0);
    const a2 = await lease(a); // a's task is all the round waits for, and nobody waits for work: a may start its next one
    expect(a2).toMatchObject({ baseVersion: 0 });
    expect(await lease(a)).toBeUndefined(); // one ahead, not two
    expect(await lease(b)).toBeUndefined(); // b's own task is in: the round waits on a
    expect((await upload(a, a1, 2)).round).toBe(0);
    await waitFor(version, (v) => v === 1);
    expect(await upload(a, a2!, 3)).toMatchObject({ accepted: true, round: 1, weight: 0.5 });
    expect(await lease(b)).toMatchObject({ baseVersion: 1 }); // the next round: one slot left
  });

  it('is not given while another volunteer waits for work: the next round\'s work goes to it fresh', async () => {
    relay = await startRelay({ defaultJob: { updatesPerRound: 2, quorum: 2, stalenessBound: 2 }, evaluate: false, defence: { replication: { baseRate: 0, minRate: 0, suspectRate: 0 } } });
    const [a, b] = [await registerSigned(relay.url, 'a'), await registerSigned(relay.url, 'b')];
    const a1 = (await lease(a))!, b1 = (await lease(b))!;
    await upload(b, b1, 1);
    expect(await lease(b)).toBeUndefined(); // b now waits
    expect(await lease(a)).toBeUndefined();
    await upload(a, a1, 2);
    await waitFor(version, (v) => v === 1);
    expect(await lease(b)).toMatchObject({ baseVersion: 1 });
  });

  it('is not given by a job that takes no stale update', async () => {
    relay = await startRelay({ defaultJob: { updatesPerRound: 2, quorum: 2, stalenessBound: 0 }, evaluate: false, defence: { replication: { baseRate: 0, minRate: 0, suspectRate: 0 } } });
    const [a, b] = [await registerSigned(relay.url, 'a'), await registerSigned(relay.url, 'b')];
    const a1 = (await lease(a))!, b1 = (await lease(b))!;
    await upload(b, b1, 1);
    expect(await lease(a)).toBeUndefined();
    expect(a1.baseVersion).toBe(0);
  });
});
