// Attack: probe or load the operator API without a token. A request with no valid token must get 401
// before its body is read or validated: a bad body must not earn a 400 that tells the prober about the
// route's schema, and a large upload must not be read for nobody. With a valid token, bad bodies still
// get their 400 as before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, startOpsRelay, type OpsRelay } from '../ops/helpers.ts';
import { CUT_SHORT_MS, codeOf, head, openRaw } from './raw-http.ts';

let relay: OpsRelay;
beforeAll(async () => { relay = await startOpsRelay(); });
afterAll(async () => { await relay.stop(); });

const send = async (method: string, path: string, body: string | undefined, headers: Record<string, string>) => {
  const r = await fetch(relay.url + path, { method, headers, body });
  return { status: r.status, code: ((await r.json()) as { error?: { code: string } }).error?.code };
};

describe('authentication before the body', () => {
  const cases: [string, string, string, string][] = [
    ['POST', '/api/ops/tokens', '{not json', 'application/json'],
    ['POST', '/api/ops/tokens', JSON.stringify({ role: 'emperor' }), 'application/json'],
    ['POST', '/api/ops/tokens', 'role=operator', 'text/plain'],
    ['POST', '/api/ops/jobs/mnist-mlp/rollback', JSON.stringify({ version: 'x' }), 'application/json'],
    ['POST', '/api/ops/jobs', 'not multipart', 'application/json'],
    ['DELETE', '/api/ops/tokens/t_none', '', 'application/json'],
  ];

  it.each(cases)('%s %s with a bad body and no token is 401', async (method, path, body, type) => {
    expect(await send(method, path, body || undefined, { 'content-type': type })).toEqual({ status: 401, code: 'TT_ERR_UNAUTHENTICATED' });
    expect(await send(method, path, body || undefined, { 'content-type': type, ...bearer('tt_not_a_token') })).toEqual({ status: 401, code: 'TT_ERR_UNAUTHENTICATED' });
  });

  it('a bad query on an authenticated read without a token is 401', async () => {
    expect(await send('GET', '/api/ops/audit?limit=-5', undefined, {})).toEqual({ status: 401, code: 'TT_ERR_UNAUTHENTICATED' });
  });

  it('with a valid token, a bad body is still 400', async () => {
    expect(await send('POST', '/api/ops/tokens', '{not json', { 'content-type': 'application/json', ...bearer(relay.operator) })).toEqual({ status: 400, code: 'TT_ERR_BAD_JSON' });
    expect(await send('POST', '/api/ops/tokens', JSON.stringify({ role: 'emperor' }), { 'content-type': 'application/json', ...bearer(relay.operator) })).toEqual({ status: 400, code: 'TT_ERR_VALIDATION' });
  });

  it('answers 401 to an upload without a token before reading its body', async () => {
    const c = await openRaw(relay.url);
    await c.write(head('POST', '/api/ops/jobs', { 'content-type': 'multipart/form-data; boundary=x', 'transfer-encoding': 'chunked' }));
    await c.chunk(new Uint8Array(64 * 1024)); // the start of a dataset that never ends
    const a = await c.answer;
    expect(a.status).toBe(401);
    expect(codeOf(a)).toBe('TT_ERR_UNAUTHENTICATED');
    expect(a.headers.connection).toBe('close');
    await c.closed;
  }, CUT_SHORT_MS);

  it('leaves public operator reads open', async () => {
    expect((await fetch(`${relay.url}/api/ops/snapshot`)).status).toBe(200);
  });
});
