// Three relays as three operating-system processes (the real `tabtrain start --database-url`) on one
// Postgres database, with simulated volunteers spread over them (each prefers another relay and fails
// over to the next): the job trains; one relay is killed with SIGKILL mid-job, its volunteers go on with
// the others, which carry the job on to the MNIST accuracy target. No task is leased twice, every upload
// a relay acknowledged is stored, each applied at most once, and the versions form one unbroken run.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { postgresPerFile } from '../helpers/postgres.ts';
import { bestAccuracy, evals, startVolunteers, waitFor } from '../helpers/relay.ts';
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.ts';

const pgdb = postgresPerFile();
let relays: RelayProcess[] = [];
afterAll(async () => { await Promise.all(relays.map((r) => r.stop())); });

const version = async (url: string) => (await (await fetch(`${url}/api/jobs/mnist-mlp`)).json() as { version: number }).version;

describe('three relay processes on one Postgres', () => {
  it('train one job with volunteers spread over them; after kill -9 of one, the others carry it to the accuracy target, nothing leased twice or lost', async () => {
    relays = await Promise.all([0, 1, 2].map(() => startRelayProcess(pgdb.url)));
    const urls = relays.map((r) => r.url);
    for (const u of urls) expect((await (await fetch(`${u}/api/jobs`)).json() as { jobs: { jobId: string }[] }).jobs.map((j) => j.jobId)).toEqual(['mnist-mlp']);

    // volunteer i prefers relay i mod 3, then the ones after it
    const acked = new Set<string>();
    const failovers: Extract<VolunteerEvent, { type: 'failover' }>[] = [];
    const vs = startVolunteers((i) => [0, 1, 2].map((k) => urls[(i + k) % 3]), 6, {
      onEvent: (_i, e) => {
        if (e.type === 'uploaded' && e.ack.accepted) acked.add(e.taskId);
        if (e.type === 'failover') failovers.push(e);
      },
    });
    try {
      // mid-job: a few versions made by the three together, then relay 1 dies at once
      await waitFor(() => version(urls[0]), (v) => v >= 2);
      await relays[1].kill();
      const atKill = await version(urls[0]);
      const ackedAtKill = acked.size;

      const reached = await waitFor(() => evals(urls[2]), (es) => bestAccuracy(es) >= 0.9, 500);
      expect(bestAccuracy(reached)).toBeGreaterThanOrEqual(0.9);
      expect(await version(urls[0])).toBeGreaterThan(atKill);
      expect(acked.size).toBeGreaterThan(ackedAtKill);
      // the volunteers that preferred the killed relay go on with the next one at their next request (a
      // volunteer mid-task when the relay died asks only once its task is trained, which may come after the
      // others reached the target)
      const movedOn = (fs: typeof failovers) => fs.some((f) => f.from === urls[1] && f.to === urls[2]);
      expect(movedOn(await waitFor(async () => failovers, movedOn))).toBe(true);
      expect(vs.events.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      await vs.stop();
    }
    // the two left agree on the version (an upload in flight at the stop may still close a round)
    await waitFor(() => Promise.all([version(urls[0]), version(urls[2])]), ([a, b]) => a === b);

    const db = new pg.Client({ connectionString: pgdb.url });
    await db.connect();
    try {
      // an expired task's shard and seed went out again at most once; an update is its task's volunteer's
      expect((await db.query('SELECT reissue_of FROM tasks WHERE reissue_of IS NOT NULL GROUP BY reissue_of HAVING COUNT(*) > 1')).rows).toEqual([]);
      expect((await db.query('SELECT u.task_id FROM updates u JOIN tasks t USING (task_id) WHERE u.volunteer_id <> t.volunteer_id')).rows).toEqual([]);
      // versions 0..n once each
      const v = await db.query<{ version: number }>("SELECT version FROM versions WHERE job_id = 'mnist-mlp' ORDER BY version");
      expect(v.rows.map((r) => r.version)).toEqual(Array.from({ length: v.rows.length }, (_, i) => i));
      // every acknowledged upload is stored, its task accepted; none applied by a version that does not exist
      const stored = await db.query<{ task_id: string; state: string; applied_in: number | null }>(
        "SELECT u.task_id, t.state, u.applied_in FROM updates u JOIN tasks t USING (task_id) WHERE u.job_id = 'mnist-mlp'");
      const byTask = new Map(stored.rows.map((r) => [r.task_id, r]));
      const lost = [...acked].filter((t) => !byTask.has(t));
      expect(lost).toEqual([]);
      expect(stored.rows.filter((r) => r.state !== 'accepted')).toEqual([]);
      const versions = new Set(v.rows.map((r) => r.version));
      expect(stored.rows.filter((r) => r.applied_in !== null && !versions.has(r.applied_in))).toEqual([]);
    } finally {
      await db.end();
    }
  }, 900_000); // three relay processes starting, and a training run to the target on a busy machine
});
