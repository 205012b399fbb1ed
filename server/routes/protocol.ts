// The protocol-version check (shared/protocol/version.ts): routes marked `config: { protocol: true }`
// (registration, challenges, task requests) refuse a client older than this relay serves with 426
// TT_ERR_CLIENT_TOO_OLD before anything else is looked at, so an old client's differently shaped body
// is never reported as a validation error instead.
import type { FastifyInstance } from 'fastify';
import { checkProtocol, PROTOCOL_HEADER, PROTOCOL_VERSION } from '../../shared/protocol/version.ts';
import { RelayError } from '../errors.ts';

export function installProtocolCheck(app: FastifyInstance, minVersion: number): void {
  const accepts = { min: minVersion, max: PROTOCOL_VERSION };
  app.addHook('onRequest', async (req, reply) => {
    // every answer says what this relay speaks, so a client can tell before it is refused
    reply.header(PROTOCOL_HEADER, String(PROTOCOL_VERSION));
    if (!req.routeOptions.config.protocol) return;
    const v = req.headers[PROTOCOL_HEADER];
    const verdict = checkProtocol(Array.isArray(v) ? v[0] : v, accepts);
    if (!verdict.ok) throw new RelayError(verdict.code, verdict.message);
  });
}
