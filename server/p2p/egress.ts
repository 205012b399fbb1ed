// Bytes the relay sends, by what they are: model (params and deltas), shards, the rest. Beside what
// tabs report carrying for each other (server/p2p/routes.ts), this is what peer-to-peer sharing saves.
import type { FastifyInstance } from 'fastify';
import type { Counter } from 'prom-client';

export type EgressKind = 'model' | 'shard' | 'other';

export const egressKind = (url: string): EgressKind => {
  const path = url.split('?', 1)[0];
  return /^\/api\/jobs\/[^/]+\/versions\/\d+\/(params|delta)$/.test(path) ? 'model' : /^\/api\/jobs\/[^/]+\/shards\/\d+$/.test(path) ? 'shard' : 'other';
};

export function countEgress(app: FastifyInstance, counter: Counter<'kind'>): void {
  app.addHook('onSend', async (req, reply, payload) => {
    const n = typeof payload === 'string' ? Buffer.byteLength(payload)
      : Buffer.isBuffer(payload) ? payload.length
        : Number(reply.getHeader('content-length')) || 0; // streams (static files): as declared
    if (n > 0) counter.inc({ kind: egressKind(req.url) }, n);
    return payload;
  });
}
