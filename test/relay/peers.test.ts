// The other relays of a network (RelayOptions.peers, `tabtrain start --peers`): their pages may call this
// relay's volunteer API (CORS for exactly their origins, never the operator routes), and pages served here
// may reach them (CSP connect-src). Real relay, real HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

describe('peer relays', () => {
  let relay: TestRelay;
  const peer = 'https://relay2.example:8443';
  beforeAll(async () => { relay = await startRelay({ evaluate: false, peers: [`${peer}/some/path`] }); });
  afterAll(async () => { await relay.stop(); });

  const preflight = (origin: string, path: string) => fetch(relay.url + path, {
    method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-tabtrain-signature, x-tabtrain-time, x-tabtrain-protocol' },
  });

  it('answers a peer page\'s preflight and requests on the volunteer API with CORS for its origin only', async () => {
    const ok = await preflight(peer, '/api/jobs/mnist-mlp/tasks');
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(peer);
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/x-tabtrain-signature/);
    const jobs = await fetch(`${relay.url}/api/jobs`, { headers: { origin: peer } });
    expect(jobs.headers.get('access-control-allow-origin')).toBe(peer);
    expect(jobs.headers.get('access-control-expose-headers')).toMatch(/x-tabtrain-time/);
    const stranger = await preflight('https://elsewhere.example', '/api/jobs/mnist-mlp/tasks');
    expect(stranger.status).toBe(404);
    expect(stranger.headers.get('access-control-allow-origin')).toBeNull();
    expect((await fetch(`${relay.url}/api/jobs`, { headers: { origin: 'https://elsewhere.example' } })).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('never opens the operator routes to other origins', async () => {
    const ops = await preflight(peer, '/api/ops/jobs');
    expect(ops.status).toBe(404);
    expect(ops.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('lets pages served here connect to the peers (CSP connect-src)', async () => {
    const csp = (await fetch(`${relay.url}/healthz`)).headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(new RegExp(`connect-src 'self' ${peer.replace(/[.]/g, '\\.')}(;|$)`));
  });
});
