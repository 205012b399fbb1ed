// A volunteer fails over to another relay in the middle of a task: it leased the task from relay A (a
// real `tabtrain start --database-url` process), A is killed with SIGKILL while the volunteer trains, and
// the volunteer loop sends the update to relay B, which accepts it: the lease and the task live in the
// database both relays share, and the lease is signed with the secret they share.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { postgresPerFile } from '../helpers/postgres.ts';
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.ts';

const pgdb = postgresPerFile();
let relays: RelayProcess[] = [];
afterAll(async () => { await Promise.all(relays.map((r) => r.stop())); });

describe('a volunteer failing over mid-task', () => {
  it('trains a task leased from relay A, which dies meanwhile, and relay B accepts its update', async () => {
    relays = await Promise.all([0, 1].map(() => startRelayProcess(pgdb.url)));
    const [a, b] = relays;
    const events: VolunteerEvent[] = [];
    let firstTask: string | undefined;
    let killing: Promise<void> | undefined;
    await runVolunteer({
      server: [a.url, b.url], fetch: (u, i) => fetch(u, i), createTrainer: createCpuTrainer, store: memoryLoopStore(),
      signal: new AbortController().signal, maxTasks: 1, retry: { baseMs: 50, maxMs: 500, attempts: 40 }, answerTimeoutMs: 5_000,
      onEvent: (e) => {
        events.push(e);
        // A goes away while the first task trains: its params and shard came from A, its update cannot
        if (e.type === 'step' && !killing) { firstTask = e.taskId; killing = a.kill(); }
      },
    });
    await killing;
    expect(await a.exited).toBe('SIGKILL');
    const uploaded = events.filter((e) => e.type === 'uploaded') as Extract<VolunteerEvent, { type: 'uploaded' }>[];
    expect(uploaded).toHaveLength(1);
    expect(uploaded[0].taskId).toBe(firstTask);
    expect(uploaded[0].ack.accepted).toBe(true);
    expect(events.find((e) => e.type === 'failover')).toMatchObject({ from: a.url, to: b.url });
    expect(events.filter((e) => e.type === 'dropped' && e.taskId === firstTask)).toEqual([]);
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    // the update B accepted is stored once, for the task A leased
    const db = new pg.Client({ connectionString: pgdb.url });
    await db.connect();
    try {
      const r = await db.query<{ state: string; n: number }>('SELECT t.state, (SELECT COUNT(*)::int FROM updates u WHERE u.task_id = t.task_id) AS n FROM tasks t WHERE t.task_id = $1', [firstTask]);
      expect(r.rows).toEqual([{ state: 'accepted', n: 1 }]);
    } finally {
      await db.end();
    }
    // B still answers (it was never the one that died)
    expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
  }, 300_000);
});
