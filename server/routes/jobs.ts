// Read side of jobs: listing, info, checkpoints (params by version, or a manifest and the published
// deltas that rebuild a version from an older one), shards and held-out evaluations.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { RelaySendsShardList, type ShardList } from '../../shared/protocol/p2p.ts';
import { dataset } from '../data/datasets.ts';
import { fail } from '../errors.ts';
import { errorResponses } from './common.ts';
import { encodedBytes, pickEncoding } from './wire-encoding.ts';
import { JobInfoSchema, JobParams, ManifestQuery, RelaySendsEvals, RelaySendsJobs, RelaySendsManifest, ShardParams, VersionParams, type Static } from './schemas.ts';
import { paramCount } from '../../shared/models/config.ts';
import { missingVersionMessage } from '../store/retention.ts';

/** If-None-Match against one strong ETag: a list of tags or `*` (RFC 9110 §13.1.2; weak tags compare
 * weakly, which for GET is what the RFC asks). */
export const etagMatches = (header: string | undefined, etag: string): boolean =>
  header !== undefined && (header.trim() === '*' || header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag));

/** Deltas listed in a manifest: a volunteer further behind than this downloads the params. */
const MANIFEST_DELTAS = 64;

/** Shards never change: their hashes are computed once per dataset. */
const shardLists = new WeakMap<readonly Uint8Array[], ShardList>();
const shardList = (shards: readonly Uint8Array[]): ShardList => {
  let l = shardLists.get(shards);
  if (!l) shardLists.set(shards, (l = { shards: shards.map((b, shard) => ({ shard, bytes: b.byteLength, sha256: createHash('sha256').update(b).digest('hex') })) }));
  return l;
};

export const jobRoutes: FastifyPluginAsync = async (app) => {
  app.get('/api/jobs', { schema: { response: { 200: RelaySendsJobs } } }, async () => ({
    jobs: (await app.stores.relay.listJobs('running')).map((j) => ({ jobId: j.jobId, name: j.name, status: j.status, version: j.version })),
  }));

  app.get<{ Params: Static<typeof JobParams> }>('/api/jobs/:jobId', {
    schema: { params: JobParams, response: { 200: JobInfoSchema, ...errorResponses } },
  }, async (req) => app.scheduler.jobInfo(await app.scheduler.requireJob(req.params.jobId)));

  app.get<{ Params: Static<typeof JobParams> }>('/api/jobs/:jobId/evals', {
    schema: { params: JobParams, response: { 200: RelaySendsEvals, ...errorResponses } },
  }, async (req) => {
    await app.scheduler.requireJob(req.params.jobId);
    return { evals: (await app.stores.relay.listEvals(req.params.jobId)) };
  });

  app.get<{ Params: Static<typeof VersionParams> }>('/api/jobs/:jobId/versions/:version/params', {
    schema: { params: VersionParams, response: errorResponses },
  }, async (req, reply) => {
    const { jobId, version } = req.params;
    const job = await app.scheduler.requireJob(jobId);
    const missing = async () => fail('TT_ERR_UNKNOWN_VERSION', missingVersionMessage(jobId, version, job.version, (await app.stores.relay.listVersions(jobId))));
    // A version's parameters never change, so caches may keep them forever; its hash is its ETag, and a
    // client that has it is answered 304 without a byte of the checkpoint read
    const hash = (await app.stores.relay.versionHash(jobId, version)) ?? await missing();
    const etag = `"${hash}"`;
    reply.header('x-tabtrain-hash', hash).header('etag', etag).header('cache-control', 'public, max-age=31536000, immutable');
    if (etagMatches(req.headers['if-none-match'], etag)) return reply.code(304).send();
    // streamed from the params file (or the database a chunk at a time); the momentum beside it is never read
    const p = (await app.stores.relay.paramsRead(jobId, version)) ?? await missing();
    return reply.header('content-type', 'application/octet-stream').header('content-length', p.bytes).send(p.stream());
  });

  /** The deltas a volunteer may chain instead of downloading params: the newest MANIFEST_DELTAS, unbroken. */
  /** `?from=u`: only the deltas after version u (a volunteer holding u needs no more; the full list grows
   * to 64 entries, about 13 KB, on every task otherwise). */
  app.get<{ Params: Static<typeof VersionParams>; Querystring: Static<typeof ManifestQuery> }>('/api/jobs/:jobId/versions/:version/manifest', {
    schema: { params: VersionParams, querystring: ManifestQuery, response: { 200: RelaySendsManifest, ...errorResponses } },
  }, async (req) => {
    const { jobId, version } = req.params;
    const job = await app.scheduler.requireJob(jobId);
    const hash = (await app.stores.relay.versionHash(jobId, version)) ?? fail('TT_ERR_UNKNOWN_VERSION', missingVersionMessage(jobId, version, job.version, (await app.stores.relay.listVersions(jobId))));
    const listed = (await app.stores.relay.listDeltas(jobId, Math.max(0, version - MANIFEST_DELTAS, req.query.from ?? 0), version));
    // only the unbroken run that ends at this version can be chained
    let from = listed.length;
    while (from > 0 && listed[from - 1].version === version - (listed.length - from)) from--;
    const n = paramCount(job.model);
    return { jobId, version, hash, paramCount: n, paramsBytes: 4 * n, deltas: listed.slice(from) };
  });

  app.get<{ Params: Static<typeof VersionParams> }>('/api/jobs/:jobId/versions/:version/delta', {
    schema: { params: VersionParams, response: errorResponses },
  }, async (req, reply) => {
    const { jobId, version } = req.params;
    const job = await app.scheduler.requireJob(jobId);
    const bytes = (await app.stores.relay.getDelta(jobId, version)) ?? fail('TT_ERR_UNKNOWN_VERSION', version === 0
      ? `version 0 of job ${jobId} is the initial model and has no delta; fetch its params`
      : `${missingVersionMessage(jobId, version, job.version, (await app.stores.relay.listVersions(jobId)))}; the delta of a dropped version is gone too, fetch the params of a kept one`);
    // entropy-coded on the wire when the volunteer accepts it (./wire-encoding.ts), as it is should that fail
    let encoding = pickEncoding(req.headers['accept-encoding']);
    const hash = createHash('sha256').update(bytes).digest('hex');
    const body = await encodedBytes(bytes, encoding, hash).catch(() => { encoding = 'identity'; return encodedBytes(bytes, 'identity'); });
    if (encoding !== 'identity') reply.header('content-encoding', encoding);
    return reply.header('content-type', 'application/octet-stream').header('cache-control', 'public, max-age=31536000, immutable')
      .header('vary', 'accept-encoding').send(body);
  });

  /** Every shard's SHA-256, so a tab can take a shard from another tab and check it. */
  app.get<{ Params: Static<typeof JobParams> }>('/api/jobs/:jobId/shards', {
    schema: { params: JobParams, response: { 200: RelaySendsShardList, ...errorResponses } },
  }, async (req) => shardList(dataset((await app.scheduler.requireJob(req.params.jobId)).dataset.name).shardBytes));

  app.get<{ Params: Static<typeof ShardParams> }>('/api/jobs/:jobId/shards/:shard', {
    schema: { params: ShardParams, response: errorResponses },
  }, async (req, reply) => {
    const job = await app.scheduler.requireJob(req.params.jobId);
    const shards = dataset(job.dataset.name).shardBytes;
    const bytes = shards[req.params.shard] ?? fail('TT_ERR_UNKNOWN_SHARD', `job ${job.jobId} has shards 0..${shards.length - 1}, not ${req.params.shard}`);
    // compressed on the wire when the volunteer accepts it (./wire-encoding.ts); should compressing
    // fail, the shard goes as it is
    let encoding = pickEncoding(req.headers['accept-encoding']);
    const body = await encodedBytes(bytes, encoding).catch(() => { encoding = 'identity'; return encodedBytes(bytes, 'identity'); });
    if (encoding !== 'identity') reply.header('content-encoding', encoding);
    return reply.header('content-type', 'application/octet-stream').header('cache-control', 'public, max-age=31536000, immutable')
      .header('vary', 'accept-encoding').send(body);
  });
};
