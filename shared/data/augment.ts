// Seeded data augmentation of labelled image rows: each row of a batch is shifted by a few pixels, the
// shifts drawn from the task's (seed, step) on a stream of their own, so the rows a batch samples are the
// same with or without augmentation, and two devices with one task (a spot check, the relay's reference
// copy) train on the same pixels. Small shifts are the classic MNIST augmentation: the model sees a new
// variant of each digit every time, so a few thousand digits last far longer before it memorises them.
import type { Augment } from '../protocol/messages.ts';
import { rng } from '../util/rng.ts';
import { mix } from './shard.ts';

/** Separates the shift stream from the row-sampling stream of the same (seed, step). */
const SHIFT_STREAM = 0x61756731; // 'aug1'

export class AugmentError extends Error {
  override name = 'AugmentError';
}

/** Image width and height of rows of `inputs` values: `width` when given, else a square. */
export function imageShape(inputs: number, width?: number): { width: number; height: number } {
  const w = width ?? Math.round(Math.sqrt(inputs));
  if (w < 1 || inputs % w !== 0 || (width === undefined && w * w !== inputs)) {
    throw new AugmentError(width === undefined
      ? `rows of ${inputs} values are not square images; set augment.width to the image width`
      : `rows of ${inputs} values do not split into images ${width} pixels wide`);
  }
  return { width: w, height: inputs / w };
}

/** The shifts (dx, dy per row) of the batch of inner step `step` of a task with `seed`. */
export function shiftsFor(seed: number, step: number, rows: number, shift: number): Int8Array {
  const r = rng(mix((seed ^ SHIFT_STREAM) >>> 0, step));
  const out = new Int8Array(rows * 2);
  for (let i = 0; i < out.length; i++) out[i] = r.int(2 * shift + 1) - shift;
  return out;
}

/** Shifts each row of x ([rows, inputs], row-major images) in place; pixels shifted in are 0. */
export function augmentRows(x: Float32Array, rows: number, inputs: number, a: Augment, seed: number, step: number): void {
  if (a.shift === 0) return;
  const { width, height } = imageShape(inputs, a.width);
  const shifts = shiftsFor(seed, step, rows, a.shift);
  const src = new Float32Array(inputs);
  for (let r = 0; r < rows; r++) {
    const dx = shifts[2 * r], dy = shifts[2 * r + 1];
    if (dx === 0 && dy === 0) continue;
    const row = x.subarray(r * inputs, (r + 1) * inputs);
    src.set(row);
    row.fill(0);
    for (let y = Math.max(0, dy); y < Math.min(height, height + dy); y++) {
      const from = (y - dy) * width;
      const to = y * width;
      for (let c = Math.max(0, dx); c < Math.min(width, width + dx); c++) row[to + c] = src[from + c - dx];
    }
  }
}
