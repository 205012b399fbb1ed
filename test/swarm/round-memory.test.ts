// A swarm round's memory does not grow with K: the relay folds a round's updates into at most its bucket
// count of P-length vectors (shared/aggregate/streaming.ts), read here from the gauge the round sets.
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_ROUND_BUCKETS } from '../../shared/aggregate/streaming.ts';
import { JOB, inProcessRelay, type InProcessRelay } from './in-process.ts';

let relay: InProcessRelay | undefined;
afterEach(() => { relay?.close(); relay = undefined; });

const accumulators = async (r: InProcessRelay): Promise<number> =>
  (await r.metrics.roundAccumulators.get()).values.find((v) => v.labels.job === JOB)!.value;

describe('a swarm round\'s memory', () => {
  it('holds at most the bucket count of live vectors, for a round of 10 updates and one of 100', async () => {
    // updatesPerRound above both rounds: each closes by its time, with every update in (not at K from the live tasks)
    relay = await inProcessRelay({ stalenessBound: 4, quorum: 1, updatesPerRound: 1_000, swarm: { targetTaskMs: 60_000, targetRoundMs: 1_000 } });
    const r = relay;
    const seen: Record<number, number> = {};
    for (const k of [10, 100]) {
      const vols = await Promise.all(Array.from({ length: k }, (_, i) => r.volunteer(`v${k}-${i}`)));
      const tasks = await Promise.all(vols.map((v) => r.lease(v)));
      for (let i = 0; i < k; i++) await r.upload(vols[i], tasks[i]!, 1_000);
      const v = r.version();
      r.clock.t += 1_000;
      await r.scheduler.sweep();
      await r.settle();
      expect(r.version()).toBe(v + 1);
      expect(r.store.listUpdates(JOB).filter((u) => u.round === v).length).toBe(k);
      seen[k] = await accumulators(r);
    }
    expect(seen[10]).toBe(10); // a round this small keeps its updates whole
    expect(seen[100]).toBe(DEFAULT_ROUND_BUCKETS); // ten times the updates, no more vectors than buckets
  });
});
