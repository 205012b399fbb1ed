// Turns an uploaded dataset into what a job trains on: parsed, checked (every refusal names the field),
// split into training shards and one held-out shard. Labelled arrays (MNIST-like) come as JSON
// {"x": [[...], ...], "y": [...]} or CSV rows "label,v1,v2,…"; values in [0, 1], or 0–255 pixels (scaled).
// Text is a UTF-8 corpus, tokenised by characters, bytes or GPT-2 BPE.
import type { Shard } from '../data/shard.ts';
import type { ModelConfig } from '../models/config.ts';
import { kindOf } from '../models/registry.ts';
import { rng } from '../util/rng.ts';
import { checkModelFits } from './model-fit.ts';
import { defaultHeldOutFraction, defaultShards, LIMITS, resolveHyperparameters, SpecError, type JobSubmission } from './spec.ts';
import { charVocabulary, decodeUtf8, encodeText, vocabSize, type Tokenizer } from './text.ts';
import type { TokenShard } from '../data/token-shard.ts';

export type PreparedDataset =
  | { kind: 'labelled'; inputs: number; classes: number; train: Shard[]; heldOut: Shard; rows: number }
  | { kind: 'text'; tokenizer: Tokenizer; vocab: number; train: TokenShard[]; heldOut: TokenShard; tokens: number };

const MAX_CLASSES = 256; // labels travel as u8 in a shard
const MAX_INPUTS = 65_536;

export function prepareDataset(job: JobSubmission, bytes: Uint8Array): PreparedDataset {
  if (bytes.length === 0) throw new SpecError('dataset', 'the upload is empty; attach the data file');
  if (bytes.length > LIMITS.datasetBytes) {
    throw new SpecError('dataset', `the upload is ${bytes.length} bytes, over the ${LIMITS.datasetBytes}-byte limit; use a smaller file`);
  }
  const heldOutFraction = job.dataset.heldOutFraction ?? defaultHeldOutFraction;
  const shardCount = job.dataset.shards ?? defaultShards;
  if (job.dataset.format === 'text') {
    const context = kindOf(job.model).tokensPerRow(job.model);
    return prepareText(decodeUtf8(bytes), job.dataset.tokenizer, heldOutFraction, shardCount, context);
  }
  return prepareLabelled(parseLabelled(bytes), heldOutFraction, shardCount);
}

function prepareText(text: string, kind: 'char' | 'byte' | 'bpe', heldOutFraction: number, shardCount: number, context: number): PreparedDataset {
  const tokenizer: Tokenizer = kind === 'char' ? { kind: 'char', vocabulary: charVocabulary(text) } : { kind };
  const ids = encodeText(tokenizer, text);
  const span = context + 1;
  const heldOutLen = Math.floor(ids.length * heldOutFraction);
  const trainLen = ids.length - heldOutLen;
  const perShard = Math.floor(trainLen / shardCount);
  // Each shard and the held-out part must hold a few full windows, or batches repeat one window.
  const need = 2 * span;
  if (heldOutLen < need || perShard < need) {
    const minTokens = Math.ceil(Math.max(need / heldOutFraction, need * shardCount / (1 - heldOutFraction)));
    throw new SpecError('dataset', `the corpus has ${ids.length} tokens; with model.context=${context}, dataset.shards=${shardCount} and dataset.heldOutFraction=${heldOutFraction} it needs at least ${minTokens}; upload more text or lower those`);
  }
  const vocab = vocabSize(tokenizer);
  const train = Array.from({ length: shardCount }, (_, s) => ({ vocab, tokens: ids.slice(s * perShard, (s + 1) * perShard) }));
  return { kind: 'text', tokenizer, vocab, train, heldOut: { vocab, tokens: ids.slice(trainLen) }, tokens: ids.length };
}

type Labelled = { x: Float32Array; y: Int32Array; n: number; inputs: number };

export function parseLabelled(bytes: Uint8Array): Labelled {
  const text = decodeUtf8(bytes);
  const first = text.trimStart()[0];
  return first === '{' ? parseLabelledJson(text) : parseLabelledCsv(text);
}

function parseLabelledJson(text: string): Labelled {
  let o: unknown;
  try { o = JSON.parse(text); } catch (e) { throw new SpecError('dataset', `the JSON does not parse (${(e as Error).message}); send {"x": [[...]], "y": [...]}`); }
  const { x, y } = (o ?? {}) as { x?: unknown; y?: unknown };
  if (!Array.isArray(x)) throw new SpecError('dataset.x', 'must be an array of rows (arrays of numbers)');
  if (!Array.isArray(y)) throw new SpecError('dataset.y', 'must be an array of integer labels');
  if (x.length !== y.length) throw new SpecError('dataset.y', `has ${y.length} labels but dataset.x has ${x.length} rows; they must match`);
  if (x.length === 0) throw new SpecError('dataset.x', 'has no rows');
  const inputs = Array.isArray(x[0]) ? x[0].length : 0;
  const rows = x.map((row, i) => {
    if (!Array.isArray(row)) throw new SpecError(`dataset.x[${i}]`, 'must be an array of numbers');
    return row;
  });
  return toLabelled(rows, y, inputs, (i) => `dataset.x[${i}]`, (i) => `dataset.y[${i}]`);
}

function parseLabelledCsv(text: string): Labelled {
  // One pass over the lines straight into typed arrays: a 16 MiB CSV of millions of rows must not become
  // millions of small arrays (hundreds of MB) first. Lines are counted first to size the arrays.
  let lineCount = 1;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lineCount++;
  let x = new Float32Array(0), inputs = 0, n = 0, max = 0, seen = 0;
  const y = new Int32Array(lineCount);
  for (let pos = 0; pos <= text.length;) {
    let end = text.indexOf('\n', pos);
    if (end === -1) end = text.length;
    const line = text.slice(pos, end > pos && text.charCodeAt(end - 1) === 13 ? end - 1 : end);
    pos = end + 1;
    if (line.trim() === '') continue;
    seen++;
    const cells = line.split(',');
    // A header row (non-numeric first cell, e.g. "label,pixel0,…") is skipped.
    if (seen === 1 && Number.isNaN(Number(cells[0]))) continue;
    const name = `dataset row ${seen}`;
    if (n === 0) {
      inputs = cells.length - 1;
      if (inputs < 1 || inputs > MAX_INPUTS) throw new SpecError(name, `has ${inputs} values; rows need 1–${MAX_INPUTS}`);
      x = new Float32Array(lineCount * inputs);
    }
    if (cells.length - 1 !== inputs) throw new SpecError(name, `has ${cells.length - 1} values; every row must have ${inputs} like the first`);
    for (let k = 0; k < inputs; k++) {
      const c = cells[k + 1], v = c.trim() === '' ? NaN : Number(c);
      if (!Number.isFinite(v) || v < 0) throw new SpecError(name, `value ${k} is ${JSON.stringify(Number.isNaN(v) ? null : v)}; values must be finite numbers ≥ 0`);
      if (v > max) max = v;
      x[n * inputs + k] = v;
    }
    const label = cells[0].trim() === '' ? NaN : Number(cells[0]);
    if (!Number.isInteger(label) || label < 0 || label >= MAX_CLASSES) {
      throw new SpecError(`${name} label`, `is ${JSON.stringify(Number.isNaN(label) ? null : label)}; labels must be integers 0–${MAX_CLASSES - 1}`);
    }
    y[n++] = label;
  }
  if (n === 0) throw new SpecError('dataset', 'the CSV has no data rows; each row is "label,v1,v2,…"');
  if (max > 255) throw new SpecError('dataset', `the largest value is ${max}; values must be in [0, 1] or 0–255 pixels`);
  const xs = x.subarray(0, n * inputs);
  if (max > 1) for (let i = 0; i < xs.length; i++) xs[i] /= 255;
  return { x: xs, y: y.subarray(0, n), n, inputs };
}

function toLabelled(rows: unknown[][], labels: unknown[], inputs: number, rowName: (i: number) => string, labelName: (i: number) => string): Labelled {
  if (inputs < 1 || inputs > MAX_INPUTS) throw new SpecError(rowName(0), `has ${inputs} values; rows need 1–${MAX_INPUTS}`);
  const n = rows.length;
  const x = new Float32Array(n * inputs), y = new Int32Array(n);
  let max = 0;
  for (let i = 0; i < n; i++) {
    const row = rows[i];
    if (row.length !== inputs) throw new SpecError(rowName(i), `has ${row.length} values; every row must have ${inputs} like the first`);
    for (let k = 0; k < inputs; k++) {
      const v = row[k];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new SpecError(rowName(i), `value ${k} is ${JSON.stringify(v)}; values must be finite numbers ≥ 0`);
      if (v > max) max = v;
      x[i * inputs + k] = v;
    }
    const label = labels[i];
    if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || label >= MAX_CLASSES) {
      throw new SpecError(labelName(i), `is ${JSON.stringify(label)}; labels must be integers 0–${MAX_CLASSES - 1}`);
    }
    y[i] = label;
  }
  if (max > 255) throw new SpecError('dataset', `the largest value is ${max}; values must be in [0, 1] or 0–255 pixels`);
  if (max > 1) for (let i = 0; i < x.length; i++) x[i] /= 255;
  return { x, y, n, inputs };
}

/** Largest label + 1, by a loop: a spread of a data-sized array overflows the call stack (≈125k rows). */
function classCount(y: Int32Array): number {
  let max = 0;
  for (let i = 0; i < y.length; i++) if (y[i] > max) max = y[i];
  return max + 1;
}

function prepareLabelled(d: Labelled, heldOutFraction: number, shardCount: number): PreparedDataset {
  const classes = classCount(d.y);
  if (classes < 2) throw new SpecError('dataset.y', 'all labels are 0; a classifier needs at least 2 classes');
  const heldOutN = Math.floor(d.n * heldOutFraction);
  const per = Math.floor((d.n - heldOutN) / shardCount);
  if (heldOutN < 1 || per < 1) {
    throw new SpecError('dataset', `${d.n} rows are too few for dataset.shards=${shardCount} and dataset.heldOutFraction=${heldOutFraction}; upload more rows or lower those`);
  }
  // Shuffle once with a fixed seed so shards and held-out set are class-balanced on average.
  const order = new Int32Array(d.n);
  for (let i = 0; i < d.n; i++) order[i] = i;
  const r = rng(1234);
  for (let i = order.length - 1; i > 0; i--) { const j = r.int(i + 1); const t = order[i]; order[i] = order[j]; order[j] = t; }
  const take = (idx: Int32Array): Shard => {
    const x = new Float32Array(idx.length * d.inputs), y = new Int32Array(idx.length);
    for (let i = 0; i < idx.length; i++) {
      const src = idx[i];
      x.set(d.x.subarray(src * d.inputs, (src + 1) * d.inputs), i * d.inputs);
      y[i] = d.y[src];
    }
    return { n: idx.length, inputs: d.inputs, classes, x, y };
  };
  const train = Array.from({ length: shardCount }, (_, s) => take(order.subarray(s * per, (s + 1) * per)));
  return { kind: 'labelled', inputs: d.inputs, classes, train, heldOut: take(order.subarray(d.n - heldOutN)), rows: d.n };
}

/** The full model config: the submission's shape plus what the data decides; checked against the size limit. */
export function resolveModel(job: JobSubmission, data: PreparedDataset): ModelConfig {
  const model = kindOf(job.model).fromSubmission(job.model, data);
  if ('field' in model) throw new SpecError(model.field, model.problem);
  checkModelFits(model, resolveHyperparameters(job).batchSize);
  return model;
}
