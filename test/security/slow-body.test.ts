// Attack: a body (or headers) trickled a byte at a time holds a socket, and a file descriptor, for as
// long as the sender likes. The relay's request and headers deadlines (RelayOptions.timeouts, short
// here) must cut such a request off: Node answers 408 and closes the socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { CUT_SHORT_MS, head, openRaw } from './raw-http.ts';

let relay: TestRelay;
beforeAll(async () => { relay = await startRelay({ defaultJob: false, timeouts: { requestMs: 1_000, headersMs: 500 } }); });
afterAll(async () => { await relay.stop(); });

/** Writes one byte at a time until the relay closes the socket; returns how many it took. */
async function trickle(c: Awaited<ReturnType<typeof openRaw>>, byte: string): Promise<number> {
  let closed = false;
  void c.closed.then(() => { closed = true; });
  let n = 0;
  while (!closed) {
    await c.write(byte);
    n++;
    await new Promise((r) => setTimeout(r, 100));
  }
  return n;
}

describe('slow requests', () => {
  it('cuts off a body sent a byte at a time: 408 and the socket closed', async () => {
    const c = await openRaw(relay.url);
    await c.write(head('POST', '/api/volunteers', { 'content-type': 'application/json', 'content-length': '100000' }));
    const bytes = await trickle(c, ' ');
    const a = await c.answer;
    expect(a.status).toBe(408);
    expect(bytes).toBeLessThan(100_000); // the body never completed: the deadline, not the body's end, closed it
  }, CUT_SHORT_MS);

  it('cuts off headers sent a byte at a time', async () => {
    const c = await openRaw(relay.url);
    await c.write('GET /healthz HTTP/1.1\r\nhost: relay\r\nx-slow: ');
    const bytes = await trickle(c, 'a');
    expect(bytes).toBeGreaterThan(0);
    await c.closed;
    expect(c.socket.destroyed).toBe(true);
  }, CUT_SHORT_MS);

  it('still answers a request that arrives whole on the same kind of socket', async () => {
    const c = await openRaw(relay.url);
    await c.write(head('GET', '/healthz', {}));
    expect((await c.answer).status).toBe(200);
    c.socket.destroy();
  });
});
