// The relay's work, composed from one module per idea: leasing (./leasing.ts: tasks under signed leases,
// expiry and re-issue), intake (./intake.ts: checking and storing updates, spot checks), rounds
// (./rounds.ts: close, outer step, retention) and evaluation (./evaluation.ts: every model kind). This
// file creates jobs, registers volunteers, sweeps and recovers after a restart.
// Everything durable goes through the Store; this module keeps no state a restart would lose.
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { JobInfo } from '../../shared/protocol/messages.ts';
import { initParams, paramCount } from '../../shared/models/config.ts';
import { fail } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRow, JobSpec, Stores } from '../store/types.ts';
import { createGuard, type DefenceOptions } from '../defence/guard.ts';
import type { WorkPool } from '../pool/index.ts';
import type { RoundFault } from '../pool/round.ts';
import type { Retention } from '../store/retention.ts';
import { createEvaluation } from './evaluation.ts';
import { createIntake } from './intake.ts';
import { createLeasing } from './leasing.ts';
import { createRounds, paramHash } from './rounds.ts';
import { createStopping } from './stopping.ts';
import { createSwarm, isSwarm } from './swarm.ts';

export type SchedulerOptions = {
  stores: Stores; secret: Buffer; log: FastifyBaseLogger; metrics: Metrics;
  /** evaluate each new version on the held-out split (off in benchmarks) */
  evaluate?: boolean;
  now?: () => number;
  defence?: DefenceOptions;
  /** which checkpoints and update payloads outlive their round (default: defaultRetention) */
  retention?: Retention;
  /** tests only: a fault the round's worker injects mid-round (./rounds.ts) */
  roundFault?: () => RoundFault | undefined;
  /** large models' updates decoded on arrival (./rounds.ts); default on */
  prefold?: boolean;
};

export function createScheduler(o: SchedulerOptions) {
  const { stores, secret, log, metrics } = o;
  const store = stores.relay;
  const now = o.now ?? Date.now;
  const guard = createGuard(stores.defence, secret, metrics.registry, o.defence);
  /** Jobs' stopping rules (hyperparameters.until). */
  const stopRules = createStopping({ stores, log, now });
  const requireJob = async (jobId: string): Promise<JobRow> => (await store.getJob(jobId)) ?? fail('TT_ERR_UNKNOWN_JOB', jobId);

  /** Work deferred past the current request; dropped once the relay is stopping (its database closes). */
  let stopping = false;
  const later = (work: () => void): void => { setImmediate(() => { if (!stopping) work(); }); };

  const evaluateOn = o.evaluate !== false;
  const evaluation = createEvaluation({ store, log, metrics, now, enabled: evaluateOn, later, isStopping: () => stopping });
  /** Swarm jobs' task sizing and round rule (./swarm.ts), shared by leasing, intake and rounds. */
  const swarm = createSwarm();
  const rounds = createRounds({ store, log, metrics, now, requireJob, retention: o.retention, later, swarm, roundFault: o.roundFault, prefold: o.prefold });

  // What follows a round and an evaluation, wherever in the relay (or in another relay on the same store)
  // it happened: a new version is evaluated; the stopping rules are checked in this one place, after a
  // round (budgets hold at once; held-out rules wait for the version's evaluation) and after an
  // evaluation lands. Deferred past the listeners of the same change (the guardrail acts first).
  stores.on('round-committed', (e) => {
    later(() => void evaluation.evaluate(e.jobId, e.version));
    later(() => void stopRules.check(e.jobId, { needEval: evaluateOn }));
  });
  stores.on('eval-stored', (e) => later(() => void stopRules.check(e.jobId, { needEval: true })));
  const leasing = createLeasing({ store, guard, secret, log, metrics, now, requireJob, swarm });
  const intake = createIntake({ store, guard, secret, log, metrics, now, requireJob, stopRules, roundReady: rounds.scheduleRound, storing: rounds.storing, swarm });

  /** `initial`: version 0 made elsewhere (the operator plugin makes a big model's on its worker pool). */
  /** `initial`: version 0 made elsewhere (the operator plugin makes a big model's on its worker pool).
   * `tx`: the transaction to create it in (a submission creates the job with its dataset and audit entry);
   * version 0 is evaluated once the job is committed. */
  async function createJob(jobId: string, spec: JobSpec, status: JobRow['status'], seed = 1, initial?: { params: Float32Array; hash: string }, tx: Stores = stores): Promise<JobRow> {
    const params = initial?.params ?? initParams(spec.model, seed);
    const job = await tx.relay.createJob(jobId, spec, status, { params, hash: initial?.hash ?? paramHash(params) }, now());
    log.info({ job: jobId, status }, 'job created');
    if (tx === stores) void evaluation.evaluate(jobId, 0);
    else later(() => void evaluation.evaluate(jobId, 0));
    return job;
  }

  async function jobInfo(job: JobRow): Promise<JobInfo> {
    return {
      jobId: job.jobId, name: job.name, researcher: job.researcher, description: job.description, dataset: job.dataset,
      model: job.model, hyperparameters: job.hyperparameters, version: job.version, status: job.status, paramCount: paramCount(job.model),
      ...(job.status === 'done' ? { finish: await stopRules.finishOf(job.jobId) } : {}),
    };
  }

  /** Periodic: expire leases, fire round timers. */
  async function sweep(): Promise<void> {
    const t = now();
    await leasing.expireLeases(t);
    for (const job of await store.listJobs('running')) {
      await rounds.closeRound(job.jobId, true);
      await gauges(job.jobId, job.hyperparameters, t);
    }
  }

  /** Volunteers training vs waiting, and the K the next round closes at (/metrics and the dashboard). */
  async function gauges(jobId: string, h: JobRow['hyperparameters'], t: number): Promise<void> {
    const live = await store.countLiveTasks(jobId, t);
    metrics.volunteersTraining.set({ job: jobId }, live);
    metrics.volunteersWaiting.set({ job: jobId }, leasing.waitingCount(jobId, t));
    // a swarm job's K is set by each round as it closes (./rounds.ts); before its first, what it would close at
    if (!isSwarm(h)) metrics.roundSize.set({ job: jobId }, h.updatesPerRound);
    else if (!(await store.getJob(jobId))?.version) metrics.roundSize.set({ job: jobId }, swarm.k(jobId, h, live));
  }

  /** After a restart: finish any round that was ready, evaluate versions the crash left unevaluated. */
  async function recover(): Promise<void> {
    for (const job of await store.listJobs()) {
      metrics.version.set({ job: job.jobId }, job.version);
      if (job.status === 'running') await rounds.closeRound(job.jobId, false);
      const latest = (await store.getJob(job.jobId))!;
      const evals = await store.listEvals(job.jobId);
      if (!evals.some((e) => e.version === latest.version)) void evaluation.evaluate(job.jobId, latest.version);
    }
  }

  /** Registers a volunteer: with a key (+ proof of work) its id derives from the key; key-less only on an 'optional' relay. */
  async function registerVolunteer(agent: string, device: string, identity: { publicKey?: string; challenge?: string; nonce?: string } = {}): Promise<string> {
    const t = now();
    const admitted = await guard.admitIdentity(identity, t);
    const id = admitted?.volunteerId ?? `v-${randomUUID()}`;
    await store.addVolunteer(id, agent, device, t); // a known id stays as it was
    return id;
  }

  return {
    swarm, createJob, jobInfo, leaseTask: leasing.leaseTask, shardVisits: leasing.shardVisits, stopping: stopRules, intakeUpdate: intake.intakeUpdate,
    closeRound: rounds.closeRound, sweep, recover, evaluate: evaluation.evaluate, registerVolunteer, requireJob, paramHash, guard,
    /** Resolves when the spot-check tie-breaks started so far are done. */
    settled: intake.settled,
    /** Stops deferred work (round closes, evaluations) before the store closes. */
    stop: (): void => { stopping = true; },
    /** Runs round closes and evaluations on this worker pool from now on. */
    usePool: (p: WorkPool): void => { rounds.usePool(p); evaluation.usePool(p); },
    /** Where GPT jobs' held-out text is read from (the operator plugin's dataset tables). */
    useHeldOutText: evaluation.useHeldOutText,
  };
}
export type Scheduler = ReturnType<typeof createScheduler>;
