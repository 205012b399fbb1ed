// Seeded augmentation keeps spot checks honest across devices: with every task spot-checked, a volunteer
// training on WebGPU (the engine through Dawn, the same loop and WGSL as a tab's worker) and one on the
// CPU reference get copies of the same augmented tasks, draw the same shifted batches, and agree.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { createWebGpuTrainer } from '../../shared/engine/trainer.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { startRelay, waitFor, type TestRelay } from '../helpers/relay.ts';

const metric = async (relay: TestRelay, name: string, labels: string): Promise<number> => {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').pop()) : 0;
};

describe('augmented spot checks across devices', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 4, quorum: 4, steps: 5 }, defence: { replication: { baseRate: 1, distinctNetworks: false } } });
  });
  afterAll(async () => { await relay?.stop(); });

  it('a WebGPU volunteer and a CPU one train the same shifted batches of a task and agree', async () => {
    const gpu = await nodeGpu();
    const abort = new AbortController();
    const events: VolunteerEvent[][] = [[], []];
    const run = (i: number, createTrainer: Parameters<typeof runVolunteer>[0]['createTrainer']) => runVolunteer({
      server: relay.url, fetch: (u, init) => fetch(u, init), createTrainer, store: memoryLoopStore(), signal: abort.signal,
      agent: `device-${i}`, retry: { baseMs: 100, maxMs: 2_000, attempts: 30 }, onEvent: (e) => events[i].push(e),
    });
    const loops = [run(0, (m, o) => createWebGpuTrainer(gpu, m, o)), run(1, createCpuTrainer)];
    try {
      await waitFor(() => metric(relay, 'tabtrain_spot_checks_total', 'outcome="agree"'), (n) => n >= 2);
      expect(await metric(relay, 'tabtrain_spot_checks_total', 'outcome="disagree"')).toBe(0);
    } finally {
      abort.abort();
      await Promise.allSettled(loops);
    }
    for (const es of events) {
      expect(es.filter((e) => e.type === 'error')).toEqual([]);
      expect(es.find((e) => e.type === 'task')).toMatchObject({ task: { augment: { shift: 2 } } });
    }
    // the two devices really shared tasks: a task leased to one has a twin (same shard and seed) at the other
    const seeds = events.map((es) => new Set(es.flatMap((e) => (e.type === 'task' ? [`${e.task.baseVersion}:${e.task.shard}:${e.task.seed}`] : []))));
    expect([...seeds[0]].some((s) => seeds[1].has(s))).toBe(true);
  });
});
