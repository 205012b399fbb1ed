// The relay's peer-to-peer contract (docs/protocol.md, "Peer-to-peer"): where tabs signal, who holds
// which piece, what they report, and the SHA-256 of every shard. A piece is named by the SHA-256 of its
// bytes, so whoever serves it, the receiver checks what it got against a hash the relay gave.
import { Type, type Static } from '@sinclair/typebox';

/** Lower-case hex SHA-256: the name of a piece. */
export const PieceHash = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the piece, lower-case hex' });
/** A tab's PeerJS id, random per page. */
export const PeerId = Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$', description: 'the PeerJS id this tab opened on the signalling server' });

export const RelaySendsP2pConfig = Type.Object({
  enabled: Type.Boolean(),
  /** PeerJS signalling on this relay's own origin: ws(s)://<relay host><path>peerjs?key=<key>… */
  path: Type.String(), key: Type.String(),
  iceServers: Type.Array(Type.Object({
    urls: Type.Union([Type.String(), Type.Array(Type.String())]),
    username: Type.Optional(Type.String()), credential: Type.Optional(Type.String()),
  })),
});
export type P2pConfig = Static<typeof RelaySendsP2pConfig>;

export const VolunteerSendsAnnounce = Type.Object({
  peerId: PeerId,
  have: Type.Optional(Type.Array(PieceHash, { maxItems: 256, description: 'pieces this tab now holds and serves' })),
  /** totals since the page opened (the relay counts the growth, so a repeated report counts once) */
  received: Type.Optional(Type.Integer({ minimum: 0, description: 'bytes this tab has received from peers' })),
  sent: Type.Optional(Type.Integer({ minimum: 0, description: 'bytes this tab has served to peers' })),
}, { additionalProperties: false });
export type Announce = Static<typeof VolunteerSendsAnnounce>;

export const RelaySendsPeers = Type.Object({
  peers: Type.Array(Type.String(), { description: 'PeerJS ids that hold the piece, newest announcement first' }),
  waitMs: Type.Optional(Type.Integer({ minimum: 0, description: 'none holds it yet but another tab is fetching it from the relay: ask again after this' })),
});

export const RelaySendsShardList = Type.Object({
  shards: Type.Array(Type.Object({ shard: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }), sha256: Type.String() })),
});
export type ShardList = Static<typeof RelaySendsShardList>;
