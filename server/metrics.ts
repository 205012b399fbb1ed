// Prometheus metrics of one relay instance (its own registry, so tests can run several relays in one process).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tabtrain_process_' });
  const r = [registry];
  return {
    registry,
    tasksIssued: new Counter({ name: 'tabtrain_tasks_issued_total', help: 'tasks leased to volunteers', labelNames: ['job', 'reissue'], registers: r }),
    leasesExpired: new Counter({ name: 'tabtrain_leases_expired_total', help: 'task leases that ran out', labelNames: ['job'], registers: r }),
    updatesAccepted: new Counter({ name: 'tabtrain_updates_accepted_total', help: 'updates checked and stored', labelNames: ['job'], registers: r }),
    updatesRefused: new Counter({ name: 'tabtrain_updates_refused_total', help: 'updates refused, by error code', labelNames: ['code'], registers: r }),
    updateBytes: new Counter({ name: 'tabtrain_update_bytes_total', help: 'bytes of accepted update frames', labelNames: ['job'], registers: r }),
    intakeValidateSeconds: new Histogram({
      name: 'tabtrain_intake_validate_seconds', labelNames: ['job', 'where'], registers: r, buckets: [0.0005, 0.002, 0.01, 0.05, 0.2, 1, 5],
      help: 'time to check one upload (decode structure, finite values, norm): where="loop" for bodies held in memory, "pool" for spooled ones (the worker\'s own time)',
    }),
    intakeLoopDelay: new Gauge({
      name: 'tabtrain_intake_loop_delay_seconds', labelNames: ['job', 'stat'], registers: r,
      help: 'the event loop\'s worst delay (p99, max) since start while each job\'s spooled uploads were checked on the pool: what of their checks still reaches the loop (sampled every 1 ms: an idle loop reads about 1 ms)',
    }),
    rounds: new Counter({ name: 'tabtrain_rounds_total', help: 'rounds aggregated (versions published)', labelNames: ['job', 'trigger'], registers: r }),
    version: new Gauge({ name: 'tabtrain_job_version', help: 'current version of each job', labelNames: ['job'], registers: r }),
    accuracy: new Gauge({ name: 'tabtrain_job_heldout_accuracy', help: 'held-out accuracy of the latest evaluated version', labelNames: ['job'], registers: r }),
    // usefulness score (server/defence/usefulness.ts), on jobs with hyperparameters.usefulness on
    usefulnessDrop: new Histogram({
      name: 'tabtrain_update_usefulness_drop', help: 'loss drop (nats) each scored update gives on its own seeded batch; refused ones included',
      labelNames: ['job'], registers: r, buckets: [-1, -0.1, -0.01, 0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2],
    }),
    usefulnessSeconds: new Histogram({
      name: 'tabtrain_update_usefulness_seconds', help: 'relay CPU time to score one update (two forward passes)',
      labelNames: ['job'], registers: r, buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5],
    }),
    // peer-to-peer sharing (server/p2p): what the relay sent, and what tabs say they carried for each other
    egressBytes: new Counter({ name: 'tabtrain_relay_egress_bytes_total', help: 'bytes of answers the relay sent, by kind (model: params and deltas; shard; other)', labelNames: ['kind'], registers: r }),
    peerBytes: new Counter({ name: 'tabtrain_peer_bytes_total', help: 'bytes tabs report having received from or sent to other tabs', labelNames: ['direction'], registers: r }),
    peersConnected: new Gauge({ name: 'tabtrain_peers_connected', help: 'tabs connected to the signalling server', registers: r }),
    // the swarm (server/scheduler/swarm.ts): who trains, who waits, how stale what lands is, how big rounds are
    volunteersTraining: new Gauge({ name: 'tabtrain_volunteers_training', help: 'leased tasks whose lease runs (about the volunteers training; one may hold a second, fetched ahead)', labelNames: ['job'], registers: r }),
    volunteersWaiting: new Gauge({ name: 'tabtrain_volunteers_waiting', help: 'volunteers told "no work now" in the last 2 s', labelNames: ['job'], registers: r }),
    updateStaleness: new Histogram({
      name: 'tabtrain_update_staleness', help: 'versions between an accepted update\'s base and the job\'s version when it landed',
      labelNames: ['job'], registers: r, buckets: [0, 1, 2, 3, 4, 6, 8, 16, 32],
    }),
    roundSize: new Gauge({ name: 'tabtrain_round_size', help: 'K: updates the current round closes at', labelNames: ['job'], registers: r }),
    roundAccumulators: new Gauge({ name: 'tabtrain_round_accumulators', help: 'P-length vectors the last round held while folding its updates (at most its bucket count, whatever K)', labelNames: ['job'], registers: r }),
    roundPrefolded: new Gauge({ name: 'tabtrain_round_prefolded_updates', help: 'updates the last round found decoded on arrival (large models; the rest it read and decoded at the close)', labelNames: ['job'], registers: r }),
    roundTime: new Gauge({ name: 'tabtrain_round_time_seconds', help: 'wall time between the last two round closes', labelNames: ['job'], registers: r }),
    taskSteps: new Histogram({
      name: 'tabtrain_task_steps', help: 'inner steps H of the tasks leased on swarm jobs (sized to each device)',
      labelNames: ['job'], registers: r, buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    }),
    roundStageCpuSeconds: new Gauge({ name: 'tabtrain_round_stage_cpu_seconds', help: 'CPU the last round\'s thread spent in each stage (Linux): its wall time less waiting for a core or for the disk', labelNames: ['job', 'stage'], registers: r }),
    roundStageSeconds: new Gauge({
      name: 'tabtrain_round_stage_seconds', labelNames: ['job', 'stage'], registers: r,
      help: 'the last round close by stage: read, fold (decode + accumulate), rule, outer (step), publish (version delta), hash, write (what is left of the staged files\' writing after the hash) on the pool; dispatch (queueing, e.g. behind the last update\'s prefold, moving results); commit (the row) on the event loop',
    }),
    roundLoopDelay: new Gauge({
      name: 'tabtrain_round_loop_delay_seconds', labelNames: ['job', 'stat'], registers: r,
      help: 'the event loop\'s delay (p99, max) while the last round\'s math ran on the pool: what of it still reaches the loop',
    }),
    roundSeconds: new Histogram({ name: 'tabtrain_round_aggregate_seconds', help: 'time to aggregate and commit a round', registers: r, buckets: [0.01, 0.05, 0.1, 0.5, 1, 5] }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
