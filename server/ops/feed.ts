// The dashboard's live feed (server-sent events, one snapshot a second while anyone watches), its JSON
// twin, traffic counting for bytes in/out, and the extra Prometheus gauges that mirror the snapshot.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { ServerResponse } from 'node:http';
import { Gauge } from 'prom-client';
import { createSnapshotter, type Snapshot, type Traffic } from './snapshot.ts';
import type { TallyReader } from './tallies.ts';
import type { Principal } from './tokens.ts';
import { mayView, viewerOf } from './visibility.ts';

export const FEED_INTERVAL_MS = 1000;
const HISTORY = 600;

/** Counts request and response bytes of every route (registered on the root context). */
export function countTraffic(app: FastifyInstance): Traffic {
  const t: Traffic = { bytesIn: 0, bytesOut: 0 };
  app.addHook('onResponse', async (req, reply) => {
    t.bytesIn += Number(req.headers['content-length'] ?? 0) || 0;
    t.bytesOut += Number(reply.getHeader('content-length') ?? 0) || 0;
  });
  return t;
}

export function feedPlugin(traffic: Traffic, tallies: TallyReader): FastifyPluginAsync {
  return async (app) => {
    const snapshot = createSnapshotter(app, traffic, tallies);
    let cached: { at: number; snap: Promise<Snapshot> } | undefined;
    const current = () => {
      const now = Date.now();
      if (!cached || now - cached.at >= FEED_INTERVAL_MS / 2) cached = { at: now, snap: snapshot(now) };
      return cached.snap;
    };
    // A short history of network figures, so a dashboard opened late still draws its charts.
    const history: { at: number; samplesPerSec: number; tokensPerSec: number; gflops: number; active: number }[] = [];
    const record = (s: Snapshot) => {
      if (history.length && s.at - history[history.length - 1].at < FEED_INTERVAL_MS / 2) return;
      history.push({ at: s.at, samplesPerSec: s.throughput.samplesPerSec, tokensPerSec: s.throughput.tokensPerSec, gflops: s.throughput.gflops, active: s.volunteers.active });
      if (history.length > HISTORY) history.shift();
    };

    // pending jobs only to their researcher and operators (./visibility.ts)
    const visibleTo = (viewer: Principal | undefined) => async (s: Snapshot): Promise<Snapshot> => {
      const seen = await Promise.all(s.jobs.map((j) => mayView(app, viewer, j)));
      return { ...s, jobs: s.jobs.filter((_, i) => seen[i]) };
    };

    app.get('/api/ops/snapshot', async (req) => {
      const s = await visibleTo(await viewerOf(app, req))(await current());
      record(s);
      return { ...s, history };
    });

    const streams = new Set<ServerResponse>();
    app.get('/api/ops/stream', async (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      streams.add(res);
      const visible = visibleTo(await viewerOf(app, req));
      const send = async (withHistory: boolean) => {
        try {
          const s = await visible(await current());
          record(s);
          res.write(`event: snapshot\ndata: ${JSON.stringify(withHistory ? { ...s, history } : s)}\n\n`);
        } catch (err) {
          req.log.error({ err }, 'dashboard snapshot failed');
        }
      };
      void send(true);
      const timer = setInterval(() => void send(false), FEED_INTERVAL_MS);
      req.raw.on('close', () => { clearInterval(timer); streams.delete(res); });
    });
    app.addHook('preClose', async () => { for (const s of streams) s.end(); streams.clear(); });

    registerGauges(app, current);
  };
}

/** Gauges whose collect() reads the snapshot, so /metrics shows the dashboard's figures. */
function registerGauges(app: FastifyInstance, current: () => Promise<Snapshot>): void {
  const registers = [app.metrics.registry];
  const gauge = (name: string, help: string, read: (s: Snapshot) => number) => new Gauge({
    name, help, registers,
    async collect() { this.set(read(await current())); },
  });
  gauge('tabtrain_volunteers_active', 'volunteers that leased a task in the last 2 minutes', (s) => s.volunteers.active);
  gauge('tabtrain_volunteers_registered', 'volunteers ever registered', (s) => s.volunteers.registered);
  gauge('tabtrain_tasks_in_flight', 'tasks leased and not yet returned or expired', (s) => s.tasks.inFlight);
  gauge('tabtrain_samples_per_second', 'training samples per second across the network (last minute)', (s) => s.throughput.samplesPerSec);
  gauge('tabtrain_tokens_per_second', 'training tokens per second across the network (last minute)', (s) => s.throughput.tokensPerSec);
  gauge('tabtrain_estimated_gflops', 'estimated GFLOP/s across the network (6·params per token or sample)', (s) => s.throughput.gflops);
  gauge('tabtrain_bytes_in', 'request bytes received since start', (s) => s.bytes.in);
  gauge('tabtrain_bytes_out', 'response bytes sent since start', (s) => s.bytes.out);
  gauge('tabtrain_compression_ratio', 'dense fp32 bytes over stored update bytes', (s) => s.bytes.compressionRatio);
  gauge('tabtrain_event_loop_lag_seconds', 'event-loop delay, 99th percentile', (s) => s.health.eventLoopLagMs / 1000);
  gauge('tabtrain_queue_depth', 'updates waiting for a round plus tasks in flight', (s) => s.health.queueDepth);
  gauge('tabtrain_audit_entries', 'entries in the audit log', (s) => s.health.auditEntries);
  new Gauge({
    name: 'tabtrain_job_heldout_loss', help: 'held-out loss of the latest evaluated version', labelNames: ['job'], registers,
    async collect() {
      this.reset();
      for (const j of (await current()).jobs) { if (j.status === 'pending') continue; const e = j.evals[j.evals.length - 1]; if (e) this.set({ job: j.jobId }, e.loss); }
    },
  });
}
