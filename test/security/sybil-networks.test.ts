// Sybils across networks: one attacker with many identities on many /24s, reaching the relay through a
// trusted reverse proxy (the relay's trustProxy option) that names each in X-Forwarded-For. Spot checks
// pair two copies of a task only across networks, so many /24s are what such an attacker needs. What holds:
// a Sybil that cheats on a check paired with an honest volunteer is struck (the relay breaks the tie with
// its own CPU copy) and, cheating again, banned, whatever network it comes from next. The limit: two
// Sybils paired with each other send the same poisoned Δ, agree, and both gain reputation; only the
// robust aggregator stands between that update and the model.
import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { honestDelta as honestOf, startRelay, type TestRelay } from '../helpers/relay.ts';

const generous = { capacity: 10_000, refillPerSecond: 100 };

describe('Sybils on many /24s behind a trusted proxy', () => {
  let relay: TestRelay;
  beforeEach(async () => {
    relay = await startRelay({
      evaluate: false, trustProxy: '127.0.0.1',
      defaultJob: { updatesPerRound: 1000, quorum: 1000, steps: 5 },
      // every task is a spot check; a second strike bans
      defence: {
        replication: { baseRate: 1, suspectRate: 1, banAt: 2 },
        limits: { registerPerAddress: generous, tasksPerAddress: generous, tasksPerIdentity: generous, uploadsPerAddress: generous, uploadsPerIdentity: generous },
      },
    });
  });
  afterEach(async () => { await relay.stop(); });

  /** A signed task request as if forwarded by the proxy for a client at `address`. */
  const leaseFrom = async (v: SignedVolunteer, address: string): Promise<{ status: number; body: any }> => {
    const signed = await v.taskRequestHeaders('mnist-mlp');
    const body = JSON.stringify({ volunteerId: v.volunteerId });
    return new Promise((resolve, reject) => {
      const req = request(`${relay.url}/api/jobs/mnist-mlp/tasks`, {
        method: 'POST', headers: { ...signed, 'content-length': Buffer.byteLength(body), 'x-forwarded-for': address },
      }, (res) => {
        let text = '';
        res.on('data', (c) => { text += c; });
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(body);
    });
  };
  const task = async (v: SignedVolunteer, address: string): Promise<Task> => {
    const r = await leaseFrom(v, address);
    expect(r.status).toBe(200);
    return r.body as Task;
  };
  const upload = async (v: SignedVolunteer, t: Task, delta: Float32Array) => {
    const frame = encodeUpdateFrame({ lease: t.lease, volunteerId: v.volunteerId, losses: [2.3], samples: 160, computeMs: 5 }, encodeUpdate(delta, t.compression));
    const res = await fetch(`${relay.url}/api/tasks/${t.taskId}/update`, { method: 'POST', body: frame as BodyInit, headers: await v.uploadHeaders(t.taskId, t.lease, frame) });
    expect(res.status).toBe(200);
  };
  const honestDelta = (t: Task) => honestOf(relay.url, t);
  const reputation = (v: SignedVolunteer) => relay.app.scheduler.guard.store.reputation(v.volunteerId);
  const same = (a: Task, b: Task) => a.baseVersion === b.baseVersion && a.shard === b.shard && a.seed === b.seed;

  it('a Sybil that cheats on a check paired with an honest volunteer is struck, then banned from every network', async () => {
    const honest = await registerSigned(relay.url);
    const sybils = [await registerSigned(relay.url), await registerSigned(relay.url), await registerSigned(relay.url)];
    let net = 1;
    for (let strike = 1; strike <= 2; strike++) {
      for (const sybil of sybils) {
        const a = await task(honest, '192.0.2.10'); // every task is a check: this one opens a pair
        const b = await task(sybil, `203.0.${net++}.7`); // a fresh /24 each time: takes the honest volunteer's check
        expect(same(a, b)).toBe(true);
        const real = await honestDelta(a);
        await upload(honest, a, real);
        await upload(sybil, b, real.map((x) => -x)); // a sign flip: valid on its own, caught only by the comparison
        await relay.app.scheduler.settled();
        expect((await reputation(sybil)).strikes).toBe(strike);
        expect((await reputation(sybil)).state).toBe(strike === 1 ? 'suspect' : 'banned');
      }
    }
    // the honest volunteer was right six times: no strike
    expect((await reputation(honest))).toMatchObject({ strikes: 0 });
    expect((await reputation(honest)).state).not.toBe('suspect');
    // a banned identity gets no work from any address; the attacker must register (and solve a proof of work) again
    for (const sybil of sybils) {
      const r = await leaseFrom(sybil, `198.51.${net++}.9`);
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('TT_ERR_VOLUNTEER_BANNED');
    }
  });

  it('two Sybils on the same /24 are never paired; on two /24s they are, and the limit shows: they agree on a poisoned Δ', async () => {
    const [s1, s2, s3] = [await registerSigned(relay.url), await registerSigned(relay.url), await registerSigned(relay.url)];
    const a = await task(s1, '203.0.113.5');
    expect(same(a, await task(s2, '203.0.113.77'))).toBe(false); // same /24: a fresh task, opening a pair of its own
    const b = await task(s3, '198.51.100.5'); // another /24: takes the oldest open check, s1's
    expect(same(a, b)).toBe(true);
    const poison = Float32Array.from({ length: a.paramCount }, (_, i) => (i % 7 === 0 ? 1e-3 : -1e-3));
    await upload(s1, a, poison);
    await upload(s3, b, poison);
    await relay.app.scheduler.settled();
    // agreement: both gain a clean result, and the first copy counts in the round at full weight
    expect((await reputation(s1))).toMatchObject({ strikes: 0, cleanStreak: 1 });
    expect((await reputation(s3))).toMatchObject({ strikes: 0, cleanStreak: 1 });
    const pending = relay.app.store.pendingUpdates('mnist-mlp').map((u) => [u.taskId, u.weight]);
    expect(pending).toContainEqual([a.taskId, 1]);
    expect(pending).toContainEqual([b.taskId, 0]);
  });
});
