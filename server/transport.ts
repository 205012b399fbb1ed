// The relay's HTTP server limits: header, request, keep-alive and idle deadlines (Node's own, set through
// Fastify's server options) and a cap on open connections per client address, so a slow or idle socket
// cannot be held forever and one address cannot spend the relay's file descriptors.
import { compile as compileTrust } from '@fastify/proxy-addr';
import type { ServerOptions } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { capConnectionsPerAddress } from './defence/connection-cap.ts';

export type Timeouts = {
  /** a request's headers must all arrive within this (default 30 s) */
  headersMs: number;
  /** a request, body included, must all arrive within this (default 120 s): a body sent a byte at a
   * time is cut off here */
  requestMs: number;
  /** an idle keep-alive connection is closed after this (default 72 s, past common proxies' 60 s) */
  keepAliveMs: number;
  /** a socket with no traffic either way is closed after this (default 60 s) */
  idleMs: number;
};

export const defaultTimeouts: Timeouts = { headersMs: 30_000, requestMs: 120_000, keepAliveMs: 72_000, idleMs: 60_000 };
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256;

/** Fastify server options for these deadlines (0 = none), over the defaults. */
export function timeoutOptions(given: Partial<Timeouts> = {}): { requestTimeout: number; keepAliveTimeout: number; connectionTimeout: number; http: ServerOptions } {
  const t: Timeouts = { ...defaultTimeouts, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) };
  // Node checks header and request deadlines every connectionsCheckingInterval (30 s by default): check
  // often enough that a short deadline is kept to within a quarter of itself
  const deadlines = [t.headersMs, t.requestMs].filter((ms) => ms > 0);
  const checkEvery = Math.max(50, Math.min(30_000, ...deadlines.map((ms) => Math.floor(ms / 4))));
  // Node refuses a headers deadline past the request's; a request deadline covers the headers anyway
  const headersMs = t.requestMs > 0 && (t.headersMs === 0 || t.headersMs > t.requestMs) ? t.requestMs : t.headersMs;
  return {
    requestTimeout: t.requestMs, keepAliveTimeout: t.keepAliveMs, connectionTimeout: t.idleMs,
    http: { headersTimeout: headersMs, requestTimeout: t.requestMs, connectionsCheckingInterval: checkEvery },
  };
}

/** Caps open connections per client address on the app's server (max 0: no cap), counting refusals in
 * tabtrain_connections_refused_total. Trusted proxies (as Fastify's trustProxy reads them) are not capped:
 * their connections carry many clients. */
export function capConnections(app: FastifyInstance, registry: Registry, max: number, trustProxy: boolean | string | undefined): void {
  if (max <= 0) return;
  const cap = capConnectionsPerAddress(app.server, max, trustedProxy(trustProxy));
  new Counter({
    name: 'tabtrain_connections_refused_total', help: 'connections dropped on arrival: their address had too many open', registers: [registry],
    collect() { this.reset(); this.inc(cap.refused()); },
  });
}

function trustedProxy(trust: boolean | string | undefined): (address: string) => boolean {
  if (trust === true) return () => true;
  if (!trust) return () => false;
  const f = compileTrust(trust.split(',').map((a) => a.trim()));
  return (address) => f(address, 0);
}
