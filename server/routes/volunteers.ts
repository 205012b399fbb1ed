// Volunteer identity: GET /api/volunteers/challenge hands out a signed proof-of-work challenge; POST
// /api/volunteers registers a public key with the solved challenge (rate-limited per address), and the
// volunteer id is derived from the key. Key-less registration only on a relay whose identity is 'optional'.
import type { FastifyPluginAsync } from 'fastify';
import { RelaySendsPowChallenge, RelaySendsVolunteer, VolunteerSendsRegistration, type Static } from './schemas.ts';
import { countRefusals, errorResponses } from './common.ts';

export const volunteerRoutes: FastifyPluginAsync = async (app) => {
  countRefusals(app);
  app.get('/api/volunteers/challenge', { config: { protocol: true }, schema: { response: { 200: RelaySendsPowChallenge, ...errorResponses } } }, async (req) => {
    const t = app.now();
    await app.scheduler.guard.limit('tasksPerAddress', `challenge:${req.ip}`, t);
    return app.scheduler.guard.challenge(t);
  });

  app.post<{ Body: Static<typeof VolunteerSendsRegistration> }>('/api/volunteers', {
    config: { body: 'json', protocol: true },
    // the body is optional: a bare POST registers an anonymous volunteer (on an 'optional' relay)
    preValidation: async (req) => { req.body ??= {}; },
    schema: { body: VolunteerSendsRegistration, response: { 201: RelaySendsVolunteer, ...errorResponses } },
  }, async (req, reply) => {
    const body = req.body ?? {};
    await app.scheduler.guard.limit('registerPerAddress', req.ip, app.now());
    const volunteerId = await app.scheduler.registerVolunteer(body.agent ?? '', body.device ?? '', body);
    return reply.status(201).send({ volunteerId });
  });
};
