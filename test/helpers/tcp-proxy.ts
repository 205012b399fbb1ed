// A TCP proxy on loopback in front of a real server, that a test can cut (every connection dropped, new
// ones refused) and restore: the database "goes away" for the relays behind it without stopping the
// server other test files share.
import { createServer, connect, type Server, type Socket } from 'node:net';

export type TcpProxy = { port: number; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> };

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () => new Promise<void>((resolve, reject) => {
    const s = createServer((client) => {
      const upstream = connect(target.port, target.host);
      for (const x of [client, upstream]) { sockets.add(x); x.on('close', () => sockets.delete(x)); x.on('error', () => x.destroy()); }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    s.once('error', reject);
    // the same port after a restore: the relays keep their database URL
    s.listen(port, '127.0.0.1', () => { port = (s.address() as { port: number }).port; server = s; resolve(); });
  });
  const stop = async () => {
    const s = server;
    server = undefined;
    for (const x of sockets) x.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  await listen();
  return { get port() { return port; }, cut: stop, restore: listen, close: stop };
}

/** host and port of a postgres URL */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 5432) };
}

/** the URL with its host and port replaced by the proxy's */
export function viaProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}
