// Numbers as a person reads them: 1.2 MB, 3.4k, 12.5×.
export function bytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function count(n: number): string {
  if (n < 10_000) return String(Math.round(n));
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}k`;
  return `${(n / 1e6).toFixed(2)}M`;
}

export function rate(n: number): string {
  return n >= 100 ? String(Math.round(n)) : n.toFixed(n >= 10 ? 1 : 2);
}

/** A loss (or any small positive figure) with `digits` significant digits however small it gets: 2.31,
 * 0.0412, 3.05e-5; never "0.000" for a value that is still moving. */
export function sig(n: number, digits = 3): string {
  if (!Number.isFinite(n)) return String(n);
  if (n === 0) return '0';
  const a = Math.abs(n);
  if (a >= 1e-3 && a < 10 ** digits) return n.toPrecision(digits);
  if (a >= 10 ** digits) return String(Math.round(n));
  return n.toExponential(digits - 1);
}
