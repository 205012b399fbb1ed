// Leasing: who gets which task, under a signed lease, and what happens when a lease runs out. A round
// hands out no more work than it needs; spot checks, re-issues of expired work and fresh shards are
// served in that order.
import { randomInt, randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { replicaWithoutResidual, type Compression } from '../../shared/codec/index.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { paramCount } from '../../shared/models/config.ts';
import { dataset } from '../data/datasets.ts';
import { fail } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRow, RelayStore, TaskRow } from '../store/types.ts';
import type { Guard } from '../defence/guard.ts';
import { signLease } from './leases.ts';
import { createShardChoice } from './shard-choice.ts';
import { isSwarm, type SwarmPolicy } from './swarm.ts';
import { createWaitingList } from './waiting.ts';

/** Whether a spot-checked task tells its volunteer so, to be sent without error feedback: only top-k
 * needs that, as its residual is most of Δ and two copies carrying theirs would never match. int8's residual
 * is under half a quantisation step per value (well inside the comparison's tolerance) and fp32 has none,
 * so under those codecs a check looks like any other task and a cheat cannot be honest on checks alone. */
const flagsReplicas = (c: Compression): boolean => replicaWithoutResidual(c);

export type LeasingOptions = {
  store: RelayStore; guard: Guard; secret: Buffer; log: FastifyBaseLogger; metrics: Metrics; now: () => number;
  requireJob: (jobId: string) => Promise<JobRow>;
  /** swarm jobs' task sizing and round rule (./swarm.ts) */
  swarm: SwarmPolicy;
};

export function createLeasing(o: LeasingOptions) {
  const { store, guard, secret, log, metrics, now, requireJob, swarm } = o;
  /** Volunteers recently told "no work", so a task ahead never goes past one of them. */
  const waiting = createWaitingList();
  /** Fresh tasks go to shards their volunteer holds when that keeps the sample unbiased (./shard-choice.ts). */
  const shardChoice = createShardChoice();

  /** A task for this volunteer, or null when the round has all the work it needs in flight.
   * `address`: where the request came from; spot checks pair across networks (server/defence/network.ts).
   * `held`: the shards the volunteer says it keeps (only a preference: ./shard-choice.ts). */
  async function leaseTask(jobId: string, volunteerId: string, address?: string, held: readonly number[] = []): Promise<Task | null> {
    const job = await requireJob(jobId);
    if (job.status === 'paused') return null;
    if (job.status !== 'running') fail('TT_ERR_JOB_NOT_RUNNING', `job ${jobId} is ${job.status}; only running jobs give tasks`);
    if (!(await store.hasVolunteer(volunteerId))) fail('TT_ERR_UNKNOWN_VOLUNTEER', volunteerId);
    const record = await guard.requireWork(volunteerId);
    const t = now();
    await expireLeases(t);
    const h = job.hyperparameters;
    // A round needs K updates: hand out no more work than that (stored but unapplied + leased), except
    // one task ahead for the volunteer whose task is all the round still waits for, when nobody else
    // waits for work (one-step-delay overlap, as DiLoCoX): it trains on this version while its last update
    // goes up, and lands in the next round one version stale, instead of its device idling across the
    // round's close. At most one such task per round; jobs that take no stale update get none.
    const live = await store.countLiveTasks(jobId, t);
    const swarmJob = isSwarm(h);
    if (swarmJob) {
      // every volunteer that asks trains, up to the job's cap and two tasks of its own (./swarm.ts)
      if (!swarm.mayLease(h, live, await store.countLiveTasksOf(jobId, volunteerId, t))) {
        waiting.refused(jobId, volunteerId, t);
        return null;
      }
    } else if ((await store.countPendingUpdates(jobId)) + live >= h.updatesPerRound) {
      const ahead = h.stalenessBound >= 1 && live === 1 && (await store.countLiveTasksOf(jobId, volunteerId, t)) === 1
        && !waiting.othersWaiting(jobId, volunteerId, t);
      if (!ahead) {
        waiting.refused(jobId, volunteerId, t);
        return null;
      }
    }
    const taskId = `t-${randomUUID()}`;
    // Spot check: an open one (another volunteer's task) is served first, with its base version, shard and seed.
    const network = guard.networkFor(address);
    let check = await guard.store.takeOpenReplica(jobId, volunteerId, Math.max(0, job.version - h.stalenessBound), network);
    if (check && (check.baseVersion > job.version || (await store.versionHash(jobId, check.baseVersion)) === undefined)) check = undefined; // rolled back
    const again = check ? undefined : await store.takeReissue(jobId);
    const shards = dataset(job.dataset.name).shardBytes.length;
    const replica = check !== undefined || Math.random() < guard.replicationRate(record);
    // a swarm task's H and deadline follow its volunteer's pace; both copies of a spot check train the
    // job's nominal H, so that they can be compared
    const plan = swarmJob && !replica ? swarm.plan(volunteerId, h) : { steps: h.steps, leaseMs: h.leaseMs };
    const task: TaskRow = {
      taskId, jobId, volunteerId, baseVersion: check ? check.baseVersion : job.version,
      shard: check ? check.shard : again ? again.shard : (await shardChoice.choose(jobId, shards, held, () => store.nextShard(jobId, shards))).shard,
      seed: check ? check.seed : again ? again.seed : randomInt(0, 2 ** 31),
      state: 'issued', issuedAt: t, expiresAt: t + plan.leaseMs, reissueOf: again?.taskId ?? null, payloadHash: null, ack: null,
    };
    await store.insertTask(task);
    if (swarmJob) swarm.issued(taskId, jobId, plan);
    if (replica) {
      await guard.store.addReplica({
        taskId, jobId, groupId: check ? check.groupId : taskId, volunteerId, baseVersion: task.baseVersion, shard: task.shard, seed: task.seed, open: !check,
      }, network, t);
    }
    metrics.tasksIssued.inc({ job: jobId, reissue: again ? 'yes' : 'no' });
    if (again) log.info({ task: task.taskId, reissueOf: again.taskId, job: jobId }, 'task re-issued');
    const lease = signLease(secret, {
      taskId: task.taskId, jobId, baseVersion: task.baseVersion, shard: task.shard, seed: task.seed, volunteerId, expiresAt: task.expiresAt,
      ...(swarmJob ? { steps: plan.steps } : {}),
    });
    if (swarmJob) metrics.taskSteps.observe({ job: jobId }, plan.steps);
    return {
      taskId: task.taskId, jobId, baseVersion: task.baseVersion, versionHash: (await store.versionHash(jobId, task.baseVersion))!,
      shard: task.shard, seed: task.seed, steps: plan.steps, batchSize: h.batchSize, adamw: h.adamw, clipNorm: h.clipNorm,
      compression: h.compression, lease, deadline: task.expiresAt, model: job.model, paramCount: paramCount(job.model),
      ...(replica && flagsReplicas(h.compression) ? { replica: true } : {}),
      ...(h.augment ? { augment: h.augment } : {}),
      // a returner's residual from before the oldest base still accepted is dropped (residual-age.ts)
      ...(swarmJob ? { residualMaxAge: h.stalenessBound } : {}),
    };
  }

  /** Leases due by `t` end: their shard and seed go back to the re-issue queue. */
  async function expireLeases(t: number): Promise<void> {
    for (const task of await store.expireDueTasks(t)) {
      swarm.ended(task.taskId, task.volunteerId, true);
      metrics.leasesExpired.inc({ job: task.jobId });
      log.info({ task: task.taskId, job: task.jobId, volunteer: task.volunteerId }, 'lease expired: issued=>expired, queued for re-issue');
    }
  }

  /** Volunteers told "no work" in the last moments (the dashboard's "waiting"). */
  const waitingCount = (jobId: string, t: number): number => waiting.count(jobId, t);

  return { leaseTask, expireLeases, waitingCount, shardVisits: shardChoice.counts };
}
