// The other relays of one network (relays sharing a database): a volunteer page served by this relay may
// fail over to them (web/volunteer: ?relays=URL,URL), so the page's Content-Security-Policy lets it reach
// them, and this relay answers cross-origin volunteer requests from their pages (CORS, for those origins
// only: the volunteer API carries no cookies, its requests are signed, but nothing else needs it).
import type { FastifyInstance } from 'fastify';

/** What a volunteer sends besides simple headers, and what it reads from answers. */
const ALLOW_HEADERS = 'content-type, x-tabtrain-time, x-tabtrain-signature, x-tabtrain-protocol';
const EXPOSE_HEADERS = 'retry-after, x-tabtrain-time, x-tabtrain-hash, x-tabtrain-retry-ms, x-tabtrain-job-status, x-tabtrain-protocol';

/** A peer as an origin (scheme://host:port), as browsers send it in Origin. */
export function peerOrigin(url: string): string {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`a peer relay must be an http(s) URL, got "${url}"`);
  return u.origin;
}

/** Answers CORS for requests from the peers' pages to the volunteer API (/api/, not the operator routes). */
export function allowPeers(app: FastifyInstance, peers: readonly string[]): void {
  const origins = new Set(peers.map(peerOrigin));
  if (origins.size === 0) return;
  const allowed = (origin: unknown, url: string): origin is string =>
    typeof origin === 'string' && origins.has(origin) && url.startsWith('/api/') && !url.startsWith('/api/ops/');
  app.addHook('onRequest', async (req, reply) => {
    if (!allowed(req.headers.origin, req.url)) return;
    reply.header('access-control-allow-origin', req.headers.origin).header('vary', 'Origin').header('access-control-expose-headers', EXPOSE_HEADERS);
  });
  // preflight of a signed task request or an upload (custom headers, non-simple content types)
  app.options('/api/*', async (req, reply) => {
    if (!allowed(req.headers.origin, req.url)) return reply.status(404).send({ error: { code: 'TT_ERR_NOT_FOUND', message: `no route OPTIONS ${req.url.split('?')[0]}; see docs/protocol.md` } });
    return reply.status(204).header('access-control-allow-methods', 'GET, POST').header('access-control-allow-headers', ALLOW_HEADERS).header('access-control-max-age', '600').send();
  });
}
