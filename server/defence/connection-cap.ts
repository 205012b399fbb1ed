// At most N open TCP connections per remote address: past it a new socket is destroyed on arrival, before
// Node reads a byte from it, so one address cannot spend the relay's file descriptors (each slow or idle
// socket holds one). Counted on the socket's own peer address: behind a reverse proxy that address is the
// proxy's, so its connections are not capped (they carry many volunteers).
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export type ConnectionCap = { open(address: string): number; refused: () => number };

/** Caps `server`'s connections per remote address; `exempt` says which addresses are not capped. */
export function capConnectionsPerAddress(server: Server, max: number, exempt: (address: string) => boolean = () => false): ConnectionCap {
  const open = new Map<string, number>();
  let refused = 0;
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress;
    if (address === undefined) return void socket.destroy(); // already gone
    if (exempt(address)) return;
    const n = open.get(address) ?? 0;
    if (n >= max) {
      refused++;
      socket.destroy();
      return;
    }
    open.set(address, n + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
  });
  return { open: (address) => open.get(address) ?? 0, refused: () => refused };
}
