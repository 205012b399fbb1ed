// Attack: one address opens socket after socket (slow or idle) until the relay runs out of file
// descriptors. With RelayOptions.maxConnectionsPerAddress (3 here) the relay destroys a socket past the
// cap on arrival; the address's other connections keep working, and a freed slot is usable again.
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, waitFor, type TestRelay } from '../helpers/relay.ts';
import { head, openRaw, type RawConnection } from './raw-http.ts';

const CAP = 3;
let relay: TestRelay | undefined;
const sockets: RawConnection[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.socket.destroy();
  await relay?.stop();
  relay = undefined;
});

/** A GET /healthz on a new socket: its status, or 0 if the relay closed the socket without an answer. */
async function healthOnNewSocket(url: string): Promise<number> {
  const c = await openRaw(url);
  sockets.push(c);
  await c.write(head('GET', '/healthz', {}));
  return c.answer.then((a) => a.status, () => 0);
}

describe('connections per address', () => {
  it('drops a connection past the cap and keeps serving those within it', async () => {
    relay = await startRelay({ defaultJob: false, maxConnectionsPerAddress: CAP });
    const held: RawConnection[] = [];
    for (let i = 0; i < CAP; i++) {
      const c = await openRaw(relay.url);
      sockets.push(c);
      held.push(c);
    }
    // the relay counts a socket on its 'connection' event: make sure all three are in before the fourth
    await held[CAP - 1].write(head('GET', '/healthz', {}));
    expect((await held[CAP - 1].answer).status).toBe(200);
    expect(await healthOnNewSocket(relay.url)).toBe(0);
    const metrics = await new Promise<string>((resolve) => {
      void held[0].write(head('GET', '/metrics', {}));
      void held[0].answer.then((a) => resolve(a.body));
    });
    expect(metrics).toMatch(/^tabtrain_connections_refused_total [1-9]/m);
    // a freed slot serves a new connection again
    held[1].socket.destroy();
    expect(await waitFor(() => healthOnNewSocket(relay!.url), (s) => s === 200, 50)).toBe(200);
  });

  it('does not cap a trusted proxy, whose connections carry many clients', async () => {
    relay = await startRelay({ defaultJob: false, maxConnectionsPerAddress: CAP, trustProxy: '127.0.0.1' });
    for (let i = 0; i < CAP; i++) sockets.push(await openRaw(relay.url));
    expect(await healthOnNewSocket(relay.url)).toBe(200);
  });
});
