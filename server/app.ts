// The relay as a Fastify app: storage and services first, then routes, then the operator plugin, in
// this order. Tests build this same app on a temporary data directory; server/cli/main.ts only starts it.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fastifyHelmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import type { Hyperparameters } from '../shared/protocol/messages.ts';
import { defaultJobSpec, defaultJobToCreate } from './default-job.ts';
import { RelayError, errors, storeErrorToRelay, type ErrorCode } from './errors.ts';
import { isErrorCode } from '../shared/protocol/errors.ts';
import { StoreError } from './store/errors.ts';
import { createMetrics } from './metrics.ts';
import type { DefenceOptions } from './defence/guard.ts';
import type { InFlightOptions } from './defence/in-flight.ts';
import { helmetOptionsFor } from './security-headers.ts';
import { allowPeers, peerOrigin } from './peers.ts';
import { DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, capConnections, timeoutOptions, type Timeouts } from './transport.ts';
import { healthRoutes } from './routes/health.ts';
import { installProtocolCheck } from './routes/protocol.ts';
import { MIN_PROTOCOL_VERSION } from '../shared/protocol/version.ts';
import { jobRoutes } from './routes/jobs.ts';
import { taskRoutes } from './routes/tasks.ts';
import { DEFAULT_MAX_BODY_BYTES, updateRoutes } from './routes/updates.ts';
import { volunteerRoutes } from './routes/volunteers.ts';
import './routes/common.ts';
import { loadLeaseSecret } from './scheduler/leases.ts';
import { createScheduler } from './scheduler/scheduler.ts';
import type { Retention } from './store/retention.ts';
import { openSqliteStore } from './store/sqlite.ts';
import { sqliteStores } from './store/async.ts';
import { ConflictError } from './store/errors.ts';
import type { Stores } from './store/types.ts';
import type { GroupCommitOptions } from './store/group-commit.ts';
import { sqliteProbe, type DatabaseProbe } from './store/database.ts';
import { DATABASE_DOWN, isDatabaseUnavailable, whenAvailable } from './store/unavailable.ts';
import { openPostgresStores } from './store/postgres/index.ts';
import { followOtherRelays } from './follow-relays.ts';
import opsPlugin from './ops/index.ts';
import { createDemoJob } from './ops/demo.ts';
import type { DemoName } from '../shared/jobs/demos.ts';
import type { JobSubmission } from '../shared/jobs/spec.ts';
import { openPool } from './pool/index.ts';
import { Gauge } from 'prom-client';
import { diskUseReader } from './store/disk-use.ts';
import type { RoundFault } from './pool/round.ts';
import { authenticateFirst } from './ops/auth.ts';
import { countEgress } from './p2p/egress.ts';
import { p2pRoutes, type P2pOptions } from './p2p/routes.ts';

export type RelayOptions = {
  /** SQLite file, lease secret; created if missing (with a database URL: the ONNX export cache only) */
  dataDir: string;
  /** a postgres:// URL: run on that shared database instead of the embedded SQLite file (several relays may) */
  databaseUrl?: string;
  /** uploads that arrive together share one store transaction (server/store/group-commit.ts; default on,
   * batches of up to 64 gathered for the rest of one event-loop turn); false: one each */
  groupCommit?: GroupCommitOptions | false;
  /** listen when given (0 = a random free port) */
  port?: number;
  host?: string;
  logger?: FastifyServerOptions['logger'];
  /** create the default MNIST job, running, when the database has no jobs (default true) */
  defaultJob?: boolean | Partial<Hyperparameters>;
  /** create this demo job (shared/jobs/demos.ts), running, unless the database has it already */
  demo?: DemoName;
  /** changes to the demo's job.json (benchmarks train a smaller model on the same text) */
  demoOverrides?: Partial<JobSubmission>;
  /** when every job is done and the newest default job is one of them, create a fresh default job (default false; `tabtrain start` turns it on) */
  renewDefaultJob?: boolean;
  /** how often leases are expired and round timers checked */
  sweepMs?: number;
  /** absolute cap on any update body (default: an fp32 update of the largest version the relay stores;
   * each task's own cap is what its model needs) */
  maxBodyBytes?: number;
  /** evaluate every version on held-out data (default true) */
  evaluate?: boolean;
  /** the Vite build to serve at / (default: dist/ at the repository root) */
  staticDir?: string;
  /** defences against untrusted volunteers: identity mode, proof-of-work difficulty, spot checks, rate limits */
  defence?: DefenceOptions;
  /** behind a reverse proxy: whose X-Forwarded-For to believe for the client address (true: any; or the
   * proxies' addresses/CIDRs), so per-address limits and spot-check pairing see volunteers, not the proxy */
  trustProxy?: boolean | string;
  /** checkpoints and update payloads kept (default: the newest 64 versions, every 100th, the best; no byte cap) */
  retention?: Retention;
  /** checkpoint parts (params, momentum, residual, delta) over this many bytes are files beside the SQLite
   * file, or chunk rows of this size on Postgres (defaults: 1 MiB files, 16 MiB chunks) */
  largeCheckpointBytes?: number;
  /** upload bodies over this many bytes are spooled to a file as they arrive, not held in memory (default 1 MiB) */
  uploadSpoolBytes?: number;
  /** upload bodies one address may have in flight at once: streams (default 32) and bytes held
   * (default the larger of maxBodyBytes and 64 MiB); past either, 429 */
  uploadsInFlight?: Partial<InFlightOptions>;
  /** open TCP connections per client address (default 256; 0 = no cap); trusted proxies are not capped */
  maxConnectionsPerAddress?: number;
  /** socket and request timeouts, ms (0 = none); defaults in server/transport.ts */
  timeouts?: Partial<Timeouts>;
  /** the oldest client protocol version served (default MIN_PROTOCOL_VERSION, shared/protocol/version.ts);
   * older clients' registrations and task requests get 426 TT_ERR_CLIENT_TOO_OLD */
  minProtocolVersion?: number;
  /** the relay's clock, ms since the epoch (default Date.now): lease deadlines and expiry, round timers,
   * rate-limit windows, request-signature times and challenges read it, so tests move time instead of
   * sleeping (test/helpers/relay.ts testClock) */
  now?: () => number;
  /** the other relays of this network (sharing its database): the volunteer page may fail over to them
   * (?relays=…), so the page's CSP allows them and their pages may call this relay's volunteer API (CORS) */
  peers?: string[];
  /** peer-to-peer sharing between volunteer tabs (server/p2p): on by default, no ICE servers */
  p2p?: P2pOptions;
  /** tests only: a fault the round's pool worker injects mid-round, asked once per round close */
  roundFault?: () => RoundFault | undefined;
  /** decode large models' updates on arrival, ahead of their round (server/pool/prefold.ts); default on
   * (tests compare against a relay with it off) */
  prefold?: boolean;
};

export type Relay = { app: FastifyInstance; url?: string; close(): Promise<void> };

export async function buildApp(opts: RelayOptions): Promise<Relay> {
  mkdirSync(opts.dataDir, { recursive: true });
  // forceCloseConnections: a stopping relay drops keep-alive sockets instead of waiting out their timeout
  const app = Fastify({
    logger: opts.logger ?? false, bodyLimit: 1 << 20, forceCloseConnections: true, trustProxy: opts.trustProxy ?? false,
    ...timeoutOptions(opts.timeouts),
  });
  const warn = (fields: Record<string, unknown>, message: string) => app.log.warn(fields, message);
  // Postgres when a database URL is given (several relays may share it), else the embedded SQLite file
  // at start a database that does not answer yet is waited for (server/store/unavailable.ts whenAvailable)
  const starting = <T>(what: string, fn: () => Promise<T>) => whenAvailable(fn, { warn, what: `starting: ${what}` });
  const databaseUrl = opts.databaseUrl;
  const shared = databaseUrl ? await starting('opening the database', () => openPostgresStores(databaseUrl, { warn, checkpointChunkBytes: opts.largeCheckpointBytes, groupCommit: opts.groupCommit })) : undefined;
  const store = shared ? undefined : openSqliteStore(join(opts.dataDir, 'tabtrain.sqlite'), { warn, checkpointFileBytes: opts.largeCheckpointBytes });
  const stores: Stores = shared ?? sqliteStores(store!, { groupCommit: opts.groupCommit, onListenerError: (err, event) => app.log.error({ err, event }, 'store event listener failed') });
  // one lease secret for every relay on a shared database: a lease from one is good on the others
  const secret = shared ? await starting('reading the lease secret', () => shared.leaseSecret()) : loadLeaseSecret(opts.dataDir);
  const metrics = createMetrics();
  const pool = openPool(); // CPU-heavy work off the event loop (server/pool)
  capConnections(app, metrics.registry, opts.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, opts.trustProxy);
  const now = opts.now ?? Date.now;
  const scheduler = createScheduler({ stores, secret, log: app.log, metrics, evaluate: opts.evaluate, defence: opts.defence, retention: opts.retention, now, roundFault: opts.roundFault, prefold: opts.prefold });
  app.decorate('now', now);
  app.decorate('stores', stores);
  // the embedded store's synchronous core: tests and offline tools only (a shared database has none)
  if (store) {
    app.decorate('db', store.db);
    app.decorate('store', store);
  }
  app.decorate('database', shared ? { kind: 'postgres', ping: () => shared.ping() } satisfies DatabaseProbe : sqliteProbe(store!.db));
  if (shared) followOtherRelays(shared, metrics, app.log);
  app.decorate('scheduler', scheduler);
  app.decorate('metrics', metrics);
  app.decorate('dataDir', opts.dataDir);
  const diskUse = diskUseReader(opts.dataDir, shared && (() => shared.databaseBytes()));
  app.decorate('diskUse', diskUse);
  new Gauge({
    name: 'tabtrain_disk_bytes', help: 'bytes the relay keeps on disk, by part (the data directory; shared_database: a Postgres database\'s size)', labelNames: ['part'], registers: [metrics.registry],
    async collect() {
      const u = await diskUse();
      for (const part of ['database', 'payloads', 'checkpoints', 'other', 'dataDir'] as const) this.set({ part: part === 'dataDir' ? 'data_dir' : part }, u[part]);
      if (u.sharedDatabase !== undefined) this.set({ part: 'shared_database' }, u.sharedDatabase);
    },
  });
  app.decorate('pool', pool);
  scheduler.usePool(pool);

  installBodyRules(app);
  installProtocolCheck(app, opts.minProtocolVersion ?? MIN_PROTOCOL_VERSION);
  installErrorHandlers(app);
  const peers = (opts.peers ?? []).map(peerOrigin);
  await app.register(fastifyHelmet, helmetOptionsFor(peers));
  allowPeers(app, peers);
  authenticateFirst(app);
  countEgress(app, metrics.egressBytes);

  await app.register(volunteerRoutes);
  await app.register(jobRoutes);
  await app.register(taskRoutes);
  await app.register(updateRoutes, { maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, inFlight: opts.uploadsInFlight, spoolMemoryBytes: opts.uploadSpoolBytes });
  await app.register(healthRoutes);
  await app.register(p2pRoutes, opts.p2p ?? {});

  // ---- operator plugin registration point (server/ops/index.ts, owned by the ops engineer) ----
  await app.register(opsPlugin);
  // ----------------------------------------------------------------------------------------------

  const staticDir = resolve(opts.staticDir ?? join(import.meta.dirname, '..', 'dist'));
  if (existsSync(join(staticDir, 'index.html'))) {
    await app.register(fastifyStatic, { root: staticDir, prefix: '/', wildcard: false });
  } else {
    app.get('/', async (_req, reply) => reply.type('text/html').send('<!doctype html><title>Tabtrain</title><p>The volunteer page is not built; run <code>npm run build</code>.</p>'));
  }

  await starting('creating the default job', async () => {
    const defaultJobId = opts.defaultJob === false ? undefined : defaultJobToCreate(await stores.relay.listJobs(), opts.renewDefaultJob ?? false);
    if (defaultJobId) {
      // on a shared database another relay starting at the same moment may have made it first
      await scheduler.createJob(defaultJobId, defaultJobSpec(typeof opts.defaultJob === 'object' ? opts.defaultJob : {}), 'running')
        .catch((e: unknown) => { if (!(e instanceof ConflictError)) throw e; });
    }
  });
  if (opts.demo) await createDemoJob(app, opts.demo, opts.demoOverrides);
  await starting('recovering rounds', () => scheduler.recover());
  let sweeping = false; // one sweep at a time: a slow one is not overtaken by the next
  const sweeper = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    scheduler.sweep().catch((e: unknown) => app.log.error({ err: e }, 'sweep failed')).finally(() => { sweeping = false; });
  }, opts.sweepMs ?? 1000);
  sweeper.unref();
  app.addHook('onClose', async () => {
    clearInterval(sweeper);
    scheduler.stop();
    await scheduler.settled();
    await pool.close();
    await stores.close();
  });

  let url: string | undefined;
  if (opts.port !== undefined) url = await app.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' });
  return { app, url, close: () => app.close() };
}

/** Octet-stream bodies arrive as Buffers; a route's config.body says which kind it takes. */
function installBodyRules(app: FastifyInstance): void {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.addHook('preParsing', async (req) => {
    const want = req.routeOptions.config.body;
    if (!want) return;
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0' || req.headers['transfer-encoding'] !== undefined;
    if (want === 'json' && hasBody && type !== 'application/json') {
      throw new RelayError('TT_ERR_CONTENT_TYPE', `this route takes application/json, got "${type || 'no content-type'}"`);
    }
    if (want === 'binary' && type !== 'application/octet-stream') {
      throw new RelayError('TT_ERR_CONTENT_TYPE', `updates are binary frames: send content-type application/octet-stream, got "${type || 'no content-type'}"`);
    }
  });
  // answered before its body was all read (refused early: unknown task, over a cap, no token): close the
  // connection rather than read and throw away the rest of a body that may never end
  app.addHook('onSend', async (req, reply) => {
    if (!req.raw.complete) reply.header('connection', 'close');
  });
}

/** One error shape for everything: 4xx pass their message through (under a catalogue code: an HTTP-layer
 * error of no code of ours is TT_ERR_BAD_REQUEST), 5xx are logged and made generic. */
function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((thrown: Error & { statusCode?: number; code?: string; validation?: unknown; validationContext?: string }, req, reply) => {
    // storage refuses in its own words; the answer is the relay's catalogue entry for it
    const err = thrown instanceof StoreError ? storeErrorToRelay(thrown) : thrown;
    if (thrown instanceof StoreError && err.statusCode === 500) req.log.error({ err: thrown }, 'storage fault');
    const send = (status: number, code: ErrorCode, message: string) => reply.status(status).send({ error: { code, message } });
    if (err instanceof RelayError) {
      app.metrics.updatesRefused.inc({ code: err.code });
      return send(err.statusCode, err.code, err.message);
    }
    if (isDatabaseUnavailable(err)) {
      // not the client's fault nor a relay bug: the shared database is down or restarting; retry shortly
      req.log.warn({ err }, 'database unavailable');
      reply.header('retry-after', '5');
      return send(503, 'TT_ERR_DATABASE_UNAVAILABLE', errors.TT_ERR_DATABASE_UNAVAILABLE.message(DATABASE_DOWN));
    }
    if (err.validation) return send(400, 'TT_ERR_VALIDATION', errors.TT_ERR_VALIDATION.message(err.message));
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return send(413, 'TT_ERR_BODY_TOO_LARGE', `request body exceeds this route's limit; ${err.message}`);
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return send(415, 'TT_ERR_CONTENT_TYPE', `unsupported content-type "${req.headers['content-type'] ?? ''}"; JSON routes take application/json, updates application/octet-stream`);
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
      return send(400, 'TT_ERR_BAD_JSON', errors.TT_ERR_BAD_JSON.message(err.message));
    }
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return send(err.statusCode, isErrorCode(err.code) ? err.code : 'TT_ERR_BAD_REQUEST', err.message);
    req.log.error({ err }, 'relay fault');
    return send(500, 'TT_ERR_INTERNAL', errors.TT_ERR_INTERNAL.message());
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { code: 'TT_ERR_NOT_FOUND', message: errors.TT_ERR_NOT_FOUND.message(`${req.method} ${req.url.split('?')[0]}`) } }));
}
