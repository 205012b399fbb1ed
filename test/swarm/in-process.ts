// A scheduler on a real SQLite store and a clock the test moves: what the swarm decides from time
// (paces, deadlines, rounds) is tested without waiting for it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Hyperparameters, Task, UpdateAck } from '../../shared/protocol/messages.ts';
import { rng } from '../../shared/util/rng.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { createMetrics } from '../../server/metrics.ts';
import { createScheduler } from '../../server/scheduler/scheduler.ts';
import { sqliteStores } from '../../server/store/async.ts';
import { openSqliteStore } from '../../server/store/sqlite.ts';

export const JOB = 'swarm-job';

export async function inProcessRelay(h: Partial<Hyperparameters>) {
  const dir = mkdtempSync(join(tmpdir(), 'tabtrain-swarm-test-'));
  const store = openSqliteStore(join(dir, 'db.sqlite'));
  const clock = { t: Date.UTC(2026, 0, 1) };
  const stores = sqliteStores(store);
  const metrics = createMetrics();
  const scheduler = createScheduler({
    stores, secret: Buffer.alloc(32, 3), log: pino({ level: 'silent' }), metrics, evaluate: false, now: () => clock.t,
    defence: { identity: 'optional', replication: { baseRate: 0, minRate: 0, suspectRate: 0 } },
  });
  await scheduler.createJob(JOB, defaultJobSpec(h), 'running');
  let seed = 0;
  return {
    store, scheduler, clock, metrics,
    volunteer: (name: string) => scheduler.registerVolunteer(name, 'test'),
    lease: (v: string): Promise<Task | null> => scheduler.leaseTask(JOB, v),
    /** Uploads an honest-looking update for the task, claiming `computeMs`. */
    upload: (v: string, task: Task, computeMs: number): Promise<UpdateAck> => {
      const r = rng(++seed);
      const delta = Float32Array.from({ length: task.paramCount }, () => r.normal() * 1e-4);
      const frame = encodeUpdateFrame({ lease: task.lease, volunteerId: v, losses: [1], samples: task.steps * task.batchSize, computeMs }, encodeUpdate(delta, task.compression));
      return scheduler.intakeUpdate(task.taskId, frame);
    },
    /** Lets a round scheduled by an upload close (it runs after the request, as in the relay). */
    settle: () => new Promise<void>((r) => setImmediate(r)),
    version: () => store.getJob(JOB)!.version,
    close() { scheduler.stop(); store.close(); rmSync(dir, { recursive: true, force: true }); },
  };
}
export type InProcessRelay = Awaited<ReturnType<typeof inProcessRelay>>;
