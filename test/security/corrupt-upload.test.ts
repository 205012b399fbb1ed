// Attack D: corrupt uploads (NaN, Inf, wrong length, bad sparse indices, undecodable payloads) under a valid signed lease
// were refused with 400 but left the task open and the volunteer unstruck: the same lease then took a
// valid frame, one identity sent NaN frames forever, and the refused tasks held the round's slots until
// their leases ran out. Now such a payload makes the task final (rejected, slot free at once) and is a
// strike; three strikes and the identity gets no work. A frame whose signature does not verify strikes nobody.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { defaultMlp, paramCount } from '../../shared/models/config.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { ask, frame, lease, payloadOf, refused, small, upload } from './helpers.ts';

const N = paramCount(defaultMlp);
const withValue = (x: number) => { const d = small(N); d[1234] = x; return encodeUpdate(d, { kind: 'fp32' }); };

describe('a corrupt payload under a verified lease is final and a strike', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    // K = 2 as on the attacked job: two leased tasks fill the round; nothing is spot-checked
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 2, quorum: 2 }, defence: { replication: { baseRate: 0 } } });
  });
  afterAll(async () => { await relay.stop(); });
  const reputation = (v: SignedVolunteer) => relay.app.scheduler.guard.store.reputation(v.volunteerId);

  it('NaN: 400, the task is rejected, the same lease cannot then deliver a valid frame, and the sender has a strike', async () => {
    const mallory = await registerSigned(relay.url, 'mallory');
    const task = await lease(mallory);
    refused(await upload(relay, mallory, task, frame(task, mallory.volunteerId, withValue(NaN))), 400, 'TT_ERR_BAD_UPDATE');
    expect(relay.app.store.getTask(task.taskId)!.state).toBe('rejected');
    refused(await upload(relay, mallory, task, frame(task, mallory.volunteerId, payloadOf(task, small(N)))), 409, 'TT_ERR_LEASE_USED');
    expect((await reputation(mallory))).toMatchObject({ state: 'suspect', strikes: 1 });
  });

  it('refused tasks free their round slots at once: after two corrupt uploads fill and empty a K = 2 round, another volunteer gets a task', async () => {
    const mallory = await registerSigned(relay.url, 'mallory-2'), honest = await registerSigned(relay.url, 'honest');
    const [a, b] = [await lease(mallory), await lease(mallory)];
    expect((await ask(honest)).status).toBe(204); // the round has all its work out
    refused(await upload(relay, mallory, a, frame(a, mallory.volunteerId, withValue(Infinity))), 400, 'TT_ERR_BAD_UPDATE');
    refused(await upload(relay, mallory, b, frame(b, mallory.volunteerId, encodeUpdate(new Float32Array(1000).fill(1e-3), b.compression))), 400, 'TT_ERR_PARAM_COUNT');
    const got = await ask(honest);
    expect(got.status).toBe(200);
    // and the honest volunteer's update goes in as usual
    expect((await upload(relay, honest, got.body, frame(got.body, honest.volunteerId, payloadOf(got.body, small(N))))).status).toBe(200);
    expect((await reputation(mallory)).strikes).toBe(2);
  });

  it('three corrupt payloads (NaN, an unknown codec kind, a truncated payload) and the identity gets no more work', async () => {
    const mallory = await registerSigned(relay.url, 'mallory-3');
    const corrupt = [
      (t: typeof first) => frame(t, mallory.volunteerId, withValue(NaN)),
      (t: typeof first) => { const p = payloadOf(t, small(N)).slice(); p[5] = 9; return frame(t, mallory.volunteerId, p); }, // unknown codec kind
      (t: typeof first) => frame(t, mallory.volunteerId, payloadOf(t, small(N)).subarray(0, 4000)), // truncated
    ];
    const first = await lease(mallory);
    let task = first;
    for (let i = 0; i < corrupt.length; i++) {
      if (i > 0) task = await lease(mallory);
      refused(await upload(relay, mallory, task, corrupt[i](task)), 400, 'TT_ERR_BAD_UPDATE');
      expect(relay.app.store.getTask(task.taskId)!.state).toBe('rejected');
    }
    expect((await reputation(mallory))).toMatchObject({ state: 'banned', strikes: 3 });
    refused(await ask(mallory), 403, 'TT_ERR_VOLUNTEER_BANNED', /no more work/);
  });

  it('bad sparse indices (a duplicated index in a top-k payload) are corrupt too: final and a strike', async () => {
    relay.app.scheduler.createJob('topk', defaultJobSpec({ updatesPerRound: 2, quorum: 2, compression: { kind: 'topk', fraction: 0.05, bits: 8 } }), 'running');
    const mallory = await registerSigned(relay.url, 'mallory-4');
    const task = await lease(mallory, 'topk');
    const p = payloadOf(task, small(N)).slice();
    p[p.length - 1] = 0; // the last index's gap (one varint byte) becomes 0: a duplicate of the one before
    refused(await upload(relay, mallory, task, frame(task, mallory.volunteerId, p)), 400, 'TT_ERR_BAD_UPDATE', /strictly ascending/);
    expect(relay.app.store.getTask(task.taskId)!.state).toBe('rejected');
    expect((await reputation(mallory))).toMatchObject({ state: 'suspect', strikes: 1 });
  });

  it('a corrupt frame whose signature or lease does not verify strikes nobody and leaves the task open', async () => {
    const victim = await registerSigned(relay.url, 'victim'), forger = await registerSigned(relay.url, 'forger');
    const task = await lease(victim);
    const bad = frame(task, victim.volunteerId, withValue(NaN));
    // signed by the forger's key in the victim's name
    refused(await upload(relay, forger, task, bad), 403, 'TT_ERR_SIGNATURE');
    // the victim's lease, altered
    const forged = { ...task, lease: task.lease.replace(/^./, (c) => (c === 'e' ? 'f' : 'e')) };
    refused(await upload(relay, forger, forged, frame(forged, victim.volunteerId, withValue(NaN))), 403, 'TT_ERR_LEASE_INVALID');
    expect((await reputation(victim))).toEqual({ state: 'new', cleanStreak: 0, strikes: 0 });
    expect((await reputation(forger)).strikes).toBe(0);
    expect(relay.app.store.getTask(task.taskId)!.state).toBe('issued');
    expect((await upload(relay, victim, task, frame(task, victim.volunteerId, payloadOf(task, small(N, 2))))).status).toBe(200);
  });
});
