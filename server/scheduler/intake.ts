// Intake: an uploaded update frame checked against its task and lease, its signature, staleness,
// encoding and norm bound, scored for usefulness, stored, and (for spot-checked tasks) compared with
// its other copy. Idempotent per task: a re-send of the same bytes gets the same answer.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyBaseLogger } from 'fastify';
import { decodeUpdate } from '../../shared/codec/index.ts';
import { decodeUpdateFrame, FrameError } from '../../shared/protocol/frame.ts';
import { VolunteerSendsUpdateHeader, type UpdateAck } from '../../shared/protocol/messages.ts';
import { paramCount } from '../../shared/models/config.ts';
import { kindOf } from '../../shared/models/registry.ts';
import { dataset } from '../data/datasets.ts';
import { RelayError, fail } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRow, RelayStore } from '../store/types.ts';
import type { Guard } from '../defence/guard.ts';
import type { ReplicaRow } from '../defence/store.ts';
import { referenceUpdate } from '../defence/recompute.ts';
import { compareCopies } from '../defence/compare.ts';
import { createUsefulness } from '../defence/usefulness.ts';
import { jobNormBound, priorNormBound, validateEncodedSafe, type ValidationCode, type ValidationContext, type ValidationResult } from '../defence/validate.ts';
import { validateOnPool } from '../defence/validate-file.ts';
import { l2 } from '../../shared/aggregate/distances.ts';
import { runOnPool } from '../pool/index.ts';
import { verifyLease } from './leases.ts';
import { stalenessWeight } from './outer-step.ts';
import type { Stopping } from './stopping.ts';
import { isSwarm, type SwarmPolicy } from './swarm.ts';

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

/** Compiled once: the frame header is checked on every upload. */
const headerCheck = TypeCompiler.Compile(VolunteerSendsUpdateHeader);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A large upload as the route spooled it (../routes/spool.ts): the frame's magic, length and JSON header in
 * memory (`head`), its codec payload alone in `file`, `byteLength` the whole body's. */
export type SpooledUpload = { head: Uint8Array; file: string; byteLength: number };

export type IntakeOptions = {
  store: RelayStore; guard: Guard; secret: Buffer; log: FastifyBaseLogger; metrics: Metrics; now: () => number;
  requireJob: (jobId: string) => Promise<JobRow>;
  stopRules: Stopping;
  /** called when an accepted update made the round's K: the round closes outside this request */
  roundReady: (jobId: string) => void;
  /** called before an update is stored; what it answers is called once it is stored (with its task id when it
   * counts: large models' are decoded ahead of the close) or failed to be (nothing) */
  storing: (jobId: string, length: number) => (taskId?: string) => void;
  /** swarm jobs' paces and round rule (./swarm.ts) */
  swarm: SwarmPolicy;
};

export function createIntake(o: IntakeOptions) {
  const { store, guard, secret, log, metrics, now, requireJob, stopRules, swarm } = o;
  /** Each job's most recent accepted update norms, oldest first, for the norm bound (rebuilt from the store
   * after a restart or a rollback); `version`: the job's version when last seen, to notice a rollback. */
  const normHistory = new Map<string, { version: number; recent: number[] }>();
  /** Each job's prior norm bound (./defence/validate.ts priorNormBound), per base version when it needs ‖θ‖. */
  const priorCache = new Map<string, { version: number; steps: number; thetaNorm?: number; bound: number }>();
  /** ‖θ‖ of a job's version being read now: the uploads that arrive together after a round read it once,
   * not one full copy of the parameters each. */
  const thetaReads = new Map<string, Promise<number>>();
  /** Spot-check tie-breaks running in the background (tests and shutdown can wait for them). */
  const tieBreaks = new Set<Promise<void>>();
  /** Usefulness scores of uploads, on jobs that turn them on. */
  const usefulness = createUsefulness({ store, defence: guard.store, metrics });

  /** Each job's worst event-loop delay (p99, max) while its spooled uploads were checked on the pool. */
  const loopDelays = new Map<string, { p99: number; max: number }>();

  /** Checks an update frame against its task and lease, stores it, and answers; idempotent per task.
   * `bodySha256`: the body's hash when the route computed it as the body arrived (server/routes/spool.ts),
   * or how to compute it (a spooled body's, from its file on the pool), which a spooled body must come with:
   * its payload is hashed and checked on the pool and stored by renaming its file, never read back here. */
  async function intakeUpdate(taskId: string, body: Uint8Array | SpooledUpload, signature?: string, bodySha256?: string | (() => Promise<string>)): Promise<UpdateAck> {
    const spooled = body instanceof Uint8Array ? undefined : body;
    if (spooled && bodySha256 === undefined) throw new Error('a spooled upload comes with its hash, or how to compute it from its file');
    const byteLength = body.byteLength;
    let task = (await store.getTask(taskId)) ?? fail('TT_ERR_UNKNOWN_TASK', taskId);
    if (task.state !== 'accepted' && (await store.getJob(task.jobId))?.status === 'done') fail('TT_ERR_JOB_NOT_RUNNING', `job ${task.jobId} is done (${(await stopRules.finishOf(task.jobId))?.reason ?? 'ended by an operator'}); its updates are not taken. Lease a task of a running job (GET /api/jobs)`);
    let frame: ReturnType<typeof decodeUpdateFrame>;
    try {
      frame = decodeUpdateFrame(spooled ? spooled.head : body as Uint8Array);
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
    const hash = typeof bodySha256 === 'function' ? await bodySha256() : bodySha256 ?? sha256(body as Uint8Array); // one hash serves the signature check and idempotent re-sends
    await guard.verifyUpload(header.volunteerId, signature, taskId, header.lease, hash);
    // counted per identity only once the signature proves who sent it, so nobody can spend another's budget
    await guard.limit('uploadsPerIdentity', header.volunteerId, now());
    task = (await store.getTask(taskId))!; // re-read: another request may have changed it during the await

    if (task.state === 'accepted') {
      if (task.payloadHash === hash) return { ...(JSON.parse(task.ack!) as UpdateAck), duplicate: true };
      fail('TT_ERR_LEASE_USED', taskId);
    }
    if (task.state === 'rejected') fail('TT_ERR_LEASE_USED', taskId);
    const t = now();
    if (task.state === 'expired' || claims.expiresAt <= t) fail('TT_ERR_LEASE_EXPIRED', taskId);

    const job = await requireJob(task.jobId);
    if (job.status !== 'running') fail('TT_ERR_JOB_NOT_RUNNING', `job ${job.jobId} is ${job.status}; its updates are not taken now`);
    const h = job.hyperparameters;
    const staleness = job.version - task.baseVersion;
    if (staleness < 0 || staleness > h.stalenessBound) {
      await reject(taskId);
      fail('TT_ERR_TOO_STALE', `update is based on version ${task.baseVersion} but the job is at ${job.version} (staleness bound ${h.stalenessBound}); lease a new task`);
    }
    const n = paramCount(job.model);
    // a swarm task's H is its own: its norm is held to a bound for that many steps (normBoundFor)
    const taskSteps = claims.steps ?? h.steps;
    const bound = await normBoundFor(job, taskSteps);
    const checked = await validate(job.jobId, spooled, frame.payload, { paramCount: n, normBound: bound.bound, boundFrom: bound.from });
    if (!checked.ok) {
      // final either way: the lease cannot be retried with another frame, and its round slot is free at once
      await reject(taskId);
      const r = validationRefusal[checked.code];
      if (r.strike) {
        const rep = await guard.outcome(header.volunteerId, 'invalid', t);
        log.warn({ task: taskId, volunteer: header.volunteerId, code: checked.code, reputation: rep }, 'corrupt update: task rejected, strike against its volunteer');
      }
      return fail(r.code, checked.message);
    }
    const norm = checked.norm;
    if (!(norm <= h.maxUpdateNorm)) {
      await reject(taskId);
      fail('TT_ERR_UPDATE_NORM', `update L2 norm ${norm.toPrecision(4)} exceeds the job's bound ${h.maxUpdateNorm}`);
    }
    // scored and stored when the job turns it on; in enforce mode a loss drop below minDrop is refused here
    // on the pool, which reads a spooled payload from its file
    await usefulness.check(job, task, header.volunteerId, spooled ? { file: spooled.file } : frame.payload, t);
    const ack: UpdateAck = { accepted: true, duplicate: false, round: job.version, weight: stalenessWeight(staleness) };
    // credit is what the relay leased (the lease's H, signed, of the job's batch), never the header's claim
    const samples = taskSteps * h.batchSize;
    const swarmJob = isSwarm(h);
    // a swarm update also weighs by its samples against the job's nominal task (H differs per device)
    const weight = swarmJob ? ack.weight * (samples / (h.steps * h.batchSize)) : ack.weight;
    const computeMs = Math.min(header.computeMs, Math.max(0, t - task.issuedAt));
    // a spot check (read once: its weight and its comparison both need the group)
    const mine = await guard.store.getReplica(taskId);
    const group = mine ? await guard.store.group(mine.groupId) : [];
    const secondCopy = group.some((g) => g.taskId !== taskId && g.payload !== null);
    // a spot check keeps its copy in the defence store: a spooled one is read before the store takes its file
    const replicaPayload = mine ? (spooled ? await readPayload(spooled) : frame.payload) : undefined;
    const payloadBytes = spooled ? byteLength - spooled.head.byteLength : frame.payload.byteLength;
    const stored = o.storing(job.jobId, n);
    try {
      await store.acceptUpdate({
        // a spot check's second copy is kept to compare, not counted: one shard and seed weigh once. Its
        // volunteer is told the usual weight, so an unflagged check stays unseen.
        taskId, jobId: job.jobId, volunteerId: header.volunteerId, baseVersion: task.baseVersion, round: job.version, weight: secondCopy ? 0 : weight,
        // credit is what the relay leased (H steps of its batch), never the header's claim; the measured
        // compute time is informative only, and no longer than the lease has been out
        ...(spooled ? { payloadFile: { path: spooled.file, byteLength: payloadBytes } } : { payload: frame.payload }),
        payloadHash: hash, losses: header.losses, samples, computeMs, acceptedAt: t, norm,
      }, JSON.stringify(ack));
    } catch (e) {
      stored();
      throw e;
    }
    stored(secondCopy ? undefined : taskId);
    // remembered as for the job's nominal H, so tasks of any size share one history (linear in steps:
    // AdamW moves each parameter at most about lr per step, so that is the upper envelope)
    await rememberNorm(job, norm * (h.steps / taskSteps));
    if (mine) await spotCheck(mine, group, taskId, replicaPayload!, n, t);
    metrics.updatesAccepted.inc({ job: job.jobId });
    metrics.updateBytes.inc({ job: job.jobId }, byteLength);
    metrics.updateStaleness.observe({ job: job.jobId }, staleness);
    const pending = await store.countPendingUpdates(job.jobId);
    if (swarmJob) {
      swarm.accepted(taskId, header.volunteerId, taskSteps, computeMs, t - task.issuedAt);
      if (swarm.due(job.jobId, h, pending, await store.countLiveTasks(job.jobId, t), t - job.roundStartedAt)) o.roundReady(job.jobId);
    } else if (pending >= h.updatesPerRound) o.roundReady(job.jobId);
    return ack;
  }

  /** An upload's checks (./defence/validate.ts): a body held in memory on the loop (small: the pool's dispatch
   * would cost more than the check), a spooled one on the pool, reading its file there; the loop's delay
   * meanwhile is recorded, so what of a large upload still reaches the loop is measured, not assumed. */
  async function validate(jobId: string, spooled: SpooledUpload | undefined, payload: Uint8Array, ctx: ValidationContext): Promise<ValidationResult> {
    if (!spooled) {
      const t0 = performance.now();
      const r = validateEncodedSafe(payload, ctx);
      metrics.intakeValidateSeconds.observe({ job: jobId, where: 'loop' }, (performance.now() - t0) / 1000);
      return r;
    }
    // sampled every millisecond: a check takes tens of milliseconds, so a 10 ms sampling would hide what matters
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    let r: Awaited<ReturnType<typeof validateOnPool>>;
    try {
      r = await validateOnPool(spooled.file, ctx);
    } finally {
      lag.disable();
    }
    const worst = loopDelays.get(jobId) ?? { p99: 0, max: 0 };
    worst.p99 = Math.max(worst.p99, lag.percentile(99) / 1e9);
    worst.max = Math.max(worst.max, lag.max / 1e9);
    loopDelays.set(jobId, worst);
    metrics.intakeLoopDelay.set({ job: jobId, stat: 'p99' }, worst.p99);
    metrics.intakeLoopDelay.set({ job: jobId, stat: 'max' }, worst.max);
    metrics.intakeValidateSeconds.observe({ job: jobId, where: 'pool' }, r.ms / 1000);
    const { ms: _ms, ...verdict } = r;
    return verdict;
  }

  const readPayload = async (u: SpooledUpload): Promise<Uint8Array> => new Uint8Array(await readFile(u.file));

  /** A refused update: final for its task. */
  async function reject(taskId: string): Promise<void> {
    await store.rejectTask(taskId);
    swarm.ended(taskId, '', false);
  }

  /** The job's last accepted norms (across rounds), oldest first: kept in memory, re-read from the store
   * (norms only) at the first upload after a start or after a rollback discarded some. */
  async function recentNorms(job: JobRow): Promise<number[]> {
    const size = guard.normBound.history ?? 64;
    let c = normHistory.get(job.jobId);
    if (!c || c.version > job.version) {
      c = { version: job.version, recent: await store.recentNorms(job.jobId, size) };
      normHistory.set(job.jobId, c);
    }
    c.version = job.version;
    return c.recent;
  }

  async function rememberNorm(job: JobRow, norm: number): Promise<void> {
    const recent = await recentNorms(job);
    recent.push(norm);
    if (recent.length > (guard.normBound.history ?? 64)) recent.shift();
  }

  /** The bound the job's next update of `steps` inner steps is held to, from its first one on (see
   * jobNormBound and priorNormBound): the job's maxUpdateNorm is checked after, on its own. */
  async function normBoundFor(job: JobRow, steps: number): Promise<{ bound: number; from: string }> {
    const h = job.hyperparameters;
    let prior = priorCache.get(job.jobId);
    // weight decay's share of Δ scales with ‖θ‖: only then is the prior per version (read once per version)
    const perVersion = h.adamw.weightDecay > 0;
    if (!prior || (perVersion && prior.version !== job.version) || prior.steps !== steps) {
      let theta = 0;
      if (perVersion && prior?.version === job.version && prior.thetaNorm !== undefined) theta = prior.thetaNorm;
      else if (perVersion) theta = await thetaNorm(job.jobId, job.version);
      prior = { version: job.version, steps, thetaNorm: theta, bound: priorNormBound(paramCount(job.model), { ...h, steps }, theta) };
      priorCache.set(job.jobId, prior);
    }
    // the history is kept as for the nominal H (see rememberNorm): scaled to this task's H
    const scale = steps / h.steps;
    const b = jobNormBound(await recentNorms(job), prior.bound / scale, guard.normBound);
    return { bound: b.bound * scale, from: scale === 1 ? b.from : `${b.from}, scaled to this task's ${steps} steps` };
  }

  /** ‖θ‖ of a version, computed on the pool from where the store keeps it (a model's worth of floats never
   * crosses the loop); 0 when the version is gone, as before. */
  function thetaNorm(jobId: string, version: number): Promise<number> {
    const key = `${jobId}@${version}`;
    let p = thetaReads.get(key);
    if (!p) {
      p = (async () => {
        if ((await store.versionHash(jobId, version)) === undefined) return 0;
        try {
          return await runOnPool({ kind: 'params-norm', params: store.paramsSource(jobId, version) });
        } catch (e) {
          // a store a worker cannot open (an in-memory database): read here, as before the pool
          log.debug({ err: e, job: jobId, version }, 'params norm on the pool failed; computing it on the loop');
          const v = await store.getParams(jobId, version);
          return v ? l2(v.params) : 0;
        }
      })().finally(() => thetaReads.delete(key));
      thetaReads.set(key, p);
    }
    return p;
  }

  /** When both copies of a spot-checked task are in, compares them. Agreement is a clean result for both.
   * On disagreement the relay breaks the tie with its own CPU-reference copy (MLP jobs), in the
   * background: a copy that matches it is clean, one that does not is a strike; with no reference
   * (GPT jobs, base version gone) both are struck, and an honest volunteer's strikes are forgiven by
   * later clean checks. `group`: the check's replica rows as read before this copy was stored. */
  async function spotCheck(mine: ReplicaRow, group: ReplicaRow[], taskId: string, payload: Uint8Array, n: number, t: number): Promise<void> {
    await guard.store.setReplicaPayload(taskId, payload);
    if (group.length < 2 || group.some((g) => g.taskId !== taskId && !g.payload)) return;
    // both copies are decoded and compared on the pool (../defence/compare.ts), not on the event loop
    const copies = group.map((g) => (g.taskId === taskId ? payload : g.payload!));
    const [{ agree, distance }] = await compareCopies(n, copies, guard.tolerance);
    guard.spotChecked(agree);
    log.info({ group: mine.groupId, agree, distance, volunteers: group.map((g) => g.volunteerId) }, 'spot check compared');
    if (agree) {
      for (const g of group) await guard.outcome(g.volunteerId, 'agree', t);
      return;
    }
    const job = await store.getJob(mine.jobId);
    // params only, and only for the jobs a reference copy is computed for (a GPT checkpoint is not read)
    const base = job && kindOf(job.model).relayReruns ? await store.getParams(mine.jobId, mine.baseVersion) : undefined;
    if (!job || !base) {
      for (const g of group) await guard.outcome(g.volunteerId, 'disagree', t);
      return;
    }
    const shard = dataset(job.dataset.name).shardBytes[mine.shard];
    const pending = referenceUpdate(job.model, job.hyperparameters, base.params, shard, mine.seed).then(async (ref) => {
      const against = await compareCopies(n, copies, guard.tolerance, ref);
      for (const [i, g] of group.entries()) {
        const r = against[i];
        await guard.outcome(g.volunteerId, r.agree ? 'agree' : 'disagree', now());
        log.info({ group: mine.groupId, volunteer: g.volunteerId, agree: r.agree, distance: r.distance }, 'spot check tie-break against the relay\'s reference copy');
      }
    }).catch(async (e: unknown) => {
      log.error({ err: e, group: mine.groupId }, 'spot check tie-break failed; striking both copies');
      try {
        for (const g of group) await guard.outcome(g.volunteerId, 'disagree', now());
      } catch { /* the relay is closing: its database is gone */ }
    }).finally(() => tieBreaks.delete(pending));
    tieBreaks.add(pending);
  }

  return {
    intakeUpdate,
    /** Resolves when the spot-check tie-breaks started so far are done. */
    settled: async (): Promise<void> => { await Promise.all([...tieBreaks]); },
  };
}
