// A volunteer that reports its adapter's limits when it asks for work gets a task only if the job's
// model trains there at the job's batch size (the engine's memory plan, shared/engine/memory-plan.ts);
// otherwise a 422 naming what is needed against what the adapter has, before it downloads anything.
// The batch size is the job's own: a per-volunteer one would change what a spot check's two copies
// compute and how samples are counted.
import { adapterProblem, type AdapterLimits } from '../../shared/engine/memory-plan.ts';
import { fail } from '../errors.ts';
import type { JobRow } from '../store/types.ts';

export function requireAdapterFit(job: JobRow, adapter: AdapterLimits | undefined): void {
  if (!adapter) return; // CPU volunteers and older clients report none
  const problem = adapterProblem(job.model, job.hyperparameters.batchSize, adapter);
  if (problem) fail('TT_ERR_ADAPTER_TOO_SMALL', `no task of job ${job.jobId} for this device: ${problem}`);
}
