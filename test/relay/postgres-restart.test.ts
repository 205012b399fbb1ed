// The database server itself stops for about 10 s and starts again (a private PostgreSQL cluster this
// test owns: initdb, pg_ctl stop -m fast, pg_ctl start), under two relays and a volunteer training on
// them: meanwhile every relay answers 503 TT_ERR_DATABASE_UNAVAILABLE (with Retry-After) and /healthz says
// the database is unreachable; afterwards both answer again, the volunteer's uploads are accepted, rounds
// close, and both relays' /metrics show the new versions: no relay was restarted. A third relay started
// during the outage waits for the database and serves once it is back.
import { afterAll, describe, expect, it } from 'vitest';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts';
import { startRelay, startVolunteers, waitFor, type TestRelay } from '../helpers/relay.ts';

let cluster: PgCluster | undefined;
let relays: TestRelay[] = [];
afterAll(async () => {
  await Promise.all(relays.map((r) => r.stop()));
  await cluster?.destroy();
});

const OUTAGE_MS = 10_000;
const codeOf = async (r: Response) => ((await r.json()) as { error?: { code: string } }).error?.code;
const version = async (url: string) => (await (await fetch(`${url}/api/jobs/mnist-mlp`)).json() as { version: number }).version;
const metricsVersion = async (url: string) => Number(/tabtrain_job_version\{job="mnist-mlp"\} (\d+)/.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? -1);

describe('PostgreSQL stopped and started again', () => {
  it('relays answer 503 with a code while it is down and recover without a restart', async () => {
    cluster = await startPgCluster();
    relays = await Promise.all([0, 1].map(() => startRelay({ databaseUrl: cluster!.url, evaluate: false, defence: { replication: { baseRate: 0 } }, defaultJob: { steps: 5 } })));
    const urls = relays.map((r) => r.url);
    let accepted = 0;
    // retries that outlast the outage (backoff up to 2 s, 60 attempts per request)
    const vs = startVolunteers((i) => (i % 2 ? [...urls].reverse() : urls), 2, {
      retry: { baseMs: 100, maxMs: 2_000, attempts: 60 },
      onEvent: (_i, e) => { if (e.type === 'uploaded' && e.ack.accepted) accepted++; },
    });
    try {
      await waitFor(async () => accepted, (n) => n >= 2);

      await cluster.stop();
      const stoppedAt = Date.now();
      for (const url of urls) {
        const h = await fetch(`${url}/healthz`);
        expect(h.status).toBe(503);
        expect(await h.json()).toMatchObject({ ok: false, database: { kind: 'postgres', reachable: false }, error: { code: 'TT_ERR_DATABASE_UNAVAILABLE' } });
        const job = await fetch(`${url}/api/jobs/mnist-mlp`);
        expect(job.status).toBe(503);
        expect(job.headers.get('retry-after')).toBe('5');
        expect(await codeOf(job)).toBe('TT_ERR_DATABASE_UNAVAILABLE');
        const lease = await fetch(`${url}/api/jobs/mnist-mlp/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ volunteerId: 'someone' }) });
        expect(lease.status).toBe(503);
        expect(await codeOf(lease)).toBe('TT_ERR_DATABASE_UNAVAILABLE');
      }
      // a relay started now waits for the database instead of exiting (server/store/unavailable.ts whenAvailable)
      const late = startRelay({ databaseUrl: cluster.url, evaluate: false });
      late.catch(() => undefined);
      // the rest of the outage: relays, their sweeps and the volunteers keep meeting a stopped server
      await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt))));
      for (const url of urls) expect((await fetch(`${url}/healthz`)).status).toBe(503);
      const acceptedBefore = accepted;
      const versionBefore = Math.max(...await Promise.all(relays.map((r) => r.app.stores.relay.getJob('mnist-mlp').catch(() => undefined).then((j) => j?.version ?? 0))));

      await cluster.start();
      for (const url of urls) await waitFor(() => fetch(`${url}/healthz`).then((r) => r.status), (s) => s === 200);
      const third = await late;
      relays.push(third);
      expect((await fetch(`${third.url}/healthz`)).status).toBe(200);
      expect((await (await fetch(`${third.url}/api/jobs`)).json() as { jobs: { jobId: string }[] }).jobs.map((j) => j.jobId)).toEqual(['mnist-mlp']);
      // training goes on through both relays: new uploads accepted, new versions made
      await waitFor(async () => accepted, (n) => n >= acceptedBefore + 3);
      const v = await waitFor(() => version(urls[0]), (x) => x > versionBefore);
      // and each relay's LISTEN connection came back: /metrics of both shows the version (or a later one)
      for (const url of urls) await waitFor(() => metricsVersion(url), (m) => m >= v);
      expect(vs.events.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      await vs.stop();
    }
  }, 300_000);
});
