// One picture of the network, computed from the relay's tables: volunteers and devices, tasks, throughput
// (samples/s, tokens/s, estimated GFLOP/s over the last minute), updates accepted and refused by reason,
// bytes and compression ratio, per-job curves, the credit leaderboard, and relay health.
// The dashboard's live feed and the extra Prometheus metrics both read it.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { paramCount } from '../../shared/models/config.ts';

export const WINDOW_MS = 60_000;
/** A volunteer counts as active when it leased a task this recently. */
export const ACTIVE_MS = 120_000;

export type Traffic = { bytesIn: number; bytesOut: number };

export type Snapshot = Awaited<ReturnType<ReturnType<typeof createSnapshotter>>>;

export function createSnapshotter(app: FastifyInstance, traffic: Traffic) {
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  app.addHook('onClose', async () => lag.disable());
  const db = app.db;
  const startedAt = Date.now();

  return async function snapshot(now = Date.now()) {
    const jobs = app.store.listJobs();
    const volunteersTotal = (db.prepare('SELECT COUNT(*) AS n FROM volunteers').get() as { n: number }).n;
    const devices = db.prepare(`SELECT COALESCE(NULLIF(v.device, ''), 'unknown') AS device, COUNT(DISTINCT t.volunteer_id) AS volunteers
      FROM tasks t JOIN volunteers v ON v.volunteer_id = t.volunteer_id WHERE t.issued_at > ? GROUP BY 1 ORDER BY 2 DESC`).all(now - ACTIVE_MS) as { device: string; volunteers: number }[];
    const active = devices.reduce((a, d) => a + d.volunteers, 0);
    const taskCounts = Object.fromEntries((db.prepare('SELECT state, COUNT(*) AS n FROM tasks GROUP BY state').all() as { state: string; n: number }[]).map((r) => [r.state, r.n]));
    const inFlight = (db.prepare("SELECT COUNT(*) AS n FROM tasks WHERE state = 'issued' AND expires_at > ?").get(now) as { n: number }).n;

    // Throughput over the window, by job (the model decides tokens per sample and FLOPs per token).
    const recent = db.prepare('SELECT job_id AS jobId, SUM(samples) AS samples, COUNT(*) AS updates FROM updates WHERE accepted_at > ? GROUP BY job_id').all(now - WINDOW_MS) as { jobId: string; samples: number; updates: number }[];
    let samples = 0, tokens = 0, flops = 0;
    for (const r of recent) {
      const job = jobs.find((j) => j.jobId === r.jobId);
      if (!job) continue;
      const perSample = job.model.kind === 'gpt' ? job.model.context : 1;
      samples += r.samples;
      if (job.model.kind === 'gpt') tokens += r.samples * perSample;
      flops += 6 * paramCount(job.model) * r.samples * perSample; // forward + backward ≈ 6·N per token
    }
    // A relay younger than the window divides by its age, so rates are right from the first minute.
    const secs = Math.max(1, Math.min(WINDOW_MS, now - startedAt)) / 1000;

    const upd = db.prepare('SELECT job_id AS jobId, COUNT(*) AS n, SUM(payload_bytes) AS bytes FROM updates GROUP BY job_id').all() as { jobId: string; n: number; bytes: number }[];
    let accepted = 0, updateBytes = 0, denseBytes = 0;
    for (const u of upd) {
      const job = jobs.find((j) => j.jobId === u.jobId);
      accepted += u.n;
      updateBytes += u.bytes;
      if (job) denseBytes += u.n * 4 * paramCount(job.model);
    }
    const refused = (await app.metrics.updatesRefused.get()).values.map((v) => ({ reason: String(v.labels.code), count: v.value }));

    const leaderboard = db.prepare(`SELECT volunteer_id AS volunteerId, SUM(samples) AS credit, COUNT(*) AS updates
      FROM updates WHERE discarded = 0 GROUP BY volunteer_id ORDER BY credit DESC LIMIT 10`).all() as { volunteerId: string; credit: number; updates: number }[];

    const perJob = jobs.map((j) => ({
      jobId: j.jobId, name: j.name, status: j.status, version: j.version, model: j.model.kind, researcher: j.researcher,
      evals: app.store.listEvals(j.jobId),
    }));
    const pendingUpdates = jobs.reduce((a, j) => a + app.store.countPendingUpdates(j.jobId), 0);
    const mem = process.memoryUsage();
    const audit = (db.prepare('SELECT COUNT(*) AS n FROM ops_audit').get() as { n: number }).n;
    // Lag since the previous snapshot, not since start.
    const lagP99Ms = lag.percentile(99) / 1e6, lagMeanMs = lag.mean / 1e6 || 0;
    lag.reset();

    return {
      at: now,
      volunteers: { registered: volunteersTotal, active, devices },
      tasks: { leased: Object.values(taskCounts).reduce((a, b) => a + b, 0), inFlight, expired: taskCounts.expired ?? 0, accepted: taskCounts.accepted ?? 0, rejected: taskCounts.rejected ?? 0 },
      throughput: { samplesPerSec: samples / secs, tokensPerSec: tokens / secs, gflops: flops / secs / 1e9, windowSec: secs },
      updates: { accepted, refused },
      bytes: { in: traffic.bytesIn, out: traffic.bytesOut, updates: updateBytes, denseEquivalent: denseBytes, compressionRatio: updateBytes > 0 ? denseBytes / updateBytes : 0 },
      jobs: perJob,
      leaderboard,
      health: { eventLoopLagMs: lagP99Ms, eventLoopMeanMs: lagMeanMs, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, queueDepth: pendingUpdates + inFlight, pendingUpdates, auditEntries: audit, uptimeSec: process.uptime() },
    };
  };
}

