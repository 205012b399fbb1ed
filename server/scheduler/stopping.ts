// When a job is finished: its `hyperparameters.until` (a budget of samples or versions, a target held-out
// metric, or a plateau of the held-out loss), checked after each round once its evaluation is stored. The
// first rule that holds moves the job to done, ends its leases and records why, with the version it
// releases: the one with the best held-out loss (not the last; past its best a model only memorises).
// An operator can extend a done job with a new `until`: it resumes from the released version's checkpoint.
import type Database from 'better-sqlite3';
import type { FastifyBaseLogger } from 'fastify';
import { Value } from '@sinclair/typebox/value';
import { UntilSchema, type Eval, type Finish, type Until } from '../../shared/protocol/messages.ts';
import { appendAudit, migrateAudit } from '../ops/audit.ts';
import { fail } from '../errors.ts';
import type { Store } from '../store/types.ts';

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

type FinishRow = { job_id: string; rule: string; reason: string; released_version: number; released_hash: string; loss: number | null; accuracy: number | null; at: number };

export function createStopping(o: { store: Store; db: Database.Database; log: FastifyBaseLogger; now: () => number }) {
  const { store, db, log } = o;
  db.exec(`CREATE TABLE IF NOT EXISTS job_finish (
    job_id TEXT PRIMARY KEY, rule TEXT NOT NULL, reason TEXT NOT NULL, released_version INTEGER NOT NULL,
    released_hash TEXT NOT NULL, loss REAL, accuracy REAL, at INTEGER NOT NULL)`);
  migrateAudit(db);

  /** The job's evaluations of versions it still has (a rollback drops later ones). */
  const history = (jobId: string, version: number): Eval[] => store.listEvals(jobId).filter((e) => e.version <= version);

  /** Ends the job's leases: their updates could never be taken, and a resumed job must not wait for them. */
  const endLeases = (jobId: string): number => {
    const issued = db.prepare("SELECT task_id AS taskId FROM tasks WHERE job_id = ? AND state = 'issued'").all(jobId) as { taskId: string }[];
    for (const t of issued) store.rejectTask(t.taskId);
    return issued.length;
  };

  function finishOf(jobId: string): Finish | undefined {
    const r = db.prepare('SELECT * FROM job_finish WHERE job_id = ?').get(jobId) as FinishRow | undefined;
    return r && { rule: r.rule, reason: r.reason, releasedVersion: r.released_version, releasedHash: r.released_hash, loss: r.loss, accuracy: r.accuracy, at: r.at };
  }

  /** Moves a running or paused job to done for `verdict`, releasing its best version; one transaction with its audit entry. */
  function finish(jobId: string, verdict: { rule: string; reason: string }, actor: string): Finish {
    const t = o.now();
    const done = db.transaction(() => {
      const job = store.getJob(jobId) ?? fail('TT_ERR_UNKNOWN_JOB', jobId);
      const best = releasedEval(history(jobId, job.version), (v) => store.versionHash(jobId, v) !== undefined);
      const releasedVersion = best?.version ?? job.version;
      const f: Finish = {
        rule: verdict.rule, reason: verdict.reason, releasedVersion, releasedHash: store.versionHash(jobId, releasedVersion)!,
        loss: best?.loss ?? null, accuracy: best?.accuracy ?? null, at: t,
      };
      store.setJobStatus(jobId, 'done');
      const leasesEnded = endLeases(jobId);
      db.prepare('INSERT OR REPLACE INTO job_finish VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(jobId, f.rule, f.reason, f.releasedVersion, f.releasedHash, f.loss, f.accuracy, f.at);
      appendAudit(db, { actor, action: 'job.finish', jobId, detail: { ...f, from: job.status, to: 'done', version: job.version, leasesEnded } }, t);
      return f;
    })();
    log.info({ job: jobId, ...done }, `job finished (${done.rule}): released version ${done.releasedVersion}`);
    return done;
  }

  /** After a round (and its evaluation): finishes a running job whose `until` holds. Never throws. */
  /** `needEval`: the relay evaluates this job's versions asynchronously (on its worker pool), so the
   * held-out rules (target, plateau) wait for the current version's evaluation, whose landing calls this
   * again; budgets (samples, versions) hold at the round, evaluated or not, so a job whose versions outrun
   * their evaluations still ends (its released version is the best evaluated one). */
  function check(jobId: string, opts: { needEval?: boolean } = {}): Finish | undefined {
    try {
      const job = store.getJob(jobId);
      const until = job?.hyperparameters.until;
      if (!job || job.status !== 'running' || !until) return undefined;
      const evaluated = !opts.needEval || store.listEvals(jobId).some((e) => e.version === job.version);
      const rules = evaluated ? until : { samples: until.samples, versions: until.versions };
      const verdict = stopVerdict(rules, history(jobId, job.version), { version: job.version, samples: store.samplesApplied(jobId) });
      return verdict ? finish(jobId, verdict, 'relay') : undefined;
    } catch (e) {
      log.error({ err: e, job: jobId }, 'stopping check failed; the job runs on');
      return undefined;
    }
  }

  /** An operator's new budget for a done job: back to its released version's checkpoint (params and
   * momentum; later versions and their evaluations dropped), `until` replaced, running again. Refused when
   * the new `until` would hold at once (it would finish again at the next round). */
  function extend(jobId: string, until: Until, actor: string): { version: number; until: Until } {
    const t = o.now();
    return db.transaction(() => {
      const job = store.getJob(jobId) ?? fail('TT_ERR_UNKNOWN_JOB', jobId);
      if (job.status !== 'done') fail('TT_ERR_BAD_TRANSITION', `job ${jobId} is ${job.status}; only a done job's budget is extended (pause/resume a running one)`);
      const released = finishOf(jobId)?.releasedVersion ?? job.version;
      store.rollback(jobId, released, t);
      const again = stopVerdict(until, history(jobId, released), { version: released, samples: store.samplesApplied(jobId) });
      if (again) fail('TT_ERR_VALIDATION', `until.${again.rule}: already holds at the released version ${released} (${again.reason}); give a larger budget or a stricter target`);
      const leasesEnded = endLeases(jobId);
      store.setHyperparameters(jobId, { ...job.hyperparameters, until });
      store.setJobStatus(jobId, 'running');
      db.prepare('DELETE FROM job_finish WHERE job_id = ?').run(jobId);
      appendAudit(db, {
        actor, action: 'job.extend', jobId,
        detail: { from: 'done', to: 'running', untilBefore: job.hyperparameters.until ?? null, until, resumedFrom: released, droppedVersions: job.version - released, leasesEnded },
      }, t);
      log.info({ job: jobId, until, resumedFrom: released }, 'job extended: done=>running');
      return { version: released, until };
    })();
  }

  return { check, finish, finishOf, extend };
}
export type Stopping = ReturnType<typeof createStopping>;
