// The PeerJS signalling server, on the relay's own port and origin: the PeerJS wire protocol (what the
// `peer` package's server speaks) over @fastify/websocket. Tabs that want a WebRTC data channel swap
// their offers, answers and ICE candidates through it; no piece of a model or shard ever passes here.
// Not the `peer` package itself: its server starts timers that nothing can stop (a relay that closed it
// would never let its process exit) and listens on a second origin, which the pages' Content-Security-
// Policy and a volunteer's firewall would both have to allow.
//   client → relay  ws  <path>/peerjs?key=K&id=ID&token=T   then JSON {type, dst, payload}
//   relay → client  {type: 'OPEN'} once; forwarded {type, src, dst, payload}; EXPIRE when dst is gone
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';

export const SIGNAL_PATH = '/p2p/';
export const SIGNAL_KEY = 'tabtrain';
/** PeerJS ids: the client's own, random; kept short and plain so they are safe in URLs and logs. */
const ID = /^[A-Za-z0-9_-]{8,64}$/;
const FORWARDED = new Set(['OFFER', 'ANSWER', 'CANDIDATE', 'LEAVE', 'EXPIRE']);
/** A signalling message carries an SDP or a candidate: a few KB. */
const MAX_MESSAGE_BYTES = 64 * 1024;

export type SignalOptions = { maxPeers: number; onOpen?(id: string): void; onClose?(id: string): void };

export type Signal = { connected(id: string): boolean; count(): number; close(): void };

export function mountSignal(app: FastifyInstance, o: SignalOptions): Signal {
  const peers = new Map<string, { token: string; socket: WebSocket }>();
  const send = (s: WebSocket, m: object) => { if (s.readyState === s.OPEN) s.send(JSON.stringify(m)); };
  const refuse = (s: WebSocket, type: string, msg: string) => { send(s, { type, payload: { msg } }); s.close(); };

  app.get(`${SIGNAL_PATH}peerjs`, { websocket: true }, (socket, req) => {
    const q = req.query as Record<string, string | undefined>;
    const id = q.id ?? '', token = q.token ?? '';
    if (q.key !== SIGNAL_KEY) return refuse(socket, 'ERROR', `Invalid key provided: this relay's key is "${SIGNAL_KEY}"`);
    if (!ID.test(id) || !token || token.length > 64) return refuse(socket, 'ERROR', 'No id, token, or key supplied to websocket server: id must be 8-64 letters, digits, _ or -');
    const known = peers.get(id);
    if (known && known.token !== token) return refuse(socket, 'ID-TAKEN', `ID "${id}" is taken`);
    if (!known && peers.size >= o.maxPeers) return refuse(socket, 'ERROR', 'Server has reached its concurrent user limit');
    if (known) known.socket.terminate(); // the same client reconnecting
    const me = { token, socket };
    peers.set(id, me);
    o.onOpen?.(id);
    send(socket, { type: 'OPEN' });
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary || data.length > MAX_MESSAGE_BYTES) return;
      let m: { type?: unknown; dst?: unknown; payload?: unknown };
      try { m = JSON.parse(data.toString()) as typeof m; } catch { return; }
      if (typeof m.type !== 'string' || !FORWARDED.has(m.type) || typeof m.dst !== 'string') return; // HEARTBEAT and noise
      const to = peers.get(m.dst);
      if (to) send(to.socket, { type: m.type, src: id, dst: m.dst, payload: m.payload });
      // the other side is gone: say so at once, so the caller tries another peer or the relay
      else if (m.type !== 'LEAVE' && m.type !== 'EXPIRE') send(socket, { type: 'EXPIRE', src: m.dst, dst: id });
    });
    socket.on('close', () => {
      if (peers.get(id) !== me) return;
      peers.delete(id);
      o.onClose?.(id);
    });
    socket.on('error', () => socket.terminate());
  });

  return {
    connected: (id) => peers.has(id),
    count: () => peers.size,
    close: () => { for (const p of peers.values()) p.socket.terminate(); peers.clear(); },
  };
}
