// The job every fresh relay starts with, created and running: the MNIST MLP. Defaults tuned so four
// CPU volunteers pass 90 % held-out accuracy in a handful of rounds (H=20 steps of batch 32, AdamW 2e-3).
import { defaultCompression } from '../shared/codec/index.ts';
import { defaultMlp } from '../shared/models/config.ts';
import type { Hyperparameters } from '../shared/protocol/messages.ts';
import type { JobSpec } from './store/types.ts';

export const DEFAULT_JOB_ID = 'mnist-mlp';

/** The default MNIST job's settings (submitted jobs start from shared/jobs/spec.ts's defaults instead). */
export const mnistHyperparameters: Hyperparameters = {
  steps: 20,
  batchSize: 32,
  adamw: { lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
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
};

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
