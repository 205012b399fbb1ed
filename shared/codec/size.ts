// Bytes of an encoded update of n parameters, without encoding one (the submit form's estimate): the
// sizes ./index.ts writes. fp32 and int8 are exact; top-k's index gaps are varints whose sizes depend on
// where the kept values fall, so it is their expectation for kept positions spread at random (gaps
// geometric with p = k / n: a gap takes one more byte for each power of 128 it reaches).
import type { Compression } from './index.ts';

const HEADER = 16, TOPK_HEADER = 24, TOPK_VALUE_BLOCK = 256;

export function encodedUpdateBytes(n: number, c: Compression): number {
  if (c.kind === 'fp32') return HEADER + 4 * n;
  if (c.kind === 'int8') return HEADER + 4 * Math.ceil(n / c.block) + n;
  const k = Math.min(n, Math.ceil(c.fraction * n));
  const values = c.bits === 8 ? k : Math.ceil(k / 2);
  const p = k / Math.max(1, n);
  let perGap = 1;
  for (let m = 128; m <= n && p < 1; m *= 128) perGap += (1 - p) ** (m - 1);
  return TOPK_HEADER + 4 * Math.ceil(k / TOPK_VALUE_BLOCK) + values + Math.round(k * perGap);
}
