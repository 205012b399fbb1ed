// Three relays on one Postgres database, each its own Fastify app with its own pool, listener and
// scheduler, as separate processes would be: they start together with one default job; simulated
// volunteers whose every request goes to the next relay in turn (a lease from one, the upload to
// another) train it to the accuracy target; no task is leased twice and no accepted update is lost or
// applied twice; of three relays closing the same round at once exactly one makes the version, and all
// three report it; and with the database cut off, every relay answers 503 TT_ERR_DATABASE_UNAVAILABLE, then
// recovers without a restart.
import pg from 'pg';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { paramCount } from '../../shared/models/config.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { bestAccuracy, evals, startRelay, startVolunteers, waitFor, type TestRelay } from '../helpers/relay.ts';
import { postgresPerFile } from '../helpers/postgres.ts';
import { hostPort, startTcpProxy, viaProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const pgdb = postgresPerFile();
let relays: TestRelay[] = [];
let proxy: TcpProxy | undefined;
afterAll(async () => {
  await Promise.all(relays.map((r) => r.stop()));
  await proxy?.close();
});

/** A fetch that sends each request to the next relay in turn, whatever relay the URL names. */
function roundRobin(urls: string[]): typeof fetch {
  let i = 0;
  return (input, init) => {
    const u = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const to = new URL(urls[i++ % urls.length]);
    u.protocol = to.protocol; u.host = to.host;
    return fetch(u, init);
  };
}

describe('three relays on one Postgres', () => {
  it('share one job: volunteers spread over all three reach the accuracy target, nothing leased twice or lost', async () => {
    proxy = await startTcpProxy(hostPort(pgdb.url));
    const url = viaProxy(pgdb.url, proxy);
    relays = await Promise.all([0, 1, 2].map(() => startRelay({ databaseUrl: url })));
    const jobs = await Promise.all(relays.map(async (r) => (await (await fetch(`${r.url}/api/jobs`)).json() as { jobs: { jobId: string }[] }).jobs));
    for (const j of jobs) expect(j.map((x) => x.jobId)).toEqual(['mnist-mlp']);

    const vs = startVolunteers(relays[0].url, 4, { fetch: roundRobin(relays.map((r) => r.url)) });
    const reached = await waitFor(() => evals(relays[1].url), (es) => bestAccuracy(es) >= 0.9);
    await vs.stop();
    expect(bestAccuracy(reached)).toBeGreaterThanOrEqual(0.9);
    expect(vs.events.filter((e) => e.type === 'error')).toEqual([]);
    // every relay answers with the same version (polled: an upload the stopped volunteers left in flight
    // may still close a round between two relays' answers)
    const versions = await waitFor(() => Promise.all(relays.map(async (r) => (await (await fetch(`${r.url}/api/jobs/mnist-mlp`)).json() as { version: number }).version)),
      (vs) => new Set(vs).size === 1);
    expect(new Set(versions).size).toBe(1);

    const db = new pg.Client({ connectionString: pgdb.url });
    await db.connect();
    try {
      // an expired task's shard and seed went out again at most once
      const twice = await db.query("SELECT reissue_of FROM tasks WHERE reissue_of IS NOT NULL GROUP BY reissue_of HAVING COUNT(*) > 1");
      expect(twice.rows).toEqual([]);
      // every version once, in an unbroken run; every acknowledged upload stored, applied at most once
      const v = await db.query<{ version: number }>("SELECT version FROM versions WHERE job_id = 'mnist-mlp' ORDER BY version");
      expect(v.rows.map((r) => r.version)).toEqual(Array.from({ length: v.rows.length }, (_, i) => i));
      const acked = vs.events.filter((e) => e.type === 'uploaded').length;
      // both counts in one statement (one snapshot): an upload the stopped volunteers left in flight may still land
      const counts = await db.query<{ stored: number; accepted: number }>(`SELECT
        (SELECT COUNT(*)::int FROM updates WHERE job_id = 'mnist-mlp') AS stored,
        (SELECT COUNT(*)::int FROM tasks WHERE job_id = 'mnist-mlp' AND state = 'accepted') AS accepted`);
      expect(counts.rows[0].stored).toBeGreaterThanOrEqual(acked);
      expect(counts.rows[0].accepted).toBe(counts.rows[0].stored);
    } finally {
      await db.end();
    }
  }, 600_000); // three relays and a training run to the target on a busy machine, as in crash-restart.test.ts

  it('lets exactly one of three relays racing to close the same round make the version', async () => {
    const spec = defaultJobSpec({ updatesPerRound: 3 });
    await relays[0].app.scheduler.createJob('race', spec, 'running');
    const n = paramCount(spec.model);
    // the round's updates appear at once (one transaction); then all three relays close it together, while
    // their sweeps (every 100 ms) try too: whoever wins, one version is made
    await relays[0].app.stores.transaction(async (tx) => {
      for (let i = 0; i < 3; i++) {
        const taskId = `race-t${i}`;
        const delta = Float32Array.from({ length: n }, (_, k) => Math.sin(k + i) * 1e-3);
        await tx.relay.insertTask({ taskId, jobId: 'race', volunteerId: `v${i}`, baseVersion: 0, shard: i, seed: i, state: 'issued',
          issuedAt: Date.now(), expiresAt: Date.now() + 60_000, reissueOf: null, payloadHash: null, ack: null });
        await tx.relay.acceptUpdate({ taskId, jobId: 'race', volunteerId: `v${i}`, baseVersion: 0, round: 0, weight: 1,
          payload: encodeUpdate(delta, spec.hyperparameters.compression), payloadHash: `p${i}`, losses: [1], samples: 32, computeMs: 1, acceptedAt: Date.now(), norm: 0.01 }, '{}');
      }
    });
    const closed = await Promise.all(relays.flatMap((r) => [r.app.scheduler.closeRound('race', false), r.app.scheduler.closeRound('race', false)]));
    expect(closed.filter(Boolean).length).toBeLessThanOrEqual(1);
    await waitFor(() => relays[2].app.stores.relay.getJob('race'), (j) => j!.version >= 1);
    // and no second round out of the same updates, however many relays sweep meanwhile
    await new Promise((r) => setTimeout(r, 500));
    const job = (await relays[2].app.stores.relay.getJob('race'))!;
    expect(job.version).toBe(1);
    expect(await relays[1].app.stores.relay.listVersions('race')).toEqual([0, 1]);
    expect((await relays[0].app.stores.relay.appliedUpdates('race', 1)).map((u) => u.taskId).sort()).toEqual(['race-t0', 'race-t1', 'race-t2']);
    // every relay's /metrics shows the new version, the two that lost the race too (LISTEN/NOTIFY)
    for (const r of relays) {
      await waitFor(() => fetch(`${r.url}/metrics`).then((x) => x.text()), (t) => /tabtrain_job_version\{job="race"\} 1\b/.test(t));
    }
  });

  it('answers 503 TT_ERR_DATABASE_UNAVAILABLE on every relay while the database is away, and recovers without a restart', async () => {
    await proxy!.cut();
    for (const r of relays) {
      const h = await fetch(`${r.url}/healthz`);
      expect(h.status).toBe(503);
      expect(await h.json()).toMatchObject({ ok: false, database: { kind: 'postgres', reachable: false }, error: { code: 'TT_ERR_DATABASE_UNAVAILABLE' } });
      const jobs = await fetch(`${r.url}/api/jobs/mnist-mlp`);
      expect(jobs.status).toBe(503);
      expect(jobs.headers.get('retry-after')).toBe('5');
      expect(((await jobs.json()) as { error: { code: string } }).error.code).toBe('TT_ERR_DATABASE_UNAVAILABLE');
    }
    await proxy!.restore();
    for (const r of relays) {
      await waitFor(() => fetch(`${r.url}/healthz`).then((x) => x.status), (s) => s === 200);
      expect((await fetch(`${r.url}/api/jobs/mnist-mlp`)).status).toBe(200);
    }
  });
});
