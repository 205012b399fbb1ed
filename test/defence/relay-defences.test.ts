// The defences wired into a real relay (loopback HTTP, real SQLite, real WebCrypto): identities with a
// proof of work, signed uploads, leases bound to task and volunteer, idempotent re-sends, validation
// before store, spot checks that cost reputation, and rate limits. Each refusal is a clear 4xx.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { defaultMlp, paramCount } from '../../shared/models/config.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { createIdentity, identityId, signTaskRequest, signUpdate } from '../../shared/security/identity.ts';
import { RelayClient } from '../../shared/volunteer/client.ts';
import { fromBase64Url } from '../../shared/security/encoding.ts';
import { solvePow } from '../../shared/security/pow.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { honestDelta, startRelay, startVolunteers, waitFor, type TestRelay } from '../helpers/relay.ts';

const N = paramCount(defaultMlp);
type Answer = { status: number; headers: Headers; body: any };

const json = async (relay: TestRelay, method: string, path: string, body?: unknown): Promise<Answer> => {
  const res = await fetch(relay.url + path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
};
/** A signed task request, answered as it came. */
const signedJson = async (v: SignedVolunteer, jobId: string): Promise<Answer> => {
  const res = await v.askForTask(jobId);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
};
const lease = async (v: SignedVolunteer, jobId = 'mnist-mlp'): Promise<Task> => {
  const res = await v.askForTask(jobId);
  expect(res.status).toBe(200);
  return (await res.json()) as Task;
};
const delta = (k = 1, scale = 1e-3) => Float32Array.from({ length: N }, (_, i) => Math.sin(i * k + k) * scale);
const frameOf = (task: Task, volunteerId: string, d: Float32Array = delta()) =>
  encodeUpdateFrame({ lease: task.lease, volunteerId, losses: [2.3, 2.0], samples: 640, computeMs: 5 }, encodeUpdate(d, task.compression));
const post = async (relay: TestRelay, taskId: string, frame: Uint8Array, headers: Record<string, string>): Promise<Answer> => {
  const res = await fetch(`${relay.url}/api/tasks/${taskId}/update`, { method: 'POST', body: frame as BodyInit, headers: { 'content-type': 'application/octet-stream', ...headers } });
  return { status: res.status, headers: res.headers, body: await res.json() };
};
const signed = async (relay: TestRelay, v: SignedVolunteer, task: Task, frame: Uint8Array) => post(relay, task.taskId, frame, await v.uploadHeaders(task.taskId, task.lease, frame));
const refused = (r: Answer, status: number, code: string, mentions?: RegExp) => {
  expect(r.status).toBe(status);
  expect(r.body.error.code).toBe(code);
  expect(r.body.error.message.length).toBeGreaterThan(15);
  if (mentions) expect(r.body.error.message).toMatch(mentions);
};
const metric = async (relay: TestRelay, name: string, labels: string): Promise<number> => {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
};

describe('forged, replayed and tampered uploads are refused over real HTTP', () => {
  let relay: TestRelay;
  let alice: SignedVolunteer, bob: SignedVolunteer;
  beforeAll(async () => {
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 1000, quorum: 1000 }, defence: { replication: { baseRate: 0 } } });
    relay.app.scheduler.createJob('short-lease', defaultJobSpec({ leaseMs: 150, updatesPerRound: 1000, quorum: 1000 }), 'running');
    alice = await registerSigned(relay.url, 'alice');
    bob = await registerSigned(relay.url, 'bob');
  });
  afterAll(async () => { await relay.stop(); });

  it('registration needs a public key and a fresh, solved proof of work; the id derives from the key', async () => {
    refused(await json(relay, 'POST', '/api/volunteers', { agent: 'anon' }), 400, 'TT_ERR_IDENTITY_REQUIRED', /publicKey/);
    const me = await createIdentity();
    const c = (await json(relay, 'GET', '/api/volunteers/challenge')).body as { challenge: string; difficulty: number };
    expect(c.difficulty).toBe(4);
    refused(await json(relay, 'POST', '/api/volunteers', { publicKey: me.publicKey }), 403, 'TT_ERR_POW', /challenge/);
    // a nonce that does not meet the difficulty (search for one with a non-zero first bit)
    let bad = 0;
    while ((await import('../../shared/security/pow.ts')).leadingZeroBits(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${c.challenge}:${bad}`)))) >= 4) bad++;
    refused(await json(relay, 'POST', '/api/volunteers', { publicKey: me.publicKey, challenge: c.challenge, nonce: String(bad) }), 403, 'TT_ERR_POW', /leading zero bits/);
    // the signature's first character carries six bits of it (the last may carry stray bits only)
    const [claims, mac] = c.challenge.split('.');
    const forgedChallenge = `${claims}.${mac[0] === 'A' ? 'B' : 'A'}${mac.slice(1)}`;
    refused(await json(relay, 'POST', '/api/volunteers', { publicKey: me.publicKey, challenge: forgedChallenge, nonce: await solvePow(forgedChallenge, 4) }), 403, 'TT_ERR_POW', /not issued by this relay/);
    const nonce = await solvePow(c.challenge, c.difficulty);
    const ok = await json(relay, 'POST', '/api/volunteers', { publicKey: me.publicKey, challenge: c.challenge, nonce });
    expect(ok.status).toBe(201);
    expect(ok.body.volunteerId).toBe(await identityId(fromBase64Url(me.publicKey)!));
    // one solution mints one identity
    const other = await createIdentity();
    refused(await json(relay, 'POST', '/api/volunteers', { publicKey: other.publicKey, challenge: c.challenge, nonce }), 403, 'TT_ERR_POW', /already used/);
  });

  it('refuses a forged lease token with 403 TT_ERR_LEASE_INVALID', async () => {
    const task = await lease(alice);
    const forged = { ...task, lease: task.lease.replace(/^./, (c) => (c === 'e' ? 'f' : 'e')) };
    refused(await signed(relay, alice, forged, frameOf(forged, alice.volunteerId)), 403, 'TT_ERR_LEASE_INVALID', /signature/);
  });

  it('refuses an expired lease with 409 TT_ERR_LEASE_EXPIRED', async () => {
    const task = await lease(alice, 'short-lease');
    while (Date.now() <= task.deadline + 50) await new Promise((r) => setTimeout(r, 50));
    refused(await signed(relay, alice, task, frameOf(task, alice.volunteerId)), 409, 'TT_ERR_LEASE_EXPIRED', /expired/);
  });

  it('refuses a lease issued to another volunteer: under its own id 403 TT_ERR_LEASE_INVALID, under the owner\'s id 403 TT_ERR_SIGNATURE', async () => {
    const task = await lease(alice);
    refused(await signed(relay, bob, task, frameOf(task, bob.volunteerId)), 403, 'TT_ERR_LEASE_INVALID', /issued to volunteer/);
    refused(await signed(relay, bob, task, frameOf(task, alice.volunteerId)), 403, 'TT_ERR_SIGNATURE', /does not match/);
    expect(relay.app.store.getTask(task.taskId)!.state).toBe('issued'); // the owner can still deliver
    expect((await signed(relay, alice, task, frameOf(task, alice.volunteerId))).status).toBe(200);
  });

  it('refuses a tampered body, a wrong signature and a missing one with 403 TT_ERR_SIGNATURE', async () => {
    const task = await lease(alice);
    const frame = frameOf(task, alice.volunteerId);
    const headers = await alice.uploadHeaders(task.taskId, task.lease, frame);
    const tampered = frame.slice(); tampered[tampered.length - 7] ^= 0x40;
    refused(await post(relay, task.taskId, tampered, headers), 403, 'TT_ERR_SIGNATURE', /does not match/);
    const stranger = await createIdentity();
    refused(await post(relay, task.taskId, frame, { 'x-tabtrain-signature': await signUpdate(stranger, task.taskId, task.lease, frame) }), 403, 'TT_ERR_SIGNATURE', /does not match/);
    refused(await post(relay, task.taskId, frame, { 'x-tabtrain-signature': 'not-a-signature' }), 403, 'TT_ERR_SIGNATURE', /64 bytes/);
    refused(await post(relay, task.taskId, frame, {}), 403, 'TT_ERR_SIGNATURE', /x-tabtrain-signature/);
    expect((await post(relay, task.taskId, frame, headers)).status).toBe(200);
  });

  it('answers an idempotent re-send the same and counts it once; a reused lease is 409 TT_ERR_LEASE_USED', async () => {
    const task = await lease(bob);
    const frame = frameOf(task, bob.volunteerId, delta(3));
    const before = await metric(relay, 'tabtrain_updates_accepted_total', 'job="mnist-mlp"');
    const first = await signed(relay, bob, task, frame);
    const again = await signed(relay, bob, task, frame);
    expect(first.status).toBe(200);
    expect(again.body).toEqual({ ...first.body, duplicate: true });
    expect(relay.app.store.listUpdates('mnist-mlp').filter((u) => u.taskId === task.taskId)).toHaveLength(1);
    expect(await metric(relay, 'tabtrain_updates_accepted_total', 'job="mnist-mlp"')).toBe(before + 1);
    refused(await signed(relay, bob, task, frameOf(task, bob.volunteerId, delta(4))), 409, 'TT_ERR_LEASE_USED', /already used/);
  });

  it('validates before storing: an all-zero update is 422, one far above the round\'s norms is 422; refusals are counted by reason', async () => {
    const zero = await lease(alice);
    refused(await signed(relay, alice, zero, frameOf(zero, alice.volunteerId, new Float32Array(N))), 422, 'TT_ERR_EMPTY_UPDATE', /all zeros/);
    // the round already holds several updates of norm ≈ 0.2; 20× that is over the 3×-median bound
    const big = await lease(alice);
    refused(await signed(relay, alice, big, frameOf(big, alice.volunteerId, delta(5, 2e-2))), 422, 'TT_ERR_UPDATE_NORM', /this round's bound/);
    expect(relay.app.store.getTask(big.taskId)!.state).toBe('rejected');
    expect(await metric(relay, 'tabtrain_updates_rejected_total', 'reason="TT_ERR_SIGNATURE"')).toBeGreaterThanOrEqual(4);
    expect(await metric(relay, 'tabtrain_updates_rejected_total', 'reason="TT_ERR_UPDATE_NORM"')).toBe(1);
    expect(relay.app.scheduler.guard.refusals()).toMatchObject({ TT_ERR_EMPTY_UPDATE: 1, TT_ERR_LEASE_USED: 1 });
  });
});

describe('signed task requests', () => {
  let relay: TestRelay, alice: SignedVolunteer, bob: SignedVolunteer;
  beforeAll(async () => {
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 1000, quorum: 1000 }, defence: { replication: { baseRate: 0 } } });
    alice = await registerSigned(relay.url, 'alice');
    bob = await registerSigned(relay.url, 'bob');
  });
  afterAll(async () => { await relay.stop(); });
  const ask = async (volunteerId: string, headers: Record<string, string>): Promise<Answer> => {
    const res = await fetch(`${relay.url}/api/jobs/mnist-mlp/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ volunteerId }) });
    return { status: res.status, headers: res.headers, body: await res.json() };
  };

  it('nobody asks for work in another volunteer\'s name, late, or twice with one signature', async () => {
    refused(await ask(alice.volunteerId, {}), 403, 'TT_ERR_REQUEST_SIGNATURE', /x-tabtrain-signature.*x-tabtrain-time/);
    refused(await ask(alice.volunteerId, await bob.taskRequestHeaders('mnist-mlp')), 403, 'TT_ERR_REQUEST_SIGNATURE', /WRONG_SIGNATURE/);
    const at = Date.now() - 5 * 60_000;
    const late = await ask(alice.volunteerId, { 'x-tabtrain-time': String(at), 'x-tabtrain-signature': await signTaskRequest(alice.identity, 'mnist-mlp', at) });
    refused(late, 401, 'TT_ERR_REQUEST_TIME', /not within 60 s of the relay's clock/);
    expect(Math.abs(Number(late.headers.get('x-tabtrain-time')) - Date.now())).toBeLessThan(60_000); // the relay's clock, to sign with
    const signed = await alice.taskRequestHeaders('mnist-mlp');
    expect((await ask(alice.volunteerId, signed)).status).toBe(200);
    refused(await ask(alice.volunteerId, signed), 403, 'TT_ERR_REQUEST_SIGNATURE', /already used/);
    expect(relay.app.scheduler.guard.refusals()).toMatchObject({ TT_ERR_REQUEST_SIGNATURE: 3, TT_ERR_REQUEST_TIME: 1 });
  });

  it('a volunteer whose clock is ten minutes off learns the relay\'s from its refusal and gets its task', async () => {
    const skewed = new RelayClient(relay.url, (u, init) => fetch(u, init), { now: () => Date.now() + 10 * 60_000, retry: { baseMs: 10, maxMs: 50, attempts: 2 } });
    const got = await skewed.lease('mnist-mlp', bob.volunteerId, (jobId, at) => signTaskRequest(bob.identity, jobId, at));
    expect('task' in got && got.task.jobId).toBe('mnist-mlp');
  });
});

describe('spot checks and rate limits', () => {
  it('a spot-check disagreement costs both volunteers reputation; repeated, it means no work (403)', async () => {
    // every task is spot-checked; two strikes ban (all volunteers here share loopback: pairs may share a network)
    const relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 1000, quorum: 1000 }, defence: { replication: { baseRate: 1, suspectRate: 1, banAt: 2, distinctNetworks: false } } });
    try {
      const [honest, liar, c, d] = [await registerSigned(relay.url), await registerSigned(relay.url), await registerSigned(relay.url), await registerSigned(relay.url)];
      // an agreeing pair first: same Δ from both copies
      const c1 = await lease(c), d1 = await lease(d);
      // int8 (the default codec): the copies carry error feedback, and nothing tells them apart from other tasks
      expect(c1.replica ?? d1.replica).toBeUndefined();
      expect([d1.baseVersion, d1.shard, d1.seed]).toEqual([c1.baseVersion, c1.shard, c1.seed]);
      expect((await signed(relay, c, c1, frameOf(c1, c.volunteerId))).status).toBe(200);
      expect((await signed(relay, d, d1, frameOf(d1, d.volunteerId))).status).toBe(200);
      expect((await relay.app.scheduler.guard.store.reputation(c.volunteerId))).toEqual({ state: 'new', cleanStreak: 1, strikes: 0 });
      expect(await metric(relay, 'tabtrain_spot_checks_total', 'outcome="agree"')).toBe(1);

      for (let round = 1; round <= 2; round++) {
        const a = await lease(honest), b = await lease(liar);
        expect([b.baseVersion, b.shard, b.seed]).toEqual([a.baseVersion, a.shard, a.seed]);
        expect((await signed(relay, honest, a, frameOf(a, honest.volunteerId, delta(round)))).status).toBe(200);
        // the liar flips its update: valid on its own (same norm), caught only by comparing the copies
        expect((await signed(relay, liar, b, frameOf(b, liar.volunteerId, delta(round).map((x) => -x)))).status).toBe(200);
        await relay.app.scheduler.settled(); // the tie-break against the relay's own copy matches neither
        expect((await relay.app.scheduler.guard.store.reputation(honest.volunteerId)).strikes).toBe(round);
        const rep = (await relay.app.scheduler.guard.store.reputation(liar.volunteerId));
        expect(rep.strikes).toBe(round);
        expect(rep.state).toBe(round === 1 ? 'suspect' : 'banned');
      }
      expect(await metric(relay, 'tabtrain_spot_checks_total', 'outcome="disagree"')).toBe(2);
      refused(await signedJson(liar, 'mnist-mlp'), 403, 'TT_ERR_VOLUNTEER_BANNED', /no more work/);
      expect(await metric(relay, 'tabtrain_updates_rejected_total', 'reason="TT_ERR_VOLUNTEER_BANNED"')).toBe(1);
    } finally {
      await relay.stop();
    }
  });

  // the client's network from the connection itself, or from X-Forwarded-For behind a trusted proxy
  for (const via of ['the connection', 'a trusted proxy'] as const) {
    it(`a spot check's second copy goes to another network, never to a second identity on the same one (address from ${via})`, async () => {
      const relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 1000, quorum: 1000 }, defence: { replication: { baseRate: 1 } },
        ...(via === 'a trusted proxy' ? { trustProxy: '127.0.0.1' } : {}) });
      try {
        // three volunteers: two in 127.0.1.0/24 (one person's two identities), one in 127.0.2.0/24
        const [a, sybil, other] = [await registerSigned(relay.url), await registerSigned(relay.url), await registerSigned(relay.url)];
        const leaseFrom = async (address: string, v: SignedVolunteer) => {
          const signed = await v.taskRequestHeaders('mnist-mlp');
          return new Promise<Task>((resolve, reject) => {
          const body = JSON.stringify({ volunteerId: v.volunteerId });
          const headers = { ...signed, 'content-length': Buffer.byteLength(body), ...(via === 'a trusted proxy' ? { 'x-forwarded-for': address } : {}) };
          const req = request(`${relay.url}/api/jobs/mnist-mlp/tasks`, { method: 'POST', headers, ...(via === 'the connection' ? { localAddress: address } : {}) }, (res) => {
            let text = '';
            res.on('data', (c) => { text += c; });
            res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text) as Task) : reject(new Error(`${res.statusCode} ${text}`))));
          });
          req.on('error', reject);
          req.end(body);
          });
        };
        const first = await leaseFrom('127.0.1.1', a); // every task is a check: this one opens a pair
        const same = (t: Task) => t.shard === first.shard && t.seed === first.seed && t.baseVersion === first.baseVersion;
        const fromSybil = await leaseFrom('127.0.1.2', sybil);
        expect(same(fromSybil)).toBe(false); // same /24: a fresh task, which opens a pair of its own
        const fromOther = await leaseFrom('127.0.2.1', other);
        expect(same(fromOther)).toBe(true); // another network takes the oldest open check: a's
      } finally {
        await relay.stop();
      }
    });
  }

  it('the relay breaks a tie with its own CPU copy: the honest volunteer stays clean, the liar is struck', async () => {
    const relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 1000, quorum: 1000, steps: 5 }, defence: { replication: { baseRate: 1, distinctNetworks: false } } });
    try {
      const honest = await registerSigned(relay.url), liar = await registerSigned(relay.url);
      const a = await lease(honest), b = await lease(liar);
      // the honest copy: what the volunteer loop computes (CPU trainer, seeded batches, no error feedback)
      const real = await honestDelta(relay.url, a);
      expect((await signed(relay, honest, a, frameOf(a, honest.volunteerId, real))).status).toBe(200);
      // the liar sends a scaled sign flip of the same update
      expect((await signed(relay, liar, b, frameOf(b, liar.volunteerId, real.map((x) => -0.5 * x)))).status).toBe(200);
      await relay.app.scheduler.settled();
      expect((await relay.app.scheduler.guard.store.reputation(honest.volunteerId))).toEqual({ state: 'new', cleanStreak: 1, strikes: 0 });
      expect((await relay.app.scheduler.guard.store.reputation(liar.volunteerId))).toEqual({ state: 'suspect', cleanStreak: 0, strikes: 1 });
      // the check's second copy is kept to compare, not counted in the round: one shard and seed weigh once
      expect(relay.app.store.pendingUpdates('mnist-mlp').map((u) => [u.taskId, u.weight])).toEqual([[a.taskId, 1], [b.taskId, 0]]);
    } finally {
      await relay.stop();
    }
  });

  it('rate limits task requests per identity and registrations per address with 429 and Retry-After', async () => {
    const relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 1000, quorum: 1000 }, defence: {
      limits: { tasksPerIdentity: { capacity: 2, refillPerSecond: 0.01 }, registerPerAddress: { capacity: 2, refillPerSecond: 0.01 } },
    } });
    try {
      const v = await registerSigned(relay.url);
      await lease(v);
      await lease(v);
      const third = await signedJson(v, 'mnist-mlp');
      refused(third, 429, 'TT_ERR_RATE_LIMITED', /tasksPerIdentity/);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      await registerSigned(relay.url);
      await expect(registerSigned(relay.url)).rejects.toThrow(/429/);
      expect(await metric(relay, 'tabtrain_updates_rejected_total', 'reason="TT_ERR_RATE_LIMITED"')).toBe(2);
    } finally {
      await relay.stop();
    }
  });

  for (const compression of [{ kind: 'int8', block: 256 }, { kind: 'topk', fraction: 0.05, bits: 8 }] as const) {
    it(`honest volunteers running the loop agree on their spot checks (${compression.kind}: ${compression.kind === 'topk' ? 'flagged replicas go without error feedback' : 'unflagged, with error feedback'})`, async () => {
      const relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 4, quorum: 4, steps: 5, compression }, defence: { replication: { baseRate: 1, distinctNetworks: false } } });
      const vs = startVolunteers(relay.url, 2);
      try {
        await waitFor(() => metric(relay, 'tabtrain_spot_checks_total', 'outcome="agree"'), (n) => n >= 4);
        expect(await metric(relay, 'tabtrain_spot_checks_total', 'outcome="disagree"')).toBe(0);
        expect(vs.events.filter((e) => e.type === 'error')).toEqual([]);
        const flagged = vs.events.filter((e) => e.type === 'task' && e.task.replica).length;
        if (compression.kind === 'topk') expect(flagged).toBeGreaterThan(0);
        else expect(flagged).toBe(0);
      } finally {
        await vs.stop();
        await relay.stop();
      }
    });
  }
});
