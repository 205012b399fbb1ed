// Peer-to-peer sharing between volunteer tabs: the signalling server (./signal.ts), the tracker of who
// holds which piece (./tracker.ts), and the routes tabs use to find each other and report what they
// carried. The relay never vouches for a peer: tabs check every piece against a hash the relay gave.
//   GET  /api/p2p                  where to signal, ICE servers, whether sharing is on
//   POST /api/p2p/announce         {peerId, have?, received?, sent?}
//   GET  /api/p2p/peers?piece=H    tabs holding piece H
import fastifyWebsocket from '@fastify/websocket';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { PeerId, PieceHash, RelaySendsP2pConfig, RelaySendsPeers, VolunteerSendsAnnounce, type Announce, type P2pConfig } from '../../shared/protocol/p2p.ts';
import { fail } from '../errors.ts';
import { countRefusals, errorResponses } from '../routes/common.ts';
import { mountSignal, SIGNAL_KEY, SIGNAL_PATH } from './signal.ts';
import { PieceTracker } from './tracker.ts';

export type P2pOptions = {
  /** peer-to-peer sharing on (default true); off, tabs fetch everything from the relay */
  enabled?: boolean;
  /** ICE servers tabs use (default none: enough on loopback and most LANs; add STUN/TURN for the internet) */
  iceServers?: P2pConfig['iceServers'];
  /** tabs connected to signalling at once (default 10 000) */
  maxPeers?: number;
};

/** Holders named per question: a tab tries a few, then the relay. */
const HOLDERS_PER_ANSWER = 4;
/** How long other tabs wait for the one fetching a piece nobody holds yet from the relay. */
const FETCH_GRACE_MS = 5_000;

const PeersQuery = Type.Object({ piece: PieceHash, except: Type.Optional(PeerId) }, { additionalProperties: false });

export const p2pRoutes: FastifyPluginAsync<P2pOptions> = async (app, o) => {
  countRefusals(app);
  const enabled = o.enabled ?? true;
  const config: P2pConfig = { enabled, path: SIGNAL_PATH, key: SIGNAL_KEY, iceServers: o.iceServers ?? [] };
  app.get('/api/p2p', { schema: { response: { 200: RelaySendsP2pConfig } } }, async () => config);
  if (!enabled) {
    const off = async () => fail('TT_ERR_P2P_OFF');
    app.post('/api/p2p/announce', off);
    app.get('/api/p2p/peers', off);
    return;
  }

  const tracker = new PieceTracker();
  await app.register(fastifyWebsocket, { options: { maxPayload: 64 * 1024 } });
  const signal = mountSignal(app, {
    maxPeers: o.maxPeers ?? 10_000,
    onOpen: () => app.metrics.peersConnected.set(signal.count()),
    onClose: (id) => { tracker.forget(id); app.metrics.peersConnected.set(signal.count()); },
  });
  app.addHook('onClose', async () => signal.close());

  app.post<{ Body: Announce }>('/api/p2p/announce', {
    config: { body: 'json' },
    schema: { body: VolunteerSendsAnnounce, response: { 200: Type.Object({ pieces: Type.Integer() }), ...errorResponses } },
  }, async (req) => {
    const { peerId, have = [], received = 0, sent = 0 } = req.body;
    if (!signal.connected(peerId)) fail('TT_ERR_UNKNOWN_PEER', peerId);
    tracker.have(peerId, have);
    // self-reported: a tab could lie about these, so they are shown, never paid for
    const grew = tracker.report(peerId, received, sent);
    if (grew.received) app.metrics.peerBytes.inc({ direction: 'received' }, grew.received);
    if (grew.sent) app.metrics.peerBytes.inc({ direction: 'sent' }, grew.sent);
    return { pieces: have.length };
  });

  app.get<{ Querystring: typeof PeersQuery.static }>('/api/p2p/peers', {
    schema: { querystring: PeersQuery, response: { 200: RelaySendsPeers, ...errorResponses } },
  }, async (req) => {
    const r = tracker.route(req.query.piece, HOLDERS_PER_ANSWER, req.query.except, Date.now(), FETCH_GRACE_MS);
    return { ...r, peers: r.peers.filter((p) => signal.connected(p)) };
  });
};
