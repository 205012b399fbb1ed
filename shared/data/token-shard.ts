// A token shard: a run of token ids from a text corpus, the data unit of a GPT task (the labelled shard
// of shared/data/shard.ts is the MLP's). Binary: 'TTK1', u32 count, u32 vocab, u32 bytes per id (1 or 2),
// then the ids little-endian. A batch is n windows of context + 1 tokens drawn by the task's seed.
import { rng } from '../util/rng.ts';
import type { Batch } from '../train/trainer.ts';

export type TokenShard = { vocab: number; tokens: Int32Array };

const MAGIC = 0x314b5454; // 'TTK1' little-endian
const HEADER_BYTES = 16;

export class TokenShardError extends Error {
  override name = 'TokenShardError';
}

export function isTokenShard(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === MAGIC;
}

export function encodeTokenShard(s: TokenShard): Uint8Array {
  if (s.vocab > 65536) throw new TokenShardError(`vocab ${s.vocab} does not fit 16-bit ids`);
  const width = s.vocab <= 256 ? 1 : 2;
  const out = new Uint8Array(HEADER_BYTES + s.tokens.length * width);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, s.tokens.length, true);
  dv.setUint32(8, s.vocab, true);
  dv.setUint32(12, width, true);
  for (let i = 0; i < s.tokens.length; i++) {
    if (width === 1) out[HEADER_BYTES + i] = s.tokens[i];
    else dv.setUint16(HEADER_BYTES + 2 * i, s.tokens[i], true);
  }
  return out;
}

/** The header of an encoded token shard, checked against its length, and a reader of its i-th id. */
function tokenShardHeader(bytes: Uint8Array): { n: number; vocab: number; id: (i: number) => number } {
  if (bytes.length < HEADER_BYTES) throw new TokenShardError(`token shard is ${bytes.length} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw new TokenShardError('token shard does not start with magic TTK1');
  const n = dv.getUint32(4, true), vocab = dv.getUint32(8, true), width = dv.getUint32(12, true);
  if (width !== 1 && width !== 2) throw new TokenShardError(`token shard id width is ${width}; expected 1 or 2`);
  if (bytes.length !== HEADER_BYTES + n * width) throw new TokenShardError(`token shard header says ${HEADER_BYTES + n * width} bytes, got ${bytes.length}`);
  const id = (i: number): number => {
    const t = width === 1 ? bytes[HEADER_BYTES + i] : dv.getUint16(HEADER_BYTES + 2 * i, true);
    if (t >= vocab) throw new TokenShardError(`token ${t} at ${i} is not below vocab=${vocab}`);
    return t;
  };
  return { n, vocab, id };
}

export function decodeTokenShard(bytes: Uint8Array): TokenShard {
  const { n, vocab, id } = tokenShardHeader(bytes);
  const tokens = new Int32Array(n);
  for (let i = 0; i < n; i++) tokens[i] = id(i);
  return { vocab, tokens };
}

/** Same (seed, step) mixing as shared/data/shard.ts, so every step of a task draws its own batch. */
function mix(seed: number, step: number): number {
  let h = (seed ^ Math.imul(step + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Where the windows of the batch of inner step `step` of a task with `seed` start: the one sampling rule. */
function windowStarts(count: number, span: number, seed: number, step: number, batchSize: number): Int32Array {
  if (count < span) throw new TokenShardError(`token shard has ${count} tokens, fewer than context + 1 = ${span}`);
  const r = rng(mix(seed, step));
  return Int32Array.from({ length: batchSize }, () => r.int(count - span + 1));
}

/** n windows of context + 1 tokens (inputs and next-token targets), from random starts in the shard. */
export function tokenBatchFor(shard: TokenShard, context: number, seed: number, step: number, batchSize: number): Batch {
  const span = context + 1;
  const tokens = new Int32Array(batchSize * span);
  windowStarts(shard.tokens.length, span, seed, step, batchSize).forEach((start, b) => tokens.set(shard.tokens.subarray(start, start + span), b * span));
  return { kind: 'tokens', tokens, n: batchSize };
}

/** tokenBatchFor(decodeTokenShard(bytes), …) reading only the batch's windows (see batchForEncoded). */
export function tokenBatchForEncoded(bytes: Uint8Array, context: number, seed: number, step: number, batchSize: number): Batch {
  const { n, id } = tokenShardHeader(bytes);
  const span = context + 1;
  const tokens = new Int32Array(batchSize * span);
  windowStarts(n, span, seed, step, batchSize).forEach((start, b) => {
    for (let k = 0; k < span; k++) tokens[b * span + k] = id(start + k);
  });
  return { kind: 'tokens', tokens, n: batchSize };
}

/** Every non-overlapping window of a held-out shard (up to maxWindows), for evaluation. */
export function tokenWindows(shard: TokenShard, context: number, maxWindows = 256): Batch {
  const span = context + 1;
  const n = Math.min(maxWindows, Math.floor(shard.tokens.length / span));
  return { kind: 'tokens', tokens: shard.tokens.slice(0, n * span), n };
}
