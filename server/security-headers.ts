// Security headers on every answer, pages and API alike (helmet): the pages keep the API token in
// localStorage, so a Content-Security-Policy that allows only the relay's own scripts is what stands
// between an injected string and that token. The policy is what the pages need and no more: their
// module scripts and workers from 'self', onnxruntime-web's WebAssembly ('wasm-unsafe-eval'), fetch and
// the dashboard's event stream to 'self', and style attributes (the job page's probability bars).
import type { FastifyHelmetOptions } from '@fastify/helmet';

export const contentSecurityPolicy = {
  'default-src': ["'self'"],
  'script-src': ["'self'", "'wasm-unsafe-eval'"],
  'worker-src': ["'self'", 'blob:'],
  'connect-src': ["'self'"],
  'img-src': ["'self'", 'data:', 'blob:'],
  'style-src': ["'self'", "'unsafe-inline'"],
  'font-src': ["'self'", 'data:'],
  'object-src': ["'none'"],
  'base-uri': ["'self'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
  // a relay on a LAN may be plain http: upgrading its own requests to https would break every page
  'upgrade-insecure-requests': null,
};

/** Options for @fastify/helmet, registered on the root context so every route gets them. `peers`: the
 * other relays of the network (server/peers.ts), which the volunteer page may fail over to. */
export const helmetOptionsFor = (peers: readonly string[] = []): FastifyHelmetOptions => ({
  ...helmetOptions,
  contentSecurityPolicy: { useDefaults: false, directives: { ...contentSecurityPolicy, 'connect-src': ["'self'", ...peers] } },
});

export const helmetOptions: FastifyHelmetOptions = {
  contentSecurityPolicy: { useDefaults: false, directives: contentSecurityPolicy },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
  // the relay may be reached over plain http (a LAN, tests): no HSTS unless a proxy in front adds it
  strictTransportSecurity: false,
};
