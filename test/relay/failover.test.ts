// A volunteer given several relays goes on with the next when one stops answering: refused connections,
// no answer in time, and 5xx are left at once for the next relay, with a failover event (the Node
// volunteer prints it). Real relays on loopback, each on its own SQLite (so a task leased on one is
// unknown to the other: what carries over here is the volunteer, not the job's state; relays sharing a
// database carry the task over as well).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNodeVolunteer } from '../../server/volunteer/run.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

const retry = { baseMs: 20, maxMs: 200, attempts: 40 };

/** A server on loopback that answers every request with `answer` (or never, when undefined). */
async function fakeRelay(answer?: (res: import('node:http').ServerResponse) => void): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => { answer?.(res); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** A loopback URL nothing listens on: a port taken and given back. */
async function deadUrl(): Promise<string> {
  const { url, server } = await fakeRelay();
  await new Promise((r) => server.close(r));
  return url;
}

const taskIdsOf = (relay: TestRelay) => new Set(relay.app.store.listUpdates('mnist-mlp').map((u) => u.taskId));

describe('volunteer failover between relays', () => {
  let live: TestRelay;
  beforeAll(async () => { live = await startRelay({ evaluate: false, defence: { replication: { baseRate: 0 } }, defaultJob: { steps: 5 } }); });
  afterAll(async () => { await live.stop(); });

  const cases: [string, () => Promise<{ url: string; close(): Promise<void> }>, RegExp][] = [
    ['refuses connections', async () => ({ url: await deadUrl(), close: async () => undefined }), /ECONNREFUSED|fetch failed/],
    ['answers 503', async () => {
      const f = await fakeRelay((res) => res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"TT_ERR_INTERNAL","message":"down"}}'));
      return { url: f.url, close: () => new Promise((r) => { f.server.closeAllConnections(); f.server.close(() => r()); }) };
    }, /HTTP 503/],
    ['never answers', async () => {
      const f = await fakeRelay();
      return { url: f.url, close: () => new Promise((r) => { f.server.closeAllConnections(); f.server.close(() => r()); }) };
    }, /no answer within/],
  ];
  for (const [what, make, reason] of cases) {
    it(`a volunteer whose first relay ${what} trains on the second, and says it failed over`, async () => {
      const first = await make();
      try {
        const events: VolunteerEvent[] = [];
        const before = taskIdsOf(live);
        await runVolunteer({
          server: [first.url, live.url], fetch: (u, i) => fetch(u, i), createTrainer: createCpuTrainer, store: memoryLoopStore(),
          signal: new AbortController().signal, maxTasks: 2, retry, answerTimeoutMs: 3_000, onEvent: (e) => events.push(e),
        });
        const failovers = events.filter((e) => e.type === 'failover');
        expect(failovers.length).toBeGreaterThanOrEqual(1);
        expect(failovers[0]).toMatchObject({ from: first.url, to: live.url });
        expect((failovers[0] as { reason: string }).reason).toMatch(reason);
        const uploaded = events.filter((e) => e.type === 'uploaded') as Extract<VolunteerEvent, { type: 'uploaded' }>[];
        expect(uploaded).toHaveLength(2);
        for (const u of uploaded) {
          expect(u.ack.accepted).toBe(true);
          expect(before.has(u.taskId)).toBe(false);
          expect(taskIdsOf(live).has(u.taskId)).toBe(true); // the live relay holds the update
        }
        expect(events.filter((e) => e.type === 'error')).toEqual([]);
      } finally {
        await first.close();
      }
    });
  }

  it('the Node volunteer given a dead relay first prints a line saying it failed over, and trains on the live one', async () => {
    const dead = await deadUrl();
    const stateDir = mkdtempSync(join(tmpdir(), 'tabtrain-failover-'));
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((s: string) => { printed.push(String(s)); return true; }) as typeof process.stdout.write;
    try {
      const before = taskIdsOf(live).size;
      const { stats } = await runNodeVolunteer({ server: [dead, live.url], stateDir, cpu: true, maxTasks: 1, signal: new AbortController().signal });
      process.stdout.write = write;
      expect(stats.updatesAccepted).toBe(1);
      expect(taskIdsOf(live).size).toBe(before + 1);
      const text = printed.join('');
      expect(text).toContain(`relays ${dead}, ${live.url} (in this order)`);
      expect(text).toMatch(new RegExp(`relay ${dead} stopped answering \\(.*\\); going on with ${live.url}`));
    } finally {
      process.stdout.write = write;
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('a relay stopped between tasks: the next task comes from the other relay, which the volunteer registers with', async () => {
    const a = await startRelay({ evaluate: false, defence: { replication: { baseRate: 0 } }, defaultJob: { steps: 5 } });
    const b = await startRelay({ evaluate: false, defence: { replication: { baseRate: 0 } }, defaultJob: { steps: 5 } });
    let stopping: Promise<void> | undefined;
    let onA = new Set<string>();
    try {
      const events: VolunteerEvent[] = [];
      await runVolunteer({
        server: [a.url, b.url], fetch: (u, i) => fetch(u, i), createTrainer: createCpuTrainer, store: memoryLoopStore(),
        signal: new AbortController().signal, maxTasks: 3, retry, answerTimeoutMs: 2_000,
        onEvent: (e) => {
          events.push(e);
          // relay A goes away once it has taken the first update
          if (e.type === 'uploaded' && !stopping) { onA = taskIdsOf(a); stopping = a.close(); }
        },
      });
      await stopping;
      const uploaded = events.filter((e) => e.type === 'uploaded') as Extract<VolunteerEvent, { type: 'uploaded' }>[];
      const onB = taskIdsOf(b);
      expect(uploaded).toHaveLength(3);
      expect(onA.has(uploaded[0].taskId)).toBe(true);
      // every later update went to B, on tasks B leased, and B accepted them
      for (const u of uploaded.slice(1)) {
        expect(onB.has(u.taskId)).toBe(true);
        expect(u.ack.accepted).toBe(true);
      }
      expect(events.find((e) => e.type === 'failover')).toMatchObject({ from: a.url, to: b.url });
      // B did not know this volunteer: it registered there (same key, so the same id)
      const ids = events.filter((e) => e.type === 'registered').map((e) => (e as { volunteerId: string }).volunteerId);
      expect(ids.length).toBe(2);
      expect(new Set(ids).size).toBe(1);
      // a task taken from A before it went (leased ahead) is not B's: dropped, never an error
      for (const d of events.filter((e) => e.type === 'dropped')) expect(d).toMatchObject({ code: expect.stringMatching(/TT_ERR_UNKNOWN_TASK|TT_ERR_UNKNOWN_VERSION|TT_ERR_LEASE_INVALID/) });
      expect(events.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      await stopping;
      await a.stop().catch(() => undefined);
      await b.stop();
    }
  });
});
