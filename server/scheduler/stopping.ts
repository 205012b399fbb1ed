// When a job is finished: its `hyperparameters.until` (a budget of samples or versions, a target held-out
// metric, or a plateau of the held-out loss), checked after each round once its evaluation is stored. The
// first rule that holds moves the job to done, ends its leases and records why, with the version it
// releases: the one with the best held-out loss (not the last; past its best a model only memorises).
// An operator can extend a done job with a new `until`: it resumes from the released version's checkpoint.
import type { FastifyBaseLogger } from 'fastify';
import { Value } from '@sinclair/typebox/value';
import { UntilSchema, type Eval, type Finish, type Until } from '../../shared/protocol/messages.ts';
import { fail } from '../errors.ts';
import type { RelayStore, Stores } from '../store/types.ts';

export type StopRule = keyof Until;
export type Verdict = { rule: StopRule; reason: string };

/** Plateau (as early stopping does it): an evaluation improves when its loss is below the best so far by
 * more than `tolerance`; the rule holds once `evals` evaluations in a row have not. `evals` in version order. */
export function plateauReached(evals: readonly Eval[], p: NonNullable<Until['plateau']>): { best: Eval; since: number } | null {
  let best: Eval | undefined;
  let since = 0;
  for (const e of evals) {
    if (!Number.isFinite(e.loss)) { if (best) since++; continue; }
    if (!best || e.loss < best.loss - p.tolerance) { best = e; since = 0; } else since++;
  }
  return best && since >= p.evals ? { best, since } : null;
}

/** The first rule of `until` that holds, or null. `evals`: the job's current history, in version order. */
export function stopVerdict(until: Until | undefined, evals: readonly Eval[], progress: { version: number; samples: number }): Verdict | null {
  if (!until) return null;
  if (until.versions !== undefined && progress.version >= until.versions) {
    return { rule: 'versions', reason: `version budget reached: version ${progress.version} of ${until.versions}` };
  }
  if (until.samples !== undefined && progress.samples >= until.samples) {
    return { rule: 'samples', reason: `sample budget reached: ${progress.samples} samples trained of ${until.samples}` };
  }
  if (until.targetLoss !== undefined) {
    const hit = evals.find((e) => e.loss <= until.targetLoss!);
    if (hit) return { rule: 'targetLoss', reason: `target held-out loss reached: ${hit.loss.toPrecision(4)} ≤ ${until.targetLoss} at version ${hit.version}` };
  }
  if (until.targetAccuracy !== undefined) {
    const hit = evals.find((e) => e.accuracy >= until.targetAccuracy!);
    if (hit) return { rule: 'targetAccuracy', reason: `target held-out accuracy reached: ${(hit.accuracy * 100).toFixed(2)} % ≥ ${(until.targetAccuracy * 100).toFixed(2)} % at version ${hit.version}` };
  }
  if (until.plateau) {
    const p = plateauReached(evals, until.plateau);
    if (p) {
      return {
        rule: 'plateau',
        reason: `held-out loss plateaued: ${p.since} evaluations without improving on ${p.best.loss.toPrecision(4)} (version ${p.best.version}) by more than ${until.plateau.tolerance}`,
      };
    }
  }
  return null;
}

/** The version a done job releases: the best held-out loss among those with a checkpoint (ties: the
 * earlier), else the current one when nothing was evaluated. */
export function releasedEval(evals: readonly Eval[], hasCheckpoint: (version: number) => boolean): Eval | undefined {
  let best: Eval | undefined;
  for (const e of evals) if (Number.isFinite(e.loss) && hasCheckpoint(e.version) && (!best || e.loss < best.loss)) best = e;
  return best;
}

/** A job's `until` as an operator sends it, checked; a refusal names the field. */
export function checkUntil(input: unknown): Until {
  if (!Value.Check(UntilSchema, input)) {
    const e = Value.Errors(UntilSchema, input).First();
    const field = ['until', ...(e?.path ?? '').split('/').filter(Boolean)].join('.');
    fail('TT_ERR_VALIDATION', `${field}: ${e?.message.toLowerCase() ?? 'is invalid'}; see docs/jobs.md for until's fields`);
  }
  if (Object.keys(input as object).length === 0) fail('TT_ERR_VALIDATION', 'until: give at least one of samples, versions, targetLoss, targetAccuracy, plateau');
  return input as Until;
}

export function createStopping(o: { stores: Stores; log: FastifyBaseLogger; now: () => number }) {
  const { stores, log } = o;

  /** The job's evaluations of versions it still has (a rollback drops later ones). */
  const history = async (store: RelayStore, jobId: string, version: number): Promise<Eval[]> =>
    (await store.listEvals(jobId)).filter((e) => e.version <= version);

  const finishOf = (jobId: string): Promise<Finish | undefined> => stores.relay.getFinish(jobId);

  /** Moves a running or paused job to done for `verdict`, releasing its best version; one transaction with
   * its audit entry. Its leases end: their updates could never be taken, and a resumed job must not wait for them. */
  async function finish(jobId: string, verdict: { rule: string; reason: string }, actor: string): Promise<Finish> {
    const t = o.now();
    const done = await stores.transaction(async (tx) => {
      const job = (await tx.relay.getJob(jobId)) ?? fail('TT_ERR_UNKNOWN_JOB', jobId);
      const kept = new Set(await tx.relay.listVersions(jobId));
      const best = releasedEval(await history(tx.relay, jobId, job.version), (v) => kept.has(v));
      const releasedVersion = best?.version ?? job.version;
      const f: Finish = {
        rule: verdict.rule, reason: verdict.reason, releasedVersion, releasedHash: (await tx.relay.versionHash(jobId, releasedVersion))!,
        loss: best?.loss ?? null, accuracy: best?.accuracy ?? null, at: t,
      };
      await tx.relay.setJobStatus(jobId, 'done', t);
      const leasesEnded = await tx.relay.endLeases(jobId);
      await tx.relay.putFinish(jobId, f);
      await tx.ops.appendAudit({ actor, action: 'job.finish', jobId, detail: { ...f, from: job.status, to: 'done', version: job.version, leasesEnded } }, t);
      return f;
    });
    log.info({ job: jobId, ...done }, `job finished (${done.rule}): released version ${done.releasedVersion}`);
    return done;
  }

  /** After a round (and its evaluation): finishes a running job whose `until` holds. Never throws. */
  /** `needEval`: the relay evaluates this job's versions asynchronously (on its worker pool), so the
   * held-out rules (target, plateau) wait for the current version's evaluation, whose landing calls this
   * again; budgets (samples, versions) hold at the round, evaluated or not, so a job whose versions outrun
   * their evaluations still ends (its released version is the best evaluated one). */
  async function check(jobId: string, opts: { needEval?: boolean } = {}): Promise<Finish | undefined> {
    try {
      const job = await stores.relay.getJob(jobId);
      const until = job?.hyperparameters.until;
      if (!job || job.status !== 'running' || !until) return undefined;
      const evaluated = !opts.needEval || (await stores.relay.listEvals(jobId)).some((e) => e.version === job.version);
      const rules = evaluated ? until : { samples: until.samples, versions: until.versions };
      const verdict = stopVerdict(rules, await history(stores.relay, jobId, job.version), { version: job.version, samples: await stores.relay.samplesApplied(jobId) });
      return verdict ? await finish(jobId, verdict, 'relay') : undefined;
    } catch (e) {
      log.error({ err: e, job: jobId }, 'stopping check failed; the job runs on');
      return undefined;
    }
  }

  /** An operator's new budget for a done job: back to its released version's checkpoint (params and
   * momentum; later versions and their evaluations dropped), `until` replaced, running again. Refused when
   * the new `until` would hold at once (it would finish again at the next round). */
  async function extend(jobId: string, until: Until, actor: string): Promise<{ version: number; until: Until }> {
    const t = o.now();
    return stores.transaction(async (tx) => {
      const job = (await tx.relay.getJob(jobId)) ?? fail('TT_ERR_UNKNOWN_JOB', jobId);
      if (job.status !== 'done') fail('TT_ERR_BAD_TRANSITION', `job ${jobId} is ${job.status}; only a done job's budget is extended (pause/resume a running one)`);
      const released = (await tx.relay.getFinish(jobId))?.releasedVersion ?? job.version;
      await tx.relay.rollback(jobId, released, t);
      const again = stopVerdict(until, await history(tx.relay, jobId, released), { version: released, samples: await tx.relay.samplesApplied(jobId) });
      if (again) fail('TT_ERR_VALIDATION', `until.${again.rule}: already holds at the released version ${released} (${again.reason}); give a larger budget or a stricter target`);
      const leasesEnded = await tx.relay.endLeases(jobId);
      await tx.relay.setHyperparameters(jobId, { ...job.hyperparameters, until });
      await tx.relay.setJobStatus(jobId, 'running', t);
      await tx.relay.clearFinish(jobId);
      await tx.ops.appendAudit({
        actor, action: 'job.extend', jobId,
        detail: { from: 'done', to: 'running', untilBefore: job.hyperparameters.until ?? null, until, resumedFrom: released, droppedVersions: job.version - released, leasesEnded },
      }, t);
      log.info({ job: jobId, until, resumedFrom: released }, 'job extended: done=>running');
      return { version: released, until };
    });
  }

  return { check, finish, finishOf, extend };
}
export type Stopping = ReturnType<typeof createStopping>;
