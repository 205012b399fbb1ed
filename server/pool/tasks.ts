// The messages a pool worker takes and what each answers (server/pool/worker.ts runs them).
import type { Update } from '../../shared/codec/index.ts';
import type { Shard } from '../../shared/data/shard.ts';
import type { JobSubmission } from '../../shared/jobs/spec.ts';
import type { Tokenizer } from '../../shared/jobs/text.ts';
import type { GptConfig, ModelConfig } from '../../shared/models/config.ts';
import type { Hyperparameters } from '../../shared/protocol/messages.ts';
import type { RoundOutcome, RoundSpec } from './round.ts';
import type { ValidationContext, ValidationResult } from '../defence/validate.ts';
import type { UsefulnessScore } from '../defence/usefulness-score.ts';
import type { LabelledBatch } from '../../shared/reference/mlp.ts';
import type { Batch } from '../../shared/train/trainer.ts';

/** A checkpoint's params, where the store says the worker finds them (RelayStore.paramsSource: for SQLite,
 * its file, so the event loop never reads or copies a 76 MB blob for it), or given inline. */
export type { ParamsSource } from '../store/types.ts';
import type { ParamsSource } from '../store/types.ts';

export type PoolTask =
  | { kind: 'gpt-eval'; config: GptConfig; params: ParamsSource; tokens: Int32Array; n: number; length: number }
  | { kind: 'mlp-eval'; config: ModelConfig; params: Float32Array; heldOut: Shard } // held-out rows: any kind the relay evaluates
  | { kind: 'onnx'; model: ModelConfig; params: ParamsSource; file: string }
  | { kind: 'recompute'; model: ModelConfig; h: Hyperparameters; base: Float32Array; shardBytes: Uint8Array; seed: number }
  | { kind: 'dataset'; job: JobSubmission; bytes: Uint8Array }
  | { kind: 'init'; model: ModelConfig; seed: number }
  /** a round's close (./round.ts): the worker reads its inputs from the database `db` names (the store's paramsSource) */
  | { kind: 'round'; spec: RoundSpec; db: string }
  /** an accepted update decoded now on the round lane, held for its round's close (./prefold.ts) */
  | { kind: 'prefold'; db: string; taskId: string; length: number }
  /** spot-check copies (encoded) compared pairwise, or each against a reference (../defence/compare.ts) */
  | { kind: 'compare'; n: number; copies: Uint8Array[]; tolerance?: number; reference?: Update }
  /** an uploaded payload spooled to `file` checked as intake would on the loop (../defence/validate-file.ts) */
  | { kind: 'validate'; file: string; ctx: ValidationContext }
  /** SHA-256 (hex) of a spooled upload: its head (in memory) and then its file, as the body arrived */
  | { kind: 'hash-upload'; head: Uint8Array; file: string }
  /** ‖θ‖ of a stored version (intake's norm bound under weight decay) */
  | { kind: 'params-norm'; params: ParamsSource }
  /** an upload's usefulness score (../defence/usefulness-score.ts): its payload given or in its spooled file */
  | { kind: 'usefulness'; model: ModelConfig; params: ParamsSource; payload: Uint8Array | { file: string }; batch: Batch | LabelledBatch };

export type PreparedUpload = {
  ok: true; kind: 'labelled' | 'text'; tokenizer: Tokenizer | null; model: ModelConfig;
  shards: Uint8Array[]; heldOut: Uint8Array; heldOutCount: number;
};

export type PoolResult = {
  'gpt-eval': { loss: number; accuracy: number };
  'mlp-eval': { loss: number; accuracy: number };
  onnx: { bytes: number };
  recompute: Update;
  dataset: PreparedUpload | { ok: false; field: string; problem: string };
  /** version 0: initial params and their hash, as the scheduler's createJob would make them */
  init: { params: Float32Array; hash: string };
  round: RoundOutcome;
  prefold: boolean;
  compare: { agree: boolean; distance: number }[];
  /** `ms`: the worker's time reading and checking the file */
  validate: ValidationResult & { ms: number };
  'params-norm': number;
  'hash-upload': string;
  usefulness: UsefulnessScore;
};

export type PoolKind = PoolTask['kind'];
