// Seeded PRNG (mulberry32) so a task's seed reproduces its batches and inits on every device.
export type Rng = { next(): number; int(n: number): number; normal(): number };

export function rng(seed: number): Rng {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | null = null;
  return {
    next,
    int: (n) => Math.floor(next() * n),
    normal() {
      // Box–Muller, keeping the second value for the next call.
      if (spare !== null) { const v = spare; spare = null; return v; }
      const u = Math.max(next(), 1e-12), v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
  };
}
