// POST /api/tasks/:taskId/update: the binary update frame. The task is looked up before any body byte
// is read (an unknown one is 404 at once), and its size cap, what the task's model can need, is
// enforced as bytes arrive, whatever the framing; one address's uploads in flight are capped too. A body
// up to 1 MiB is held in memory and hashed as it arrives; past that its payload is spooled to a file
// (./spool.ts), hashed and checked on the worker pool and renamed into the store, never read back on the
// event loop (a check on the loop costs a 1 MiB body about 2 ms of loop CPU, the pool's dispatch about 0.5 ms:
// npm run bench:intake; below 1 MiB a file's own cost outweighs the difference, npm run bench:spool).
import type { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Gauge } from 'prom-client';
import { encodedByteBound } from '../../shared/codec/index.ts';
import { paramCount } from '../../shared/models/config.ts';
import { LIMITS } from '../../shared/jobs/spec.ts';
import { MAX_FRAME_HEADER_BYTES } from '../../shared/protocol/frame.ts';
import { InFlightUploads, type InFlightOptions, type InFlightTicket } from '../defence/in-flight.ts';
import { RelayError, fail } from '../errors.ts';
import { capBody } from './body-cap.ts';
import { openSpoolDir, spoolBody, SPOOL_MEMORY_BYTES, type UploadBody } from './spool.ts';
import { hashOnPool } from '../defence/validate-file.ts';
import { countRefusals, errorResponses } from './common.ts';
import { RelaySendsUpdateAck, TaskParams, type Static } from './schemas.ts';

export type UpdateRouteOptions = {
  maxBodyBytes: number; inFlight?: Partial<InFlightOptions>;
  /** bodies over this many bytes are spooled to a file in the data directory as they arrive (default 1 MiB) */
  spoolMemoryBytes?: number;
};

/** The absolute cap on an update body: an fp32 update of the largest version the relay stores, with its
 * frame header (spooled to disk as it arrives, so the cap is no longer what memory allows; each task's
 * cap, what its own model needs, is far below for most jobs). */
export const DEFAULT_MAX_BODY_BYTES = encodedByteBound(LIMITS.versionBytes / 4, { kind: 'fp32' }) + 8 + MAX_FRAME_HEADER_BYTES;

/** One address: at most 32 uploads at once and one largest update's bytes in flight (64 MiB at least). */
export const defaultInFlight = (maxBodyBytes: number): InFlightOptions => ({ streamsPerAddress: 32, bytesPerAddress: Math.max(maxBodyBytes, 64 << 20) });

/** `checking`: intake is using the body's file now (a client that goes away meanwhile must not remove it
 * under the pool's read or the store's rename; the handler removes what is left when it ends). */
type UploadState = { cap: number; ticket: InFlightTicket; body?: UploadBody; checking?: boolean };
const uploads = new WeakMap<FastifyRequest, UploadState>();

export const updateRoutes: FastifyPluginAsync<UpdateRouteOptions> = async (app, opts) => {
  countRefusals(app);
  const given = Object.fromEntries(Object.entries(opts.inFlight ?? {}).filter(([, v]) => v !== undefined));
  const inFlight = new InFlightUploads({ ...defaultInFlight(opts.maxBodyBytes), ...given });
  const spoolDir = openSpoolDir(app.dataDir);
  const memoryBytes = opts.spoolMemoryBytes ?? SPOOL_MEMORY_BYTES;
  // this route's bodies are streams to spool, not Buffers (the app's parser, for its other binary routes)
  app.removeContentTypeParser('application/octet-stream');
  app.addContentTypeParser('application/octet-stream', async (req: FastifyRequest, payload: NodeJS.ReadableStream) => {
    const body = await spoolBody(payload as Readable, spoolDir, memoryBytes);
    const u = uploads.get(req);
    if (u) u.body = body;
    else body.discard();
    return body;
  });
  const registers = [app.metrics.registry];
  new Gauge({ name: 'tabtrain_uploads_in_flight', help: 'upload bodies being received now', registers, collect() { this.set(inFlight.totals().streams); } });
  new Gauge({ name: 'tabtrain_upload_bytes_in_flight', help: 'bytes of upload bodies received and not yet answered', registers, collect() { this.set(inFlight.totals().bytes); } });
  app.post<{ Params: Static<typeof TaskParams>; Body: UploadBody }>('/api/tasks/:taskId/update', {
    config: { body: 'binary' },
    bodyLimit: opts.maxBodyBytes,
    schema: { params: TaskParams, response: { 200: RelaySendsUpdateAck, ...errorResponses } },
    onRequest: async (req, reply) => {
      await app.scheduler.guard.limit('uploadsPerAddress', req.ip, app.now());
      const taskId = (req.params as { taskId: string }).taskId;
      const task = (await app.stores.relay.getTask(taskId)) ?? fail('TT_ERR_UNKNOWN_TASK', taskId);
      const job = (await app.stores.relay.getJob(task.jobId));
      const n = job ? paramCount(job.model) : 0;
      // the frame can hold an fp32 update at most, plus its JSON header
      const cap = Math.min(opts.maxBodyBytes, job ? Math.max(encodedByteBound(n, { kind: 'fp32' }), encodedByteBound(n, job.hyperparameters.compression)) + 8 + MAX_FRAME_HEADER_BYTES : opts.maxBodyBytes);
      const declared = Number(req.headers['content-length']);
      if (declared > cap) throw tooLarge(declared, cap);
      const ticket = inFlight.open(req.ip);
      const state: UploadState = { cap, ticket };
      // 'close' comes once the answer is sent or the client went away: the body is no longer held
      reply.raw.once('close', () => { ticket.release(); if (!state.checking) state.body?.discard(); });
      uploads.set(req, state);
    },
    preParsing: async (req, _reply, payload) => {
      const u = uploads.get(req);
      return u ? capBody(payload, u.cap, (received) => tooLarge(received, u.cap, 'at least ').message, u.ticket.add) : payload;
    },
  }, async (req) => {
    const body = req.body;
    const state = uploads.get(req);
    const sig = req.headers['x-tabtrain-signature'];
    if (state) state.checking = true;
    try {
      // a spooled body is never read back here: intake checks its file on the pool and the store takes it over
      const upload = body.file ? { head: body.head, file: body.file, byteLength: body.byteLength } : body.head;
      // nor hashed here: its SHA-256 (what the signature covers) is computed from its file on the pool, once
      // intake has checked what costs nothing (the task, the frame's header, the lease)
      const sha256 = body.sha256 ?? (() => hashOnPool(body.head, body.file!));
      return await app.scheduler.intakeUpdate(req.params.taskId, upload, typeof sig === 'string' ? sig : undefined, sha256);
    } finally {
      if (state) state.checking = false;
      body.discard(); // refused, or failed: its file goes now (an accepted one's was renamed into the store)
    }
  });
};

const tooLarge = (bytes: number, cap: number, atLeast = '') =>
  new RelayError('TT_ERR_BODY_TOO_LARGE', `update body of ${atLeast}${bytes} bytes exceeds the ${cap}-byte limit for this task; encode with the task's compression`);
