// A volunteer that comes back after the job moved on: it is leased the newest version, told how old a
// residual may be, and the error-feedback residual it kept from a base older than that is dropped.
import { afterEach, describe, expect, it } from 'vitest';
import { keepResidual } from '../../shared/volunteer/residual-age.ts';
import { inProcessRelay, type InProcessRelay } from './in-process.ts';

let relay: InProcessRelay | undefined;
afterEach(() => { relay?.close(); relay = undefined; });

describe('a returning volunteer', () => {
  it('keeps a residual only while its base is within the staleness bound of the task\'s base', () => {
    expect(keepResidual(3, 5, 2)).toBe(true);
    expect(keepResidual(2, 5, 2)).toBe(false);
    expect(keepResidual(undefined, 5, 2)).toBe(false); // saved by a build that did not record its base
    expect(keepResidual(0, 50, undefined)).toBe(true); // a round job (no bound given): kept as before
  });

  it('whose lease ran out while it was away is leased the newest version and drops its old residual', async () => {
    relay = await inProcessRelay({ stalenessBound: 1, quorum: 1, swarm: { targetTaskMs: 60_000, targetRoundMs: 1_000 } });
    const r = relay;
    const [away, other] = [await r.volunteer('away'), await r.volunteer('other')];
    const left = (await r.lease(away))!; // it trains on version 0, then its tab closes mid-task
    expect(left.baseVersion).toBe(0);
    for (let v = 0; v < 3; v++) {
      await r.upload(other, (await r.lease(other))!, 1_000);
      r.clock.t += 1_000;
      await r.scheduler.sweep();
    }
    expect(r.version()).toBe(3);
    r.clock.t = left.deadline + 1; // gone past its deadline: the lease expires, its shard goes back
    await r.scheduler.sweep();
    expect(r.store.getTask(left.taskId)!.state).toBe('expired');
    const back = (await r.lease(away))!;
    expect(back.baseVersion).toBe(3);
    expect(back.residualMaxAge).toBe(1);
    // its residual was saved after a task on version 0 (the last one it encoded): dropped for this task
    expect(keepResidual(0, back.baseVersion, back.residualMaxAge)).toBe(false);
    // and the expired task's upload, should the tab send it now, is refused: the lease ran out
    await expect(r.upload(away, left, 1_000)).rejects.toMatchObject({ code: 'TT_ERR_LEASE_EXPIRED' });
  });
});
