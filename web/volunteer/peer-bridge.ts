// The worker's side of peer-to-peer sharing: the loop's PeerSource (shared/volunteer/pieces.ts), carried
// over postMessage to the page, which holds the WebRTC peers (web/volunteer/peers.ts).
import type { PeerSource } from '../../shared/volunteer/pieces.ts';
import type { PageSends, WorkerSends } from './messages.ts';

export type PeerBridge = PeerSource & { onPage(m: PageSends): boolean };

export function peerBridge(post: (m: WorkerSends, transfer?: Transferable[]) => void): PeerBridge {
  let next = 0;
  const waiting = new Map<number, (b: Uint8Array | undefined) => void>();
  return {
    get: (hash, bytes) => new Promise((resolve) => {
      const id = ++next;
      waiting.set(id, resolve);
      post({ type: 'piece-get', id, hash, bytes });
    }),
    bad: (hash) => post({ type: 'piece-bad', hash }),
    will: (hash) => post({ type: 'piece-will', hash }),
    // a copy: the loop keeps its own (the cached params, the shard)
    have: (hash, bytes) => { const copy = bytes.slice(); post({ type: 'piece-have', hash, bytes: copy.buffer }, [copy.buffer]); },
    onPage(m) {
      if (m.type !== 'piece') return false;
      waiting.get(m.id)?.(m.bytes ? new Uint8Array(m.bytes) : undefined);
      waiting.delete(m.id);
      return true;
    },
  };
}
