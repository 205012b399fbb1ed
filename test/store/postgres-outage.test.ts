// The database going away and coming back, seen by a relay's store through a proxy the test cuts: calls
// fail fast with errors the relay answers 503 for (never hang, never crash the process), and work again
// once it is back, on the same store, without reopening anything; the event listener reconnects and says
// it may have missed events.
import { afterAll, describe, expect, it } from 'vitest';
import { defaultJobSpec } from '../../server/default-job.ts';
import { openPostgresStores, type PostgresStores } from '../../server/store/postgres/index.ts';
import { isDatabaseUnavailable } from '../../server/store/unavailable.ts';
import { postgresPerFile } from '../helpers/postgres.ts';
import { hostPort, startTcpProxy, viaProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const pgdb = postgresPerFile();
let proxy: TcpProxy | undefined;
let stores: PostgresStores | undefined;
afterAll(async () => {
  await stores?.close();
  await proxy?.close();
});

const until = async (ok: () => boolean | Promise<boolean>) => { while (!(await ok())) await new Promise((r) => setTimeout(r, 50)); };

describe('Postgres outage', () => {
  it('fails fast while the database is unreachable and recovers by itself when it is back', async () => {
    proxy = await startTcpProxy(hostPort(pgdb.url));
    const warnings: string[] = [];
    stores = await openPostgresStores(viaProxy(pgdb.url, proxy), { connectionTimeoutMs: 500, warn: (_f, m) => warnings.push(m) });
    const s = stores;
    await s.relay.createJob('j', defaultJobSpec(), 'running', { params: new Float32Array(8), hash: 'h0' }, 1);
    const resyncs: number[] = [];
    s.remote.on((e) => { if (e.name === 'resync') resyncs.push(Date.now()); });
    await until(() => s.remote.connected());

    await proxy.cut();
    for (const call of [() => s.relay.getJob('j'), () => s.ping(), () => s.relay.setJobStatus('j', 'paused', 2)]) {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(err, 'a call while the database is away fails').toBeInstanceOf(Error);
      expect(isDatabaseUnavailable(err), String(err)).toBe(true);
    }
    await until(() => !s.remote.connected());

    await proxy.restore();
    // the pool makes new connections on demand: the first calls after the restore may still meet a dead one
    await until(() => s.ping().then(() => true, () => false));
    expect((await s.relay.getJob('j'))!.status).toBe('running');
    expect((await s.relay.setJobStatus('j', 'paused', 3)).status).toBe('paused');
    await until(() => resyncs.length > 0 && s.remote.connected());
    expect(warnings.some((m) => /listener/.test(m))).toBe(true);
  });
});
