// One picture of the network, computed from the relay's tables: volunteers and devices, tasks, throughput
// (samples/s, tokens/s, estimated GFLOP/s over the last minute), updates accepted and refused by reason,
// bytes and compression ratio, per-job curves, the credit leaderboard, and relay health.
// The dashboard's live feed and the extra Prometheus metrics both read it.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { paramCount } from '../../shared/models/config.ts';
import { kindOf } from '../../shared/models/registry.ts';
import { curveReader } from './curve.ts';
import type { TallyReader } from './tallies.ts';

export const WINDOW_MS = 60_000;
/** A volunteer counts as active when it leased a task this recently. */
export const ACTIVE_MS = 120_000;

export type Traffic = { bytesIn: number; bytesOut: number };

export type Snapshot = Awaited<ReturnType<ReturnType<typeof createSnapshotter>>>;

export function createSnapshotter(app: FastifyInstance, traffic: Traffic, tallies: TallyReader) {
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  app.addHook('onClose', async () => lag.disable());
  const startedAt = Date.now();
  const store = app.stores.relay;
  const curve = curveReader(store);

  return async function snapshot(now = Date.now()) {
    const jobs = await store.listJobs();
    const volunteersTotal = await store.countVolunteers();
    const tally = await tallies.read(now);
    const devices = tally.devices;
    const active = devices.reduce((a, d) => a + d.volunteers, 0);
    // few tasks end expired or rejected: counted on the (state, expires_at) index; accepted ones are the updates
    const ended = (state: 'expired' | 'rejected') => store.countTasks(state, now);
    const inFlight = await store.countTasks('issued', now);

    // Throughput over the window, by job (the model decides tokens per sample and FLOPs per token).
    let samples = 0, tokens = 0, flops = 0;
    for (const [jobId, r] of tally.recent) {
      const job = jobs.find((j) => j.jobId === jobId);
      if (!job) continue;
      const kind = kindOf(job.model), perSample = kind.tokensPerRow(job.model);
      samples += r.samples;
      if (kind.dataFormat === 'text') tokens += r.samples * perSample;
      flops += 6 * paramCount(job.model) * r.samples * perSample; // forward + backward ≈ 6·N per token
    }
    // A relay younger than the window divides by its age, so rates are right from the first minute.
    const secs = Math.max(1000, Math.min(WINDOW_MS, now - startedAt)) / 1000; // at least a second: a relay a few ms old would divide by almost nothing

    let accepted = 0, updateBytes = 0, denseBytes = 0;
    for (const [jobId, u] of tally.updates) {
      const job = jobs.find((j) => j.jobId === jobId);
      accepted += u.n;
      updateBytes += u.bytes;
      if (job) denseBytes += u.n * 4 * paramCount(job.model);
    }
    // downloads of params, deltas and shards: what the relay sent, and what tabs took from each other (server/p2p)
    const egress = (await app.metrics.egressBytes.get()).values.filter((v) => v.labels.kind !== 'other').reduce((a, v) => a + v.value, 0);
    const fromPeers = (await app.metrics.peerBytes.get()).values.find((v) => v.labels.direction === 'received')?.value ?? 0;
    const refused = (await app.metrics.updatesRefused.get()).values.map((v) => ({ reason: String(v.labels.code), count: v.value }));

    const leaderboard = tally.leaderboard;

    const perJob = await Promise.all(jobs.map(async (j) => ({
      jobId: j.jobId, name: j.name, status: j.status, version: j.version, model: j.model.kind, researcher: j.researcher,
      ...(await curve(j.jobId)),
      ...(j.status === 'done' ? { finish: await app.scheduler.stopping.finishOf(j.jobId) } : {}),
    })));
    // one query per job, sent together: on a networked store these are round trips
    const pendingUpdates = (await Promise.all(jobs.map((j) => store.countPendingUpdates(j.jobId)))).reduce((a, n) => a + n, 0);
    const swarm = await swarmView(app);
    const mem = process.memoryUsage();
    const audit = await app.stores.ops.countAudit();
    const disk = await app.diskUse();
    // Lag since the previous snapshot, not since start.
    const lagP99Ms = lag.percentile(99) / 1e6, lagMeanMs = lag.mean / 1e6 || 0;
    lag.reset();

    return {
      at: now,
      volunteers: { registered: volunteersTotal, active, devices },
      tasks: { leased: tally.leased, inFlight, expired: await ended('expired'), accepted, rejected: await ended('rejected') },
      throughput: { samplesPerSec: samples / secs, tokensPerSec: tokens / secs, gflops: flops / secs / 1e9, windowSec: secs },
      updates: { accepted, refused },
      bytes: { in: traffic.bytesIn, out: traffic.bytesOut, updates: updateBytes, denseEquivalent: denseBytes, compressionRatio: updateBytes > 0 ? denseBytes / updateBytes : 0, downloadsFromRelay: egress, downloadsFromPeers: fromPeers },
      jobs: perJob,
      swarm,
      leaderboard,
      health: { eventLoopLagMs: lagP99Ms, eventLoopMeanMs: lagMeanMs, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, disk, queueDepth: pendingUpdates + inFlight, pendingUpdates, auditEntries: audit, uptimeSec: process.uptime() },
    };
  };
}


/** Who trains and who waits, how big and how long rounds are, and how stale accepted updates were, from
 * the scheduler's gauges (server/scheduler/swarm.ts): summed over jobs, K and round time of the busiest. */
async function swarmView(app: FastifyInstance) {
  const sum = async (g: { get(): Promise<{ values: { value: number }[] }> }) => (await g.get()).values.reduce((a, v) => a + v.value, 0);
  const max = async (g: { get(): Promise<{ values: { value: number }[] }> }) => Math.max(0, ...(await g.get()).values.map((v) => v.value));
  const hist = await app.metrics.updateStaleness.get();
  // cumulative bucket counts over jobs → how many accepted updates were at most `le` versions stale
  const byLe = new Map<string, number>();
  for (const v of hist.values) {
    if (!v.metricName?.endsWith('_bucket')) continue;
    const le = String((v.labels as Record<string, string | number>).le);
    byLe.set(le, (byLe.get(le) ?? 0) + v.value);
  }
  const cumulative = [...byLe].map(([le, n]) => ({ le, n }));
  const staleness = cumulative.map((b, i) => ({ le: b.le, count: b.n - (i > 0 ? cumulative[i - 1].n : 0) })).filter((b) => b.count > 0);
  return {
    training: await sum(app.metrics.volunteersTraining), waiting: await sum(app.metrics.volunteersWaiting),
    roundSize: await max(app.metrics.roundSize), roundSeconds: await max(app.metrics.roundTime), staleness,
  };
}
