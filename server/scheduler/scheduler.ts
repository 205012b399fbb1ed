// The relay's work: hand out tasks under signed leases, check and store updates, close rounds
// (aggregate + DiLoCo outer step + checkpoint), expire leases and re-issue their work, evaluate versions.
// Everything durable goes through the Store; this module keeps no state a restart would lose.
import { createHash, randomInt, randomUUID } from 'node:crypto';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyBaseLogger } from 'fastify';
import type Database from 'better-sqlite3';
import { decodeUpdate, type Compression } from '../../shared/codec/index.ts';
import { deltaCompression, publishVersion } from '../../shared/codec/version-delta.ts';
import { decodeUpdateFrame, FrameError } from '../../shared/protocol/frame.ts';
import { VolunteerSendsUpdateHeader, type JobInfo, type Task, type UpdateAck } from '../../shared/protocol/messages.ts';
import { initParams, paramCount } from '../../shared/models/config.ts';
import { mlpEvaluate } from '../../shared/reference/mlp.ts';
import { dataset } from '../data/datasets.ts';
import { RelayError, fail } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRow, JobSpec, Store, TaskRow } from '../store/types.ts';
import { createGuard, type DefenceOptions } from '../defence/guard.ts';
import type { ReplicaRow } from '../defence/store.ts';
import { referenceUpdate } from '../defence/recompute.ts';
import { PoolClosedError, type WorkPool } from '../pool/index.ts';
import { compareUpdates } from '../defence/replication.ts';
import { createUsefulness } from '../defence/usefulness.ts';
import { jobNormBound, priorNormBound, validateEncodedSafe, type ValidationCode } from '../defence/validate.ts';
import { createRoundAccumulator, type RoundAccumulator } from '../../shared/aggregate/streaming.ts';
import { createSwarm, isSwarm } from './swarm.ts';
import { signLease, verifyLease } from './leases.ts';
import { outerStep, stalenessWeight } from './outer-step.ts';
import { defaultRetention, prunableUpTo, type Retention } from '../store/retention.ts';
import { createWaitingList } from './waiting.ts';
import { createStopping } from './stopping.ts';

export type SchedulerOptions = {
  store: Store; secret: Buffer; log: FastifyBaseLogger; metrics: Metrics;
  /** evaluate each new version on the held-out split (off in benchmarks) */
  evaluate?: boolean;
  now?: () => number;
  /** the relay's SQLite handle, for the defence's own tables (default: the store's) */
  db?: Database.Database;
  defence?: DefenceOptions;
  /** which checkpoints and update payloads outlive their round (default: defaultRetention) */
  retention?: Retention;
};


/** How a validation failure is answered: code, and whether it is a strike against the volunteer
 * (only what an honest tab can never produce; a norm over the bound can be honest bad luck). Every
 * refusal here comes after the lease and the upload signature verified, so a strike lands on the
 * identity that really sent it, never on one a forger named. */
const validationRefusal: Record<ValidationCode, { code: 'TT_ERR_BAD_UPDATE' | 'TT_ERR_PARAM_COUNT' | 'TT_ERR_EMPTY_UPDATE' | 'TT_ERR_UPDATE_NORM'; strike: boolean }> = {
  CORRUPT: { code: 'TT_ERR_BAD_UPDATE', strike: true },
  WRONG_LENGTH: { code: 'TT_ERR_PARAM_COUNT', strike: true },
  NON_FINITE: { code: 'TT_ERR_BAD_UPDATE', strike: true },
  BAD_INDICES: { code: 'TT_ERR_BAD_UPDATE', strike: true },
  EMPTY_UPDATE: { code: 'TT_ERR_EMPTY_UPDATE', strike: false },
  NORM_TOO_LARGE: { code: 'TT_ERR_UPDATE_NORM', strike: false },
};

/** Whether a spot-checked task tells its volunteer so, to be sent without error feedback: only top-k
 * needs that, as its residual is most of Δ and two copies carrying theirs would never match. int8's residual
 * is under half a quantisation step per value (well inside the comparison's tolerance) and fp32 has none,
 * so under those codecs a check looks like any other task and a cheat cannot be honest on checks alone. */
const flagsReplicas = (c: Compression): boolean => c.kind === 'topk';

/** Compiled once: the frame header is checked on every upload. */
const headerCheck = TypeCompiler.Compile(VolunteerSendsUpdateHeader);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const paramHash = (p: Float32Array): string => sha256(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));

export function createScheduler(o: SchedulerOptions) {
  const { store, secret, log, metrics } = o;
  const now = o.now ?? Date.now;
  const scheduled = new Set<string>();
  const guard = createGuard(o.db ?? (store as unknown as { db: Database.Database }).db, secret, metrics.registry, o.defence);
  /** Each job's most recent accepted update norms, oldest first, for the norm bound (rebuilt from the store
   * after a restart or a rollback); `version`: the job's version when last seen, to notice a rollback. */
  const normHistory = new Map<string, { version: number; recent: number[] }>();
  /** Each job's prior norm bound (./defence/validate.ts priorNormBound), per base version when it needs ‖θ‖. */
  const priorCache = new Map<string, { version: number; steps: number; thetaNorm?: number; bound: number }>();
  /** Spot-check tie-breaks running in the background (tests and shutdown can wait for them). */
  const tieBreaks = new Set<Promise<void>>();
  /** Volunteers recently told "no work", so a task ahead never goes past one of them. */
  const waiting = createWaitingList();
  /** Usefulness scores of uploads, on jobs that turn them on. */
  const usefulness = createUsefulness({ store, defence: guard.store, metrics });
  /** Jobs' stopping rules (hyperparameters.until), checked after each round and its evaluation. */
  const stopRules = createStopping({ store, db: o.db ?? (store as unknown as { db: Database.Database }).db, log, now });
  /** Swarm jobs' task sizing and round rule (./swarm.ts). */
  const swarm = createSwarm();
  /** When each job's last round closed, for the round-time gauge. */
  const lastClose = new Map<string, number>();

  /** where evaluations run (server/pool); without one (unit tests) they run inline */
  let pool: WorkPool | undefined;

  const requireJob = (jobId: string): JobRow => store.getJob(jobId) ?? fail('TT_ERR_UNKNOWN_JOB', jobId);

  /** `initial`: version 0 made elsewhere (the operator plugin makes a big model's on its worker pool). */
  function createJob(jobId: string, spec: JobSpec, status: JobRow['status'], seed = 1, initial?: { params: Float32Array; hash: string }): JobRow {
    const params = initial?.params ?? initParams(spec.model, seed);
    const job = store.createJob(jobId, spec, status, { params, hash: initial?.hash ?? paramHash(params) }, now());
    log.info({ job: jobId, status }, 'job created');
    evaluate(jobId, 0);
    return job;
  }

  function jobInfo(job: JobRow): JobInfo {
    return {
      jobId: job.jobId, name: job.name, researcher: job.researcher, description: job.description, dataset: job.dataset,
      model: job.model, hyperparameters: job.hyperparameters, version: job.version, status: job.status, paramCount: paramCount(job.model),
      ...(job.status === 'done' ? { finish: stopRules.finishOf(job.jobId) } : {}),
    };
  }

  /** A task for this volunteer, or null when the round has all the work it needs in flight. */
  /** `address`: where the request came from; spot checks pair across networks (server/defence/network.ts). */
  function leaseTask(jobId: string, volunteerId: string, address?: string): Task | null {
    const job = requireJob(jobId);
    if (job.status === 'paused') return null;
    if (job.status !== 'running') fail('TT_ERR_JOB_NOT_RUNNING', `job ${jobId} is ${job.status}; only running jobs give tasks`);
    if (!store.hasVolunteer(volunteerId)) fail('TT_ERR_UNKNOWN_VOLUNTEER', volunteerId);
    const record = guard.requireWork(volunteerId);
    const t = now();
    expireLeases(t);
    const h = job.hyperparameters;
    // A round needs K updates: hand out no more work than that (stored but unapplied + leased), except
    // one task ahead for the volunteer whose task is all the round still waits for, when nobody else
    // waits for work (one-step-delay overlap, as DiLoCoX): it trains on this version while its last update
    // goes up, and lands in the next round one version stale, instead of its device idling across the
    // round's close. At most one such task per round; jobs that take no stale update get none.
    const live = store.countLiveTasks(jobId, t);
    const swarmJob = isSwarm(h);
    if (swarmJob) {
      // every volunteer that asks trains, up to the job's cap and two tasks of its own (./swarm.ts)
      if (!swarm.mayLease(h, live, store.countLiveTasksOf(jobId, volunteerId, t))) {
        waiting.refused(jobId, volunteerId, t);
        return null;
      }
    } else if (store.countPendingUpdates(jobId) + live >= h.updatesPerRound) {
      const ahead = h.stalenessBound >= 1 && live === 1 && store.countLiveTasksOf(jobId, volunteerId, t) === 1
        && !waiting.othersWaiting(jobId, volunteerId, t);
      if (!ahead) {
        waiting.refused(jobId, volunteerId, t);
        return null;
      }
    }
    const taskId = `t-${randomUUID()}`;
    // Spot check: an open one (another volunteer's task) is served first, with its base version, shard and seed.
    const network = guard.networkFor(address);
    let check = guard.store.takeOpenReplica(jobId, volunteerId, Math.max(0, job.version - h.stalenessBound), network);
    if (check && (check.baseVersion > job.version || store.versionHash(jobId, check.baseVersion) === undefined)) check = undefined; // rolled back
    const again = check ? undefined : store.takeReissue(jobId);
    const shards = dataset(job.dataset.name).shardBytes.length;
    const replica = check !== undefined || Math.random() < guard.replicationRate(record);
    // a swarm task's H and deadline follow its volunteer's pace; both copies of a spot check train the
    // job's nominal H, so that they can be compared
    const plan = swarmJob && !replica ? swarm.plan(volunteerId, h) : { steps: h.steps, leaseMs: h.leaseMs };
    const task: TaskRow = {
      taskId, jobId, volunteerId, baseVersion: check ? check.baseVersion : job.version,
      shard: check ? check.shard : again ? again.shard : store.nextShard(jobId, shards),
      seed: check ? check.seed : again ? again.seed : randomInt(0, 2 ** 31),
      state: 'issued', issuedAt: t, expiresAt: t + plan.leaseMs, reissueOf: again?.taskId ?? null, payloadHash: null, ack: null,
    };
    store.insertTask(task);
    if (swarmJob) swarm.issued(taskId, plan.steps, plan.leaseMs);
    if (replica) {
      guard.store.addReplica({
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
      taskId: task.taskId, jobId, baseVersion: task.baseVersion, versionHash: store.versionHash(jobId, task.baseVersion)!,
      shard: task.shard, seed: task.seed, steps: plan.steps, batchSize: h.batchSize, adamw: h.adamw, clipNorm: h.clipNorm,
      compression: h.compression, lease, deadline: task.expiresAt, model: job.model, paramCount: paramCount(job.model),
      ...(replica && flagsReplicas(h.compression) ? { replica: true } : {}),
      ...(h.augment ? { augment: h.augment } : {}),
      // a returner's residual from before the oldest base still accepted is dropped (residual-age.ts)
      ...(swarmJob ? { residualMaxAge: h.stalenessBound } : {}),
    };
  }

  /** Checks an update frame against its task and lease, stores it, and answers; idempotent per task. */
  async function intakeUpdate(taskId: string, body: Uint8Array, signature?: string): Promise<UpdateAck> {
    let task = store.getTask(taskId) ?? fail('TT_ERR_UNKNOWN_TASK', taskId);
    if (task.state !== 'accepted' && store.getJob(task.jobId)?.status === 'done') fail('TT_ERR_JOB_NOT_RUNNING', `job ${task.jobId} is done (${stopRules.finishOf(task.jobId)?.reason ?? 'ended by an operator'}); its updates are not taken. Lease a task of a running job (GET /api/jobs)`);
    let frame: ReturnType<typeof decodeUpdateFrame>;
    try {
      frame = decodeUpdateFrame(body);
    } catch (e) {
      throw e instanceof FrameError ? new RelayError('TT_ERR_BAD_FRAME', e.message) : e;
    }
    if (!headerCheck.Check(frame.header)) {
      const first = headerCheck.Errors(frame.header).First();
      fail('TT_ERR_BAD_FRAME', `header field "${(first?.path || '/').slice(1)}": ${first?.message ?? 'is invalid'}`);
    }
    const header = frame.header as typeof VolunteerSendsUpdateHeader.static;
    const claims = verifyLease(secret, header.lease);
    if (claims.taskId !== taskId) fail('TT_ERR_LEASE_INVALID', `it was issued for task ${claims.taskId}, not ${taskId}`);
    if (claims.volunteerId !== header.volunteerId) fail('TT_ERR_LEASE_INVALID', `it was issued to volunteer ${claims.volunteerId}, not ${header.volunteerId}`);

    if (task.state === 'expired' || (task.state === 'issued' && claims.expiresAt <= now())) fail('TT_ERR_LEASE_EXPIRED', taskId);
    // the volunteer's key signs task, lease and the exact body: a tampered body or a stolen lease fails here
    const hash = sha256(body); // one hash serves the signature check and idempotent re-sends
    await guard.verifyUpload(header.volunteerId, signature, taskId, header.lease, hash);
    // counted per identity only once the signature proves who sent it, so nobody can spend another's budget
    guard.limit('uploadsPerIdentity', header.volunteerId, now());
    task = store.getTask(taskId)!; // re-read: another request may have changed it during the await

    if (task.state === 'accepted') {
      if (task.payloadHash === hash) return { ...(JSON.parse(task.ack!) as UpdateAck), duplicate: true };
      fail('TT_ERR_LEASE_USED', taskId);
    }
    if (task.state === 'rejected') fail('TT_ERR_LEASE_USED', taskId);
    const t = now();
    if (task.state === 'expired' || claims.expiresAt <= t) fail('TT_ERR_LEASE_EXPIRED', taskId);

    const job = requireJob(task.jobId);
    if (job.status !== 'running') fail('TT_ERR_JOB_NOT_RUNNING', `job ${job.jobId} is ${job.status}; its updates are not taken now`);
    const h = job.hyperparameters;
    const staleness = job.version - task.baseVersion;
    if (staleness < 0 || staleness > h.stalenessBound) {
      reject(taskId);
      fail('TT_ERR_TOO_STALE', `update is based on version ${task.baseVersion} but the job is at ${job.version} (staleness bound ${h.stalenessBound}); lease a new task`);
    }
    const n = paramCount(job.model);
    // a swarm task's H is its own: its norm is held to a bound for that many steps (normBoundFor)
    const taskSteps = claims.steps ?? h.steps;
    const bound = normBoundFor(job, taskSteps);
    const checked = validateEncodedSafe(frame.payload, { paramCount: n, normBound: bound.bound, boundFrom: bound.from });
    if (!checked.ok) {
      // final either way: the lease cannot be retried with another frame, and its round slot is free at once
      reject(taskId);
      const r = validationRefusal[checked.code];
      if (r.strike) {
        const rep = guard.outcome(header.volunteerId, 'invalid', t);
        log.warn({ task: taskId, volunteer: header.volunteerId, code: checked.code, reputation: rep }, 'corrupt update: task rejected, strike against its volunteer');
      }
      return fail(r.code, checked.message);
    }
    const norm = checked.norm;
    if (!(norm <= h.maxUpdateNorm)) {
      reject(taskId);
      fail('TT_ERR_UPDATE_NORM', `update L2 norm ${norm.toPrecision(4)} exceeds the job's bound ${h.maxUpdateNorm}`);
    }
    // scored and stored when the job turns it on; in enforce mode a loss drop below minDrop is refused here
    usefulness.check(job, task, header.volunteerId, frame.payload, t);
    const ack: UpdateAck = { accepted: true, duplicate: false, round: job.version, weight: stalenessWeight(staleness) };
    // credit is what the relay leased (the lease's H, signed, of the job's batch), never the header's claim
    const samples = (claims.steps ?? h.steps) * h.batchSize;
    const swarmJob = isSwarm(h);
    // a swarm update also weighs by its samples against the job's nominal task (H differs per device)
    const weight = swarmJob ? ack.weight * (samples / (h.steps * h.batchSize)) : ack.weight;
    const computeMs = Math.min(header.computeMs, Math.max(0, t - task.issuedAt));
    // a spot check (read once: its weight and its comparison both need the group)
    const mine = guard.store.getReplica(taskId);
    const group = mine ? guard.store.group(mine.groupId) : [];
    const secondCopy = group.some((g) => g.taskId !== taskId && g.payload !== null);
    store.acceptUpdate({
      // a spot check's second copy is kept to compare, not counted: one shard and seed weigh once. Its
      // volunteer is told the usual weight, so an unflagged check stays unseen.
      taskId, jobId: job.jobId, volunteerId: header.volunteerId, baseVersion: task.baseVersion, round: job.version, weight: secondCopy ? 0 : weight,
      // credit is what the relay leased (H steps of its batch), never the header's claim; the measured
      // compute time is informative only, and no longer than the lease has been out
      payload: frame.payload, payloadHash: hash, losses: header.losses, samples, computeMs, acceptedAt: t, norm,
    }, JSON.stringify(ack));
    // remembered as for the job's nominal H, so tasks of any size share one history (linear in steps:
    // AdamW moves each parameter at most about lr per step, so that is the upper envelope)
    rememberNorm(job, norm * (h.steps / taskSteps));
    if (mine) spotCheck(mine, group, taskId, frame.payload, n, t);
    metrics.updatesAccepted.inc({ job: job.jobId });
    metrics.updateBytes.inc({ job: job.jobId }, body.length);
    metrics.updateStaleness.observe({ job: job.jobId }, staleness);
    const pending = store.countPendingUpdates(job.jobId);
    if (swarmJob) {
      swarm.accepted(job.jobId, h, taskId, header.volunteerId, claims.steps ?? h.steps, computeMs, t - task.issuedAt, t);
      if (swarm.due(h, pending, t - job.roundStartedAt)) scheduleRound(job.jobId);
    } else if (pending >= h.updatesPerRound) scheduleRound(job.jobId);
    return ack;
  }

  /** A refused update: final for its task. */
  function reject(taskId: string): void {
    store.rejectTask(taskId);
    swarm.ended(taskId, '', false);
  }

  /** The job's last accepted norms (across rounds), oldest first: kept in memory, re-read from the store
   * (norms only) at the first upload after a start or after a rollback discarded some. */
  function recentNorms(job: JobRow): number[] {
    const size = guard.normBound.history ?? 64;
    let c = normHistory.get(job.jobId);
    if (!c || c.version > job.version) {
      c = { version: job.version, recent: guard.store.recentNorms(job.jobId, size) };
      normHistory.set(job.jobId, c);
    }
    c.version = job.version;
    return c.recent;
  }

  function rememberNorm(job: JobRow, norm: number): void {
    const recent = recentNorms(job);
    recent.push(norm);
    if (recent.length > (guard.normBound.history ?? 64)) recent.shift();
  }

  /** The bound the job's next update of `steps` inner steps is held to, from its first one on (see
   * jobNormBound and priorNormBound): the job's maxUpdateNorm is checked after, on its own. */
  function normBoundFor(job: JobRow, steps: number): { bound: number; from: string } {
    const h = job.hyperparameters;
    let prior = priorCache.get(job.jobId);
    // weight decay's share of Δ scales with ‖θ‖: only then is the prior per version (read once per version)
    const perVersion = h.adamw.weightDecay > 0;
    if (!prior || (perVersion && prior.version !== job.version) || prior.steps !== steps) {
      let sq = 0;
      if (perVersion && prior?.version === job.version && prior.thetaNorm !== undefined) sq = prior.thetaNorm ** 2;
      else {
        const v = perVersion ? store.getParams(job.jobId, job.version) : undefined;
        if (v) for (const x of v.params) sq += x * x;
      }
      prior = { version: job.version, steps, thetaNorm: Math.sqrt(sq), bound: priorNormBound(paramCount(job.model), { ...h, steps }, Math.sqrt(sq)) };
      priorCache.set(job.jobId, prior);
    }
    // the history is kept as for the nominal H (see rememberNorm): scaled to this task's H
    const scale = steps / h.steps;
    const b = jobNormBound(recentNorms(job), prior.bound / scale, guard.normBound);
    return { bound: b.bound * scale, from: scale === 1 ? b.from : `${b.from}, scaled to this task's ${steps} steps` };
  }

  /** When both copies of a spot-checked task are in, compares them. Agreement is a clean result for both.
   * On disagreement the relay breaks the tie with its own CPU-reference copy (MLP jobs), in the
   * background: a copy that matches it is clean, one that does not is a strike; with no reference
   * (GPT jobs, base version gone) both are struck, and an honest volunteer's strikes are forgiven by
   * later clean checks. `group`: the check's replica rows as read before this copy was stored. */
  function spotCheck(mine: ReplicaRow, group: ReplicaRow[], taskId: string, payload: Uint8Array, n: number, t: number): void {
    guard.store.setReplicaPayload(taskId, payload);
    if (group.length < 2 || group.some((g) => g.taskId !== taskId && !g.payload)) return;
    const copies = group.map((g) => decodeUpdate(g.taskId === taskId ? payload : g.payload!, n));
    const { agree, distance } = compareUpdates(copies[0], copies[1], guard.tolerance);
    guard.spotChecked(agree);
    log.info({ group: mine.groupId, agree, distance, volunteers: group.map((g) => g.volunteerId) }, 'spot check compared');
    if (agree) {
      for (const g of group) guard.outcome(g.volunteerId, 'agree', t);
      return;
    }
    const job = store.getJob(mine.jobId);
    // params only, and only for the jobs a reference copy is computed for (a GPT checkpoint is not read)
    const base = job?.model.kind === 'mlp' ? store.getParams(mine.jobId, mine.baseVersion) : undefined;
    if (!job || !base || job.model.kind !== 'mlp') {
      for (const g of group) guard.outcome(g.volunteerId, 'disagree', t);
      return;
    }
    const shard = dataset(job.dataset.name).shardBytes[mine.shard];
    const pending = referenceUpdate(job.model, job.hyperparameters, base.params, shard, mine.seed).then((ref) => {
      group.forEach((g, i) => {
        const r = compareUpdates(copies[i], ref, guard.tolerance);
        guard.outcome(g.volunteerId, r.agree ? 'agree' : 'disagree', now());
        log.info({ group: mine.groupId, volunteer: g.volunteerId, agree: r.agree, distance: r.distance }, 'spot check tie-break against the relay\'s reference copy');
      });
    }).catch((e: unknown) => {
      log.error({ err: e, group: mine.groupId }, 'spot check tie-break failed; striking both copies');
      try {
        for (const g of group) guard.outcome(g.volunteerId, 'disagree', now());
      } catch { /* the relay is closing: its database is gone */ }
    }).finally(() => tieBreaks.delete(pending));
    tieBreaks.add(pending);
  }

  /** Work deferred past the current request; dropped once the relay is stopping (its database closes). */
  let stopping = false;
  function later(work: () => void): void {
    setImmediate(() => { if (!stopping) work(); });
  }

  /** Rounds close outside the request that completed them, so the uploader gets its answer at once. */
  function scheduleRound(jobId: string): void {
    if (scheduled.has(jobId)) return;
    scheduled.add(jobId);
    later(() => {
      scheduled.delete(jobId);
      try {
        closeRound(jobId, false);
      } catch (e) {
        log.error({ err: e, job: jobId }, 'round failed');
      }
    });
  }

  /** Aggregates the pending updates into the next version when K are in, or the round timer fired with a quorum. */
  function closeRound(jobId: string, byTimer: boolean): boolean {
    const job = requireJob(jobId);
    if (job.status !== 'running') return false;
    const h = job.hyperparameters;
    const count = store.countPendingUpdates(jobId);
    const t0 = now();
    const swarmJob = isSwarm(h);
    const k = swarmJob ? swarm.k(jobId, h, t0) : h.updatesPerRound;
    if (swarmJob) {
      // by time with a quorum, whoever calls (./round-size.ts)
      if (!swarm.due(h, count, t0 - job.roundStartedAt)) return false;
    } else {
      const timerDue = byTimer && count >= h.quorum && t0 - job.roundStartedAt >= h.roundTimeoutMs;
      if (count < h.updatesPerRound && !timerDue) return false;
    }
    const stop = metrics.roundSeconds.startTimer();
    const n = paramCount(job.model);
    // Streaming: the pending updates are read one at a time and folded into bucket sums, so the round
    // holds O(buckets × P) whatever K (shared/aggregate/streaming.ts). Folding at the close, from the
    // store, rather than on arrival keeps no round state in this process: a restart loses nothing, and
    // relays sharing one database close a round from what all of them accepted.
    // Second copies of spot checks weigh 0 (see intakeUpdate); a round made of nothing else counts them after all.
    const pending: string[] = [];
    let acc = foldPending(job, pending, false);
    if (acc.counted === 0) acc = foldPending(job, [], true);
    if (pending.length === 0) { stop(); return false; } // their payloads were lost: nothing to apply
    const delta = acc.close(h.aggregator, { preAggregators: h.preAggregators });
    const cur = store.getVersion(jobId, job.version)!;
    const next = outerStep(cur.params, cur.momentum, delta, h.outerLr, h.outerMomentum);
    const version = job.version + 1;
    // the new version is what its published delta gives (shared/codec/version-delta.ts): volunteers
    // download that delta instead of the whole model and rebuild these exact bits
    const residual = cur.residual ?? new Float32Array(n);
    const published = publishVersion(cur.params, next.params, residual, deltaCompression(h.compression));
    store.commitRound(jobId, {
      version, params: published.params, momentum: next.momentum, hash: paramHash(published.params),
      delta: { bytes: published.delta, sha256: sha256(published.delta) }, residual,
    }, pending, now());
    prune(jobId, version, h.stalenessBound);
    stop();
    const trigger = count >= k ? 'k' : 'timer';
    metrics.rounds.inc({ job: jobId, trigger });
    metrics.version.set({ job: jobId }, version);
    metrics.roundSize.set({ job: jobId }, k);
    const last = lastClose.get(jobId) ?? job.roundStartedAt;
    metrics.roundTime.set({ job: jobId }, Math.max(0, t0 - last) / 1000);
    lastClose.set(jobId, t0);
    log.info({ job: jobId, version, updates: pending.length, trigger }, 'round closed');
    if (o.evaluate !== false) later(() => evaluate(jobId, version));
    // budgets and targets, once this version's evaluation is in (its landing checks again: ./stopping.ts)
    later(() => stopRules.check(jobId, { needEval: o.evaluate !== false }));
    return true;
  }

  /** The job's pending updates folded into a round accumulator, one payload at a time; `ids` collects
   * their task ids. `all`: every update at weight 1 (a round of spot-check second copies only).
   * Tasks of different H (swarm jobs) are folded as FedNova does (Wang et al., NeurIPS'20, arXiv
   * 2007.07481): each Δ divided by its own steps and multiplied by the job's nominal H, weighted by its
   * samples (and staleness). Averaged raw, a 40-step Δ is 8× a 5-step one and its weight 8× too: the round's
   * step was then set by the fastest devices and the outer momentum carried it past the minimum (measured:
   * 31 % held-out accuracy where fixed H reached 88 % at equal samples, bench/swarm.ts). */
  function foldPending(job: JobRow, ids: string[], all: boolean): RoundAccumulator {
    const h = job.hyperparameters, n = paramCount(job.model);
    const nominal = h.steps * h.batchSize;
    const acc = createRoundAccumulator(n, { seed: job.version });
    for (const u of store.eachPendingUpdate(job.jobId)) {
      ids.push(u.taskId);
      if (!all && !(u.weight > 0)) continue;
      const x = decodeUpdate(u.payload, n);
      const k = isSwarm(h) && u.samples > 0 ? nominal / u.samples : 1;
      if (k !== 1) for (let i = 0; i < x.values.length; i++) x.values[i] *= k;
      acc.fold(x, all ? 1 : u.weight);
    }
    return acc;
  }

  /** Retention after a round (./retention.ts). A failure here costs disk, not the round. */
  function prune(jobId: string, version: number, stalenessBound: number): void {
    const r = o.retention ?? defaultRetention;
    try {
      const dropped = store.pruneHistory(jobId, prunableUpTo(version, r, stalenessBound), r.keepEvery);
      if (dropped.checkpoints || dropped.payloads) log.debug({ job: jobId, version, ...dropped }, 'old checkpoints and payloads dropped');
    } catch (e) {
      log.warn({ err: e, job: jobId, version }, 'retention failed; old checkpoints and payloads stay for now');
    }
  }

  /** Evaluations running on the pool, by job@version. */
  const evaluating = new Set<string>();
  function evaluate(jobId: string, version: number): void {
    if (o.evaluate === false) return;
    const job = store.getJob(jobId);
    // kind first: a GPT checkpoint (up to 160 MB with momentum) is not read here for nothing
    const v = job?.model.kind === 'mlp' ? store.getParams(jobId, version) : undefined;
    if (!job || !v || job.model.kind !== 'mlp') return;
    let heldOut;
    try {
      heldOut = dataset(job.dataset.name).heldOut;
    } catch (e) {
      log.warn({ job: jobId, err: e }, 'no held-out data to evaluate on');
      return;
    }
    if (!heldOut) return;
    const land = (r: { loss: number; accuracy: number }) => {
      if (stopping) return;
      store.putEval(jobId, { version, loss: r.loss, accuracy: r.accuracy, at: now() });
      // /metrics is public: a pending job's id stays off it until an operator approves the job
      if (store.getJob(jobId)?.status !== 'pending') metrics.accuracy.set({ job: jobId }, r.accuracy);
      log.info({ job: jobId, version, loss: r.loss, accuracy: r.accuracy }, 'version evaluated');
      stopRules.check(jobId, { needEval: true });
    };
    if (!pool) return land(mlpEvaluate(job.model, v.params, heldOut));
    // on the relay's worker pool: the result lands on the version it measured, whenever it comes; a
    // version already being evaluated (a new job's version 0 is also seen unevaluated by recover()) is not
    // evaluated twice
    const key = `${jobId}@${version}`;
    if (evaluating.has(key)) return;
    evaluating.add(key);
    pool.run({ kind: 'mlp-eval', config: job.model, params: v.params, heldOut }).then(land).catch((e: unknown) => {
      if (!(e instanceof PoolClosedError) && !stopping) log.error({ err: e, job: jobId, version }, 'evaluation failed');
    }).finally(() => evaluating.delete(key));
  }

  function expireLeases(t: number): void {
    for (const task of store.expireDueTasks(t)) {
      swarm.ended(task.taskId, task.volunteerId, true);
      metrics.leasesExpired.inc({ job: task.jobId });
      log.info({ task: task.taskId, job: task.jobId, volunteer: task.volunteerId }, 'lease expired: issued=>expired, queued for re-issue');
    }
  }

  /** Periodic: expire leases, fire round timers. */
  function sweep(): void {
    const t = now();
    expireLeases(t);
    for (const job of store.listJobs('running')) {
      closeRound(job.jobId, true);
      gauges(job.jobId, job.hyperparameters, t);
    }
  }

  /** Volunteers training vs waiting, and the K the next round closes at (/metrics and the dashboard). */
  function gauges(jobId: string, h: JobRow['hyperparameters'], t: number): void {
    metrics.volunteersTraining.set({ job: jobId }, store.countLiveTasks(jobId, t));
    metrics.volunteersWaiting.set({ job: jobId }, waiting.count(jobId, t));
    metrics.roundSize.set({ job: jobId }, isSwarm(h) ? swarm.k(jobId, h, t) : h.updatesPerRound);
  }

  /** After a restart: finish any round that was ready, evaluate versions the crash left unevaluated. */
  function recover(): void {
    for (const job of store.listJobs()) {
      metrics.version.set({ job: job.jobId }, job.version);
      if (job.status === 'running') closeRound(job.jobId, false);
      const latest = store.getJob(job.jobId)!;
      const evals = store.listEvals(job.jobId);
      if (!evals.some((e) => e.version === latest.version)) evaluate(job.jobId, latest.version);
    }
  }

  /** Registers a volunteer: with a key (+ proof of work) its id derives from the key; key-less only on an 'optional' relay. */
  async function registerVolunteer(agent: string, device: string, identity: { publicKey?: string; challenge?: string; nonce?: string } = {}): Promise<string> {
    const t = now();
    const admitted = await guard.admitIdentity(identity, t);
    const id = admitted?.volunteerId ?? `v-${randomUUID()}`;
    if (!store.hasVolunteer(id)) store.addVolunteer(id, agent, device, t);
    return id;
  }

  return { swarm, createJob, jobInfo, leaseTask, stopping: stopRules, intakeUpdate, closeRound, sweep, recover, evaluate, registerVolunteer, requireJob, paramHash, guard,
    /** Resolves when the spot-check tie-breaks started so far are done. */
    settled: async (): Promise<void> => { await Promise.all([...tieBreaks]); },
    /** Stops deferred work (round closes, evaluations) before the store closes. */
    stop: (): void => { stopping = true; },
    /** Runs evaluations on this worker pool from now on. */
    usePool: (p: WorkPool): void => { pool = p; },
  };
}
export type Scheduler = ReturnType<typeof createScheduler>;
