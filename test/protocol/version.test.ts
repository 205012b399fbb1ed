// The protocol version (shared/protocol/version.ts): every client sends it, and a relay refuses a client
// too old for it with 426 TT_ERR_CLIENT_TOO_OLD and what to do, before anything else is looked at. Real
// relays on loopback, the real volunteer client and the Node volunteer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNodeVolunteer } from '../../server/volunteer/run.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../../shared/protocol/version.ts';
import { RelayClient, RelayHttpError } from '../../shared/volunteer/client.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

type Answer = { status: number; body: { error: { code: string; message: string } } };
const ask = async (url: string, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> => {
  const res = await fetch(url + path, { method, headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers }, body: body ? JSON.stringify(body) : undefined });
  return { status: res.status, body: await res.json() as Answer['body'] };
};

describe('protocol version', () => {
  let relay: TestRelay;
  beforeAll(async () => { relay = await startRelay({ evaluate: false }); });
  afterAll(async () => { await relay.stop(); });

  it('an older client is refused with 426 TT_ERR_CLIENT_TOO_OLD on registration, challenges and task requests, told to reload or update', async () => {
    const old = { [PROTOCOL_HEADER]: '0' };
    const v = await registerSigned(relay.url, 'old-client');
    for (const r of [
      await ask(relay.url, 'GET', '/api/volunteers/challenge', old),
      await ask(relay.url, 'POST', '/api/volunteers', old, { agent: 'old' }),
      // an old body shape is refused for its version, not as a validation error
      await ask(relay.url, 'POST', '/api/jobs/mnist-mlp/tasks', { ...old, ...(await v.taskRequestHeaders('mnist-mlp')) }, { volunteer: v.volunteerId }),
    ]) {
      expect(r.status).toBe(426);
      expect(r.body.error.code).toBe('TT_ERR_CLIENT_TOO_OLD');
      expect(r.body.error.message).toMatch(/protocol version 0.*needs version 1 or newer/);
      expect(r.body.error.message).toMatch(/reload the page/);
      expect(r.body.error.message).toMatch(/update the tabtrain command line/);
    }
  });

  it('the current client is accepted, and says its version on every request', async () => {
    const seen: (string | null)[] = [];
    const client = new RelayClient(relay.url, (u, init) => {
      seen.push(new Headers(init?.headers).get(PROTOCOL_HEADER));
      return fetch(u, init);
    });
    const { challenge, difficulty } = await client.challenge();
    expect(challenge.length).toBeGreaterThan(10);
    expect(difficulty).toBeGreaterThanOrEqual(0);
    expect((await client.jobs()).map((j) => j.jobId)).toContain('mnist-mlp');
    expect(seen).toEqual([String(PROTOCOL_VERSION), String(PROTOCOL_VERSION)]);
  });

  it('a request without the header is taken as version 1, served today', async () => {
    const r = await fetch(`${relay.url}/api/volunteers/challenge`);
    expect(r.status).toBe(200);
    expect(r.headers.get(PROTOCOL_HEADER)).toBe(String(PROTOCOL_VERSION)); // the relay says what it speaks
  });

  it('a client newer than the relay gets 400 TT_ERR_RELAY_TOO_OLD, and a malformed version 400 naming the header', async () => {
    const newer = await ask(relay.url, 'GET', '/api/volunteers/challenge', { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION + 1) });
    expect(newer.status).toBe(400);
    expect(newer.body.error.code).toBe('TT_ERR_RELAY_TOO_OLD');
    expect(newer.body.error.message).toMatch(/newer than this relay's/);
    const bad = await ask(relay.url, 'GET', '/api/volunteers/challenge', { [PROTOCOL_HEADER]: 'one' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('TT_ERR_VALIDATION');
    expect(bad.body.error.message).toMatch(/x-tabtrain-protocol must be a whole number/);
  });
});

describe('a relay that no longer serves this client\'s version', () => {
  let relay: TestRelay;
  beforeAll(async () => { relay = await startRelay({ evaluate: false, minProtocolVersion: PROTOCOL_VERSION + 1 }); });
  afterAll(async () => { await relay.stop(); });

  it('refuses a request without the header, taken as version 1', async () => {
    const r = await ask(relay.url, 'GET', '/api/volunteers/challenge', {});
    expect(r.status).toBe(426);
    expect(r.body.error.code).toBe('TT_ERR_CLIENT_TOO_OLD');
  });

  it('the client surfaces the typed code, and the Node volunteer stops at once saying what to do instead of retrying', async () => {
    const client = new RelayClient(relay.url, (u, init) => fetch(u, init));
    const refused = await client.challenge().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RelayHttpError);
    expect(refused).toMatchObject({ status: 426, code: 'TT_ERR_CLIENT_TOO_OLD' });
    const stateDir = mkdtempSync(join(tmpdir(), 'tabtrain-old-volunteer-'));
    try {
      const stop = new AbortController();
      const ran = await runNodeVolunteer({ server: relay.url, stateDir, cpu: true, quiet: true, signal: stop.signal }).catch((e: unknown) => e);
      expect(ran).toMatchObject({ code: 'TT_ERR_CLIENT_TOO_OLD' });
      expect((ran as Error).message).toMatch(/update the tabtrain command line/);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
