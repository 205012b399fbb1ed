// Symmetric block quantisation: each block of `block` consecutive values shares one fp32 scale
// s = max|v| / L (L = 127 for 8 bits, 7 for 4 bits) and stores q = round(v / s) in [-L, L].
// Dequantised v̂ = q·s, so |v − v̂| ≤ s/2 for every value (rounding to the nearest level).

export const levelsFor = (bits: 4 | 8): number => (bits === 8 ? 127 : 7);

/** Fills q (one int per value), scales (one per block) and, when given, dequant (q·s as fp32). */
export function quantizeBlocks(
  v: Float32Array, block: number, levels: number, q: Int8Array, scales: Float32Array, dequant?: Float32Array,
): void {
  const off = levels + 0.5;
  for (let b = 0, s0 = 0; s0 < v.length; b++, s0 += block) {
    const s1 = Math.min(s0 + block, v.length);
    let max = 0;
    for (let i = s0; i < s1; i++) { const a = Math.abs(v[i]); if (a > max) max = a; }
    const scale = Math.fround(max / levels);
    scales[b] = scale;
    if (scale === 0) {
      // an all-zero block, or one so tiny (< 1e-44) that its scale underflows: send zeros
      q.fill(0, s0, s1);
      if (dequant) dequant.fill(0, s0, s1);
      continue;
    }
    const inv = 1 / scale; // a multiply per value instead of a divide; still rounds to the nearest level
    for (let i = s0; i < s1; i++) {
      // round half up via truncation of a positive number: floor(y + 0.5) = ((y + L + 0.5) | 0) − L
      let r = ((v[i] * inv + off) | 0) - levels;
      // max/levels rounded to fp32 can land a hair below the true ratio; clamp keeps q in range
      if (r > levels) r = levels; else if (r < -levels) r = -levels;
      q[i] = r;
    }
    if (dequant) for (let i = s0; i < s1; i++) dequant[i] = q[i] * scale;
  }
}
