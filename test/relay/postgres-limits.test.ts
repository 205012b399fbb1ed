// Rate limits and the replay window of signed task requests hold for the whole network, not per relay:
// two relays on one Postgres database, a volunteer (or an address) alternating between them gets exactly
// the limit it gets from one relay alone, and a signed task request used at one relay is refused at the
// other with the same status and code as a replay at the first. Real relays over loopback; addresses
// told by X-Forwarded-For (the relays trust the proxy header), so each check has an address of its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresPerFile } from '../helpers/postgres.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

const pgdb = postgresPerFile();
let a: TestRelay, b: TestRelay, alone: TestRelay;
// refill so slow that nothing comes back while the test runs: each bucket is its capacity, then 429
const slow = 1 / 3600;
const defence = { replication: { baseRate: 0 }, limits: { tasksPerIdentity: { capacity: 4, refillPerSecond: slow }, registerPerAddress: { capacity: 5, refillPerSecond: slow } } };
beforeAll(async () => {
  const common = { evaluate: false, trustProxy: true, defence } as const;
  [a, b] = await Promise.all([0, 1].map(() => startRelay({ ...common, databaseUrl: pgdb.url })));
  alone = await startRelay(common); // one relay on its own (SQLite): the limits to match
});
afterAll(async () => { await Promise.all([a, b, alone].map((r) => r?.stop())); });

/** Sends `ask(relay)` to relays in turn until one answers 429; the statuses before it. */
async function untilLimited(relays: TestRelay[], ask: (r: TestRelay) => Promise<Response>, most = 20): Promise<number[]> {
  const before: number[] = [];
  for (let i = 0; i < most; i++) {
    const res = await ask(relays[i % relays.length]);
    await res.body?.cancel();
    if (res.status === 429) return before;
    before.push(res.status);
  }
  throw new Error(`no 429 in ${most} requests: ${before.join(', ')}`);
}

const registerFrom = (address: string) => (r: TestRelay) => fetch(`${r.url}/api/volunteers`, {
  method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': address }, body: '{}',
});

describe('limits shared by relays on one Postgres', () => {
  it('an address alternating between two relays gets the registrations one relay gives it', async () => {
    const one = await untilLimited([alone], registerFrom('10.1.0.1'));
    const two = await untilLimited([a, b], registerFrom('10.1.0.2'));
    expect(one).toHaveLength(5);
    expect(two).toHaveLength(one.length);
    // the refusals before the limit are the request's own (no key), not the limit's
    expect(new Set([...one, ...two])).toEqual(new Set([400]));
    // the address is limited on both relays now, another address on neither
    expect((await registerFrom('10.1.0.2')(a)).status).toBe(429);
    expect((await registerFrom('10.1.0.2')(b)).status).toBe(429);
    expect((await registerFrom('10.1.0.3')(b)).status).toBe(400);
  });

  it('a volunteer alternating its task requests between two relays gets the task requests one relay gives it', async () => {
    const ask = (v: Awaited<ReturnType<typeof registerSigned>>) => async (r: TestRelay) => fetch(`${r.url}/api/jobs/mnist-mlp/tasks`, {
      method: 'POST', headers: await v.taskRequestHeaders('mnist-mlp'), body: JSON.stringify({ volunteerId: v.volunteerId }),
    });
    const one = await untilLimited([alone], ask(await registerSigned(alone.url, 'one')));
    const two = await untilLimited([a, b], ask(await registerSigned(a.url, 'two')));
    expect(one).toHaveLength(4);
    expect(two).toHaveLength(one.length);
    for (const s of [...one, ...two]) expect([200, 204]).toContain(s);
  });

  it('a signed task request used at one relay is refused at the other as a replay at the first is', async () => {
    const send = (r: TestRelay, v: Awaited<ReturnType<typeof registerSigned>>, headers: Record<string, string>) =>
      fetch(`${r.url}/api/jobs/mnist-mlp/tasks`, { method: 'POST', headers, body: JSON.stringify({ volunteerId: v.volunteerId }) });
    const refusal = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code });

    // on one relay: used, then replayed
    const v1 = await registerSigned(alone.url, 'replay-one');
    const h1 = await v1.taskRequestHeaders('mnist-mlp');
    expect([200, 204]).toContain((await send(alone, v1, h1)).status); // a task, or none now: either way the request was taken
    const onOne = await refusal(await send(alone, v1, h1));
    expect(onOne).toEqual({ status: 403, code: 'TT_ERR_REQUEST_SIGNATURE' });

    // on two: used at A, replayed at B
    const v2 = await registerSigned(a.url, 'replay-two');
    const h2 = await v2.taskRequestHeaders('mnist-mlp');
    expect([200, 204]).toContain((await send(a, v2, h2)).status);
    expect(await refusal(await send(b, v2, h2))).toEqual(onOne);
    // a fresh signature goes through on B
    expect([200, 204]).toContain((await send(b, v2, await v2.taskRequestHeaders('mnist-mlp'))).status);
  });
});
