// A swarm round scales each update to the round's effective samples (the weighted mean of its updates'),
// as FedNova does: a round of short tasks moves the model as far as they went, not as far as full ones.
import { afterEach, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { JOB, inProcessRelay, type InProcessRelay } from './in-process.ts';

let relay: InProcessRelay | undefined;
afterEach(() => { relay?.close(); relay = undefined; });

describe('a swarm round of short tasks', () => {
  it('moves the model by their own Δ, not stretched to the job\'s nominal H', async () => {
    relay = await inProcessRelay({ stalenessBound: 4, updatesPerRound: 4, quorum: 2, outerLr: 0.7, outerMomentum: 0.9, swarm: {} });
    const r = relay;
    const vols = await Promise.all(['a', 'b', 'c', 'd'].map((n) => r.volunteer(n)));
    const tasks = await Promise.all(vols.map((v) => r.lease(v))) as Task[];
    // new volunteers: short first tasks (3 steps of the job's 20)
    expect(tasks.map((t) => t.steps)).toEqual([3, 3, 3, 3]);
    const c = 1e-4;
    const before = r.store.getParams(JOB, 0)!.params;
    for (const [i, t] of tasks.entries()) {
      const delta = new Float32Array(t.paramCount).fill(c);
      const frame = encodeUpdateFrame({ lease: t.lease, volunteerId: vols[i], losses: [1], samples: t.steps * t.batchSize, computeMs: 1_000 }, encodeUpdate(delta, t.compression));
      await r.scheduler.intakeUpdate(t.taskId, frame);
    }
    await r.settle();
    expect(r.version()).toBe(1); // K = updatesPerRound = 4 from four live tasks
    const after = r.store.getParams(JOB, 1)!.params;
    // the outer step from zero momentum: θ − lr · (1 + μ) · Δ, with Δ = c (not c × 20 / 3)
    const moved = before.reduce((a, x, i) => a + (x - after[i]), 0) / before.length;
    expect(moved).toBeCloseTo(0.7 * 1.9 * c, 6);
    expect(moved / (0.7 * 1.9 * c)).toBeGreaterThan(0.98);
    expect(moved / (0.7 * 1.9 * c)).toBeLessThan(1.02);
  });
});
