// A shard is the unit of training data a task names: labelled examples in a compact binary form
// (pixels as u8, labels as u8), served by the relay and cached by volunteers. No DOM, no Node APIs.
import { rng } from '../util/rng.ts';
import type { Batch } from '../train/trainer.ts';

/** Decoded shard: x [n, inputs] in [0, 1], y class ids. */
export type Shard = { n: number; inputs: number; classes: number; x: Float32Array; y: Int32Array };

const MAGIC = 0x31535454; // 'TTS1' little-endian
const HEADER_BYTES = 16;

export class ShardError extends Error {
  override name = 'ShardError';
}

/** x values are quantized to 1/255 steps (MNIST pixels are exactly that already). */
export function encodeShard(s: Shard): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + s.n * s.inputs + s.n);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, s.n, true);
  dv.setUint32(8, s.inputs, true);
  dv.setUint32(12, s.classes, true);
  for (let i = 0; i < s.n * s.inputs; i++) out[HEADER_BYTES + i] = Math.max(0, Math.min(255, Math.round(s.x[i] * 255)));
  for (let i = 0; i < s.n; i++) out[HEADER_BYTES + s.n * s.inputs + i] = s.y[i];
  return out;
}

/** The header of an encoded shard, checked against its length (no row decoded). */
function shardHeader(bytes: Uint8Array): { n: number; inputs: number; classes: number } {
  if (bytes.length < HEADER_BYTES) throw new ShardError(`shard is ${bytes.length} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw new ShardError('shard does not start with magic TTS1');
  const n = dv.getUint32(4, true), inputs = dv.getUint32(8, true), classes = dv.getUint32(12, true);
  const want = HEADER_BYTES + n * inputs + n;
  if (bytes.length !== want) throw new ShardError(`shard header says ${want} bytes, got ${bytes.length}`);
  return { n, inputs, classes };
}

/** Label of row i of an encoded shard, checked against its class count. */
function label(bytes: Uint8Array, n: number, inputs: number, classes: number, i: number): number {
  const y = bytes[HEADER_BYTES + n * inputs + i];
  if (y >= classes) throw new ShardError(`shard label ${y} at row ${i} is not below classes=${classes}`);
  return y;
}

export function decodeShard(bytes: Uint8Array): Shard {
  const { n, inputs, classes } = shardHeader(bytes);
  const x = new Float32Array(n * inputs);
  for (let i = 0; i < x.length; i++) x[i] = bytes[HEADER_BYTES + i] / 255;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = label(bytes, n, inputs, classes, i);
  return { n, inputs, classes, x, y };
}

/** Mixes (seed, step) into one 32-bit seed, so every step of a task draws its own reproducible batch. */
export function mix(seed: number, step: number): number {
  let h = (seed ^ Math.imul(step + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The rows of the batch of inner step `step` of a task with `seed`, sampled with replacement: the one sampling rule. */
function batchRows(n: number, seed: number, step: number, batchSize: number): Int32Array {
  const r = rng(mix(seed, step));
  return Int32Array.from({ length: batchSize }, () => r.int(n));
}

/** The batch of inner step `step` of a task with `seed`: the same on every device (sampled with replacement). */
export function batchFor(shard: Shard, seed: number, step: number, batchSize: number): Batch {
  const x = new Float32Array(batchSize * shard.inputs);
  const y = new Int32Array(batchSize);
  batchRows(shard.n, seed, step, batchSize).forEach((i, b) => {
    x.set(shard.x.subarray(i * shard.inputs, (i + 1) * shard.inputs), b * shard.inputs);
    y[b] = shard.y[i];
  });
  return { kind: 'labelled', x, y, n: batchSize };
}

/** batchFor(decodeShard(bytes), …) reading only the batch's rows: the relay scores an update on its own
 * batch this way, without decoding (or holding) whole shards. */
export function batchForEncoded(bytes: Uint8Array, seed: number, step: number, batchSize: number): Batch {
  const { n, inputs, classes } = shardHeader(bytes);
  const x = new Float32Array(batchSize * inputs);
  const y = new Int32Array(batchSize);
  batchRows(n, seed, step, batchSize).forEach((i, b) => {
    for (let k = 0; k < inputs; k++) x[b * inputs + k] = bytes[HEADER_BYTES + i * inputs + k] / 255;
    y[b] = label(bytes, n, inputs, classes, i);
  });
  return { kind: 'labelled', x, y, n: batchSize };
}
