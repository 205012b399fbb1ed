// Sizes given on the command line (--keep-bytes): a plain count of bytes, or with a unit.
import { InvalidArgumentError } from 'commander';

/** kB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024 (case does not matter). */
const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** A commander option parser for a size of at least one byte; a refusal names the flag. */
export const byteSize = (name: string) => (v: string): number => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(n >= 1)) throw new InvalidArgumentError(`${name} must be a size of at least 1 byte, like 500000000, 20GB or 512MiB; got "${v}"`);
  return n;
};
