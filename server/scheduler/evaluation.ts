// Evaluation: every version's held-out loss and accuracy, for every model kind, in one place. The round
// asks for it after each commit, job creation (submission included) for version 0, recovery for versions
// a crash left unevaluated. It runs on the relay's worker pool (server/pool), never on the event loop
// (inline only without a pool: unit tests), and lands on the version it measured whenever it comes.
import type { FastifyBaseLogger } from 'fastify';
import { decodeTokenShard } from '../../shared/data/token-shard.ts';
import { mlpEvaluate } from '../../shared/reference/mlp.ts';
import { dataset } from '../data/datasets.ts';
import type { Metrics } from '../metrics.ts';
import { evalTokens } from '../ops/eval-gpt.ts';
import { PoolClosedError, type WorkPool } from '../pool/index.ts';
import type { RelayStore } from '../store/types.ts';

export type EvaluationOptions = {
  store: RelayStore; log: FastifyBaseLogger; metrics: Metrics; now: () => number;
  /** evaluate at all (off in benchmarks) */
  enabled: boolean;
  /** work deferred past the current request and transaction; dropped once the relay stops */
  later: (work: () => void) => void;
  isStopping: () => boolean;
};

type Result = { loss: number; accuracy: number };

export function createEvaluation(o: EvaluationOptions) {
  const { store, log, metrics, now } = o;
  /** where evaluations run (server/pool); without one (unit tests) MLPs run inline and GPTs not at all */
  let pool: WorkPool | undefined;
  /** a GPT job's held-out text (submitted datasets live in the operator plugin's tables) */
  let heldOutText: (jobId: string) => Promise<Uint8Array | undefined> = async () => undefined;
  /** Evaluations running on the pool, by job@version: a version already being evaluated (a new job's
   * version 0 is also seen unevaluated by recover()) is not evaluated twice. */
  const evaluating = new Set<string>();

  /** Stores the result; the guardrail and the stopping rules hear of it as the store's eval-stored event. */
  async function land(jobId: string, version: number, r: Result): Promise<void> {
    if (o.isStopping() || !(await store.getJob(jobId))) return;
    await store.putEval(jobId, { version, loss: r.loss, accuracy: r.accuracy, at: now() });
    // /metrics is public: a pending job's id stays off it until an operator approves the job
    if ((await store.getJob(jobId))?.status !== 'pending') metrics.accuracy.set({ job: jobId }, r.accuracy);
    log.info({ job: jobId, version, loss: r.loss, accuracy: r.accuracy }, 'version evaluated');
  }

  function onPool(jobId: string, version: number, run: (p: WorkPool) => Promise<Result>): Promise<void> {
    const key = `${jobId}@${version}`;
    if (!pool || evaluating.has(key)) return Promise.resolve();
    evaluating.add(key);
    return run(pool).then(async (r) => land(jobId, version, r)).catch((e: unknown) => {
      if (!(e instanceof PoolClosedError) && !o.isStopping()) log.error({ err: e, job: jobId, version }, 'evaluation failed');
    }).finally(() => evaluating.delete(key));
  }

  /** Evaluates the job's version on its held-out split; resolves when it is stored (or was not taken). */
  async function evaluate(jobId: string, version: number): Promise<void> {
    if (!o.enabled) return;
    const job = await store.getJob(jobId);
    if (job?.model.kind === 'mlp') {
      // kind first: a GPT checkpoint (up to 160 MB with momentum) is never read here
      const v = await store.getParams(jobId, version);
      if (!v) return;
      let heldOut;
      try {
        heldOut = dataset(job.dataset.name).heldOut;
      } catch (e) {
        log.warn({ job: jobId, err: e }, 'no held-out data to evaluate on');
        return;
      }
      if (!heldOut) return;
      if (!pool) return land(jobId, version, mlpEvaluate(job.model, v.params, heldOut));
      const config = job.model;
      return onPool(jobId, version, (p) => p.run({ kind: 'mlp-eval', config, params: v.params, heldOut }));
    }
    if (job?.model.kind === 'gpt') {
      // the worker reads the params from the store itself: deferred past the caller's transaction, so
      // what it reads is committed (a submission creates the job and its version 0 in one)
      await new Promise<void>((done) => o.later(done));
      const config = job.model;
      let input;
      try {
        const text = await heldOutText(jobId);
        if (!text || !(await store.versionHash(jobId, version))) return;
        input = { kind: 'gpt-eval' as const, config, params: store.paramsSource(jobId, version), ...evalTokens(config, decodeTokenShard(text)) };
      } catch (err) {
        log.error({ err, job: jobId, version }, 'GPT evaluation failed');
        return;
      }
      return onPool(jobId, version, (p) => p.run(input));
    }
  }

  return {
    evaluate,
    /** Runs evaluations on this worker pool from now on. */
    usePool: (p: WorkPool): void => { pool = p; },
    /** Where GPT jobs' held-out text is read from. */
    useHeldOutText: (read: (jobId: string) => Promise<Uint8Array | undefined>): void => { heldOutText = read; },
  };
}
export type Evaluation = ReturnType<typeof createEvaluation>;
